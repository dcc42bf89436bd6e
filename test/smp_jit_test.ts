// The JIT on vCPU threads (docs/jit.md, "Several vCPU threads"): each worker compiles its own hart's
// hot code, and a store from any hart drops every thread's code of the page it writes. The real
// guest runs test/guest/smc_threads.c on two vCPU threads: one hart rewrites a function another
// hart calls compiled, and after the round is published and fence.i the new code must run, every
// round. The SMP torture and store-buffering programs of smp_test.ts run there too.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodevisor, ensureTestImage } from "./helpers.js";
import { buildGuestProgramDisk, runFromDisk } from "./testing/guest_programs.js";

before(ensureTestImage, { timeout: 600_000 });

/** Runs test/guest/NAME.c with `args` on 2 vCPU threads on the JIT; its "key value" lines and the JIT's figures. */
async function runProgram(name: string, args: string): Promise<{ figures: Record<string, string>; jit: Record<string, number> }> {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp-jit-"));
  try {
    const disk = buildGuestProgramDisk(name, dir, ["-pthread"]);
    const r = await nodevisor(["run", "--cpus", "2", "--cpu-tier", "jit", "--disk", `${disk},readonly`, "--", "sh", "-c", runFromDisk("/dev/vda", args)], {
      timeoutMs: 900_000,
      env: { NODEVISOR_VCPU_THREADS: "1", NODEVISOR_JIT_DEBUG: "1" },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr.slice(-3000)}`);
    const m = /^jit: (\{.*\})$/m.exec(r.stderr);
    assert.ok(m, `no JIT figures on stderr: ${r.stderr.slice(-2000)}`);
    return { figures: Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string])), jit: JSON.parse(m[1]!) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("one hart rewrites code another hart runs compiled on its own thread: after fence.i the new code runs, every round", async () => {
  const rounds = 60;
  const { figures, jit } = await runProgram("smc_threads", `${rounds} 100000`);
  assert.ok("ok" in figures, `the program did not finish: ${JSON.stringify(figures)}`);
  assert.equal(figures.rounds, String(rounds));
  assert.equal(figures.stale, "0", `rounds whose new code did not run after fence.i: ${JSON.stringify(figures)}`);
  assert.equal(figures.torn, "0", `calls that returned neither the old code's value nor the new: ${JSON.stringify(figures)}`);
  // The runner's thread compiled the function's page and the writer's stores dropped it, round after round.
  assert.ok(jit.invalidations >= rounds / 2, `pages of compiled code dropped by stores: ${JSON.stringify(jit)}`);
  assert.ok(jit.compiledShare > 0.5, `the guest ran compiled: ${JSON.stringify(jit)}`);
});

test("contended atomics, LR/SC, a mutex, futexes and store buffering behind fences are exact with both harts compiled on their own threads", async () => {
  const { figures, jit } = await runProgram("smp_torture", "2 20000 300");
  for (const key of ["atomic32", "atomic64", "lrsc", "mutex"]) assert.equal(figures[key], "40000", `${key}: ${JSON.stringify(figures)}`);
  assert.equal(figures.pingpong, "600"); // threads x rounds
  assert.equal(figures.cpus_seen, "3", "threads ran on both harts");
  assert.ok(jit.compiledShare > 0.5, `the guest ran compiled: ${JSON.stringify(jit)}`);
  const sb = await runProgram("litmus_sb", "200000");
  assert.equal(sb.figures.rounds, "200000");
  assert.equal(sb.figures.forbidden, "0", `rounds in which both loads read 0 (a compiled FENCE that is no host barrier): ${JSON.stringify(sb.figures)}`);
});
