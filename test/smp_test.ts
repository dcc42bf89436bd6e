// SMP in the real guest: a static riscv64 program (test/guest/smp_torture.c, built here with
// Debian's cross compiler) runs threads of contended atomics, LR/SC loops, a mutex and a futex
// ping-pong; every count must be exact and every hart must have run guest code. On --cpus 4 the
// vCPUs are worker threads; the time-sliced mode gets the same check on 2 vCPUs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodevisor, ensureTestImage } from "./helpers.js";
import { buildGuestProgramDisk, runFromDisk } from "./testing/guest_programs.js";

/** The torture program on a raw disk. */
const buildTortureDisk = (dir: string): string => buildGuestProgramDisk("smp_torture", dir, ["-pthread"]);

/** Runs the torture program on `cpus` vCPUs with `threads` threads; returns its figures. */
async function torture(disk: string, cpus: number, args: string, env: NodeJS.ProcessEnv = {}): Promise<Record<string, string>> {
  const script = runFromDisk("/dev/vda", args);
  const r = await nodevisor(["run", "--cpus", String(cpus), "--disk", `${disk},readonly`, "--", "sh", "-c", script], { timeoutMs: 900_000, env });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  return Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
}

test("4 vCPUs: contended atomics, LR/SC, a mutex and futex ping-pong count exactly, on every hart", async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp-"));
  try {
    const disk = buildTortureDisk(dir);
    const figures = await torture(disk, 4, "4 20000 500");
    for (const key of ["atomic32", "atomic64", "lrsc", "mutex"]) assert.equal(figures[key], "80000", `${key}: ${JSON.stringify(figures)}`);
    assert.equal(figures.pingpong, "2000");
    assert.equal(figures.online_cpus, "4");
    assert.equal(figures.cpus_seen, "f", "threads ran on all four harts");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the same program on 2 vCPUs time-sliced on one thread (the mode firmware guests use)", async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp-"));
  try {
    const figures = await torture(buildTortureDisk(dir), 2, "2 5000 200", { NODEVISOR_VCPU_THREADS: "0" });
    for (const key of ["atomic32", "atomic64", "lrsc", "mutex"]) assert.equal(figures[key], "10000", `${key}: ${JSON.stringify(figures)}`);
    assert.equal(figures.pingpong, "400");
    assert.equal(figures.cpus_seen, "3", "threads ran on both harts");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("store buffering across vCPU threads: `fence rw,rw` keeps each store before the load after it (no round sees both loads read 0)", async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp-"));
  try {
    const disk = buildGuestProgramDisk("litmus_sb", dir, ["-pthread"]);
    const r = await nodevisor(["run", "--cpus", "2", "--disk", `${disk},readonly`, "--", "sh", "-c", runFromDisk("/dev/vda", "200000")], { timeoutMs: 900_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const figures = Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
    assert.equal(figures.rounds, "200000", r.stdout);
    assert.equal(figures.forbidden, "0", `rounds in which both loads read 0: ${r.stdout}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
