// Holds Hart.execFast (the call-free loop for common instructions) equal to Hart.execSlow (the full
// interpreter): random programs in random machine states run on two harts, one as in production
// and one with execFast switched off, and must leave identical registers, pc, privilege, CSRs,
// counters, guest RAM and device memory after every run() budget.
// HART_FUZZ_N sets the total instruction budget (default 3 million), HART_FUZZ_SEED the seed of
// the whole run, HART_FUZZ_CASE replays a single case by the case seed a failure prints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EquivalenceRig, runRandomCases } from "./testing/equivalence_rig.js";

const TOTAL = Number(process.env.HART_FUZZ_N ?? 3_000_000);
const SEED = Number(process.env.HART_FUZZ_SEED ?? 0x5eed_cafe) >>> 0;
const ONE_CASE = process.env.HART_FUZZ_CASE;

test(`execFast and execSlow agree on random programs in random M/S/U, Sv39/Sv48/bare and TLB states (seed ${SEED}, ${TOTAL} steps)`, (t) => {
  const rig = new EquivalenceRig();
  const { failure, cases, steps } = runRandomCases(rig, {
    total: TOTAL, seed: SEED, oneCase: ONE_CASE,
    replay: (c, n) => `HART_FUZZ_CASE=${c} HART_FUZZ_N=${n} node --import tsx --test src/cpu/hart_equivalence_test.ts`,
  });
  if (failure !== null) assert.fail(failure);
  t.diagnostic(`${cases} cases, ${steps} steps, ${rig.retired} instructions retired on each path`);
  // The programs must mostly execute, not just trap: a generator that only faults would prove nothing.
  assert.ok(rig.retired > steps / 3, `only ${rig.retired} of ${steps} steps retired an instruction`);
});
