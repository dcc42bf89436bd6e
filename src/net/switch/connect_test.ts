import assert from "node:assert/strict";
import { test } from "node:test";
import { cliCommandFor } from "./connect.js";

test("an on-demand switch is started with the CLI's entry point, also when the bundler put this module in a chunk", () => {
  assert.deepEqual(cliCommandFor("/opt/nv/dist/cli/main.js"), { args: ["/opt/nv/dist/cli/main.js"], cwd: "/opt/nv/dist/cli" });
  assert.deepEqual(cliCommandFor("/opt/nv/dist/chunk-ALXZ7JH5.js"), { args: ["/opt/nv/dist/cli/main.js"], cwd: "/opt/nv/dist/cli" });
  assert.deepEqual(cliCommandFor("/src/nv/src/net/switch/connect.ts"), { args: ["--import", "tsx", "/src/nv/src/cli/main.ts"], cwd: "/src/nv" });
});
