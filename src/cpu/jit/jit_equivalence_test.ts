// Holds the JIT tier equal to the interpreter: the random programs of hart_equivalence_test (every
// privilege, bare/Sv39/Sv48, random TLB states, MMIO exits, traps, interrupts raised mid-run) run on
// a hart that compiles every block on first sight and on the full interpreter (execSlow alone);
// registers, pc, CSRs, counters, RAM and device memory must match after every run() budget.
// JIT_FUZZ_N sets the instruction budget (default 600,000), JIT_FUZZ_SEED the seed, JIT_FUZZ_CASE replays one case.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EquivalenceRig, runRandomCases } from "../testing/equivalence_rig.js";

const TOTAL = Number(process.env.JIT_FUZZ_N ?? 600_000);
const SEED = Number(process.env.JIT_FUZZ_SEED ?? 0x0b1e_c0de) >>> 0;
const ONE_CASE = process.env.JIT_FUZZ_CASE;

test(`the JIT and the interpreter agree on random programs in random M/S/U, paging and TLB states (seed ${SEED}, ${TOTAL} steps)`, (t) => {
  const rig = new EquivalenceRig("jit", "slow");
  const { failure, cases, steps } = runRandomCases(rig, {
    total: TOTAL, seed: SEED, oneCase: ONE_CASE,
    replay: (c, n) => `JIT_FUZZ_CASE=${c} JIT_FUZZ_N=${n} node --import tsx --test src/cpu/jit/jit_equivalence_test.ts`,
  });
  if (failure !== null) assert.fail(failure);
  t.diagnostic(`${cases} cases, ${steps} steps, ${rig.retired} instructions retired; ${rig.subjectJitStats()}`);
  assert.ok(rig.retired > steps / 3, `only ${rig.retired} of ${steps} steps retired an instruction`);
});
