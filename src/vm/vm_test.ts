import { test } from "node:test";
import assert from "node:assert/strict";
import { trapCauseName } from "./vm.js";

test("trap causes are reported by their privileged-spec names", () => {
  assert.equal(trapCauseName("exception:13"), "load-page-fault");
  assert.equal(trapCauseName("exception:9"), "ecall-from-s");
  assert.equal(trapCauseName("interrupt:5"), "supervisor-timer-interrupt");
  assert.equal(trapCauseName("interrupt:99"), "interrupt:99");
  assert.equal(trapCauseName("weird"), "weird");
});
