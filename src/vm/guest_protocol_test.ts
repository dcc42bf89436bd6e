import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { shellQuote, commandArgument } from "./guest_protocol.js";

test("shellQuote round-trips awkward arguments through a real shell", () => {
  const argv = ["printf", "%s|", "a b", "it's", "$HOME", "", "x\ny", "--opt=1"];
  const out = execFileSync("sh", ["-c", shellQuote(argv)]).toString();
  assert.equal(out, "a b|it's|$HOME||x\ny|--opt=1|");
});

test("the command argument is one word of base64 with no spaces", () => {
  const arg = commandArgument(["echo", "hello world"]);
  assert.match(arg, /^nodevisor\.cmd=[A-Za-z0-9+/=]+$/);
  assert.equal(Buffer.from(arg.split("=").slice(1).join("="), "base64").toString(), "echo 'hello world'");
});
