import { test } from "node:test";
import assert from "node:assert/strict";
import { warmUpInterpreter } from "./interpreter_warm_up.js";

const time = { frequency: 10_000_000, now: () => Math.floor(performance.now() * 10_000) };

test("the interpreter's warm-up runs its program through all six passes (M, S and U-mode; execFast and execSlow alone) without getting stuck", () => {
  for (const jit of [false, true]) {
    const { instructions, traps } = warmUpInterpreter(time, jit, 1000);
    // Each pass runs until its budget: one stuck in WFI or behind an exit would fall short.
    assert.ok(instructions >= 6 * 900, `ran ${instructions} instructions (jit ${jit})`);
    // The ecall near the program's end, from each privilege: every pass went all the way round.
    for (const cause of ["exception:11", "exception:9", "exception:8"]) assert.ok((traps.get(cause) ?? 0) >= 2, `${cause}: ${JSON.stringify([...traps])}`);
  }
});
