// SMP in the real guest: a static riscv64 program (test/guest/smp_torture.c, built here with
// Debian's cross compiler) runs 4 threads of contended atomics, LR/SC loops, a mutex and a futex
// ping-pong on --cpus 4; every count must be exact and every hart must have run guest code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, truncateSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodevisor, ROOT, ensureTestImage } from "./helpers.js";

const CC = "riscv64-linux-gnu-gcc";

/** Builds the torture program and returns a raw disk image holding it (ELF, zero-padded to 512 bytes). */
function buildTortureDisk(dir: string): string {
  const exe = join(dir, "smp_torture");
  try {
    execFileSync(CC, ["-O2", "-static", "-pthread", "-o", exe, join(ROOT, "test/guest/smp_torture.c")], { stdio: "pipe" });
  } catch (e) {
    throw new Error(`Cannot build the guest SMP test program with ${CC}: ${(e as Error).message.split("\n")[0]}. Install Debian's gcc-riscv64-linux-gnu (bash .ci/run does).`);
  }
  const disk = join(dir, "smp.img");
  copyFileSync(exe, disk);
  truncateSync(disk, Math.ceil(statSync(exe).size / 512) * 512);
  return disk;
}

test("4 vCPUs: contended atomics, LR/SC, a mutex and futex ping-pong count exactly, on every hart", async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp-"));
  try {
    const disk = buildTortureDisk(dir);
    // dd copies whole sectors: the zero padding after the ELF is harmless.
    const script = "dd if=/dev/vda of=/tmp/smp bs=512 2>/dev/null && chmod +x /tmp/smp && /tmp/smp 4 20000 500";
    const r = await nodevisor(["run", "--cpus", "4", "--disk", `${disk},readonly`, "--", "sh", "-c", script], { timeoutMs: 900_000 });
    const figures = Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    for (const key of ["atomic32", "atomic64", "lrsc", "mutex"]) assert.equal(figures[key], "80000", `${key}: ${r.stdout}`);
    assert.equal(figures.pingpong, "2000");
    assert.equal(figures.online_cpus, "4");
    assert.equal(figures.cpus_seen, "f", "threads ran on all four harts");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
