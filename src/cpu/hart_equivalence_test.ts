// Holds Hart.execFast (the call-free loop for common instructions) equal to Hart.execSlow (the full
// interpreter): random programs in random machine states run on two harts, one as in production
// and one with execFast switched off, and must leave identical registers, pc, privilege, CSRs,
// counters, guest RAM and device memory after every run() budget.
// HART_FUZZ_N sets the total instruction budget (default 3 million), HART_FUZZ_SEED the seed of
// the whole run, HART_FUZZ_CASE replays a single case by the case seed a failure prints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EquivalenceRig } from "./testing/equivalence_rig.js";
import { buildScenario } from "./testing/random_scenario.js";
import { makeRng } from "./testing/rng.js";

const TOTAL = Number(process.env.HART_FUZZ_N ?? 3_000_000);
const SEED = Number(process.env.HART_FUZZ_SEED ?? 0x5eed_cafe) >>> 0;
const ONE_CASE = process.env.HART_FUZZ_CASE;

test(`execFast and execSlow agree on random programs in random M/S/U, Sv39/Sv48/bare and TLB states (seed ${SEED}, ${TOTAL} steps)`, (t) => {
  const rig = new EquivalenceRig();
  const seeds = makeRng(SEED);
  let steps = 0;
  let cases = 0;
  while (steps < TOTAL) {
    const caseSeed = ONE_CASE !== undefined ? Number(ONE_CASE) >>> 0 : seeds.u32();
    const budget = ONE_CASE !== undefined ? TOTAL : 2000 + seeds.below(6000);
    const scenario = buildScenario(caseSeed, budget);
    const failure = rig.check(scenario);
    if (failure !== null) {
      assert.fail(`${failure}\nreplay this case alone: HART_FUZZ_CASE=${caseSeed} HART_FUZZ_N=${budget} node --import tsx --test src/cpu/hart_equivalence_test.ts (run seed ${SEED}, case ${cases})`);
    }
    steps += budget;
    cases++;
    if (ONE_CASE !== undefined) break;
  }
  t.diagnostic(`${cases} cases, ${steps} steps, ${rig.retired} instructions retired on each path`);
  // The programs must mostly execute, not just trap: a generator that only faults would prove nothing.
  assert.ok(rig.retired > steps / 3, `only ${rig.retired} of ${steps} steps retired an instruction`);
});
