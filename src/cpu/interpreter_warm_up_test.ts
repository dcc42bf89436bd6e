import { test } from "node:test";
import assert from "node:assert/strict";
import { warmUpInterpreter } from "./interpreter_warm_up.js";

const time = { frequency: 10_000_000, now: () => Math.floor(performance.now() * 10_000) };

test("the interpreter's warm-up runs its program through all six passes (M, S and U-mode; execFast and execSlow alone) without getting stuck, exits answered", () => {
  for (const jit of [false, true]) {
    const { instructions, traps, exits, deviceAccesses } = warmUpInterpreter(time, jit, 1000);
    // Each pass runs until its budget: one stuck in WFI or behind an exit would fall short.
    assert.ok(instructions >= 6 * 900, `ran ${instructions} instructions (jit ${jit})`);
    // The ecall near the program's end, from M and U-mode (a trap) and S-mode (an SBI exit): every pass went all the way round.
    for (const cause of ["exception:11", "exception:8"]) assert.ok((traps.get(cause) ?? 0) >= 2, `${cause}: ${JSON.stringify([...traps])}`);
    assert.equal(traps.get("exception:9"), undefined, "S-mode ecalls are SBI exits");
    // Per round: an SBI call in each S pass, a device load in each M pass; the faults the program provokes.
    assert.ok(exits >= 8, `${exits} exits`);
    for (const cause of ["exception:2", "exception:13"]) assert.ok((traps.get(cause) ?? 0) >= 2, `${cause}: ${JSON.stringify([...traps])}`);
    // The M passes' loads and stores at the device the hart serves itself (the boot's CLINT and PLIC path).
    assert.ok(deviceAccesses >= 8, `${deviceAccesses} accesses to the hart's own device`);
  }
});
