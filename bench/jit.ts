// The JIT tier against the interpreter and QEMU's TCG, in one run on the same kernel and initrd:
// boot, a whole `run -- true`, the sh arithmetic loop, and the first `modprobe ext4` (what the
// first ext4 mount costs: the kernel hashes the module's signature), with the JIT's compile
// figures and the resident memory of the VM process at the end of the loop.
//
// The JIT and QEMU are measured in NODEVISOR_BENCH_ROUNDS rounds (default 3), one of each per
// round, so that a slow minute of a shared machine falls on both; each figure is the median of
// its rounds, with the range beside it. (QEMU's own loop took 0.79-1.24 s in runs of the same
// hour, and about one JIT loop in ten is an outlier: docs/jit.md.) The interpreter runs once.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDefaultImage } from "../src/image/index.js";
import { fmt, runOurs, runQemu, workloadOurs, workloadQemu, WORKLOAD, type RunTiming, type WorkloadTiming } from "./boot.js";

const MODPROBE = ["sh", "-c", "echo @@work-start > /dev/ttyS0; modprobe ext4; echo @@work-end > /dev/ttyS0; sleep 1"];

interface Figures {
  run: RunTiming;
  /** The JIT's boot without a profile of earlier runs (jit_profile.ts; NODEVISOR_JIT_PROFILE=0): a guest's first boot. */
  firstRun?: RunTiming;
  loop: WorkloadTiming;
  modprobe: WorkloadTiming;
}

const x = (a: number | null | undefined, b: number | null | undefined): string => (a == null || b == null || b === 0 ? "n/a" : `${(a / b).toFixed(2)}x`);
const mib = (b: number | undefined): string => (b ? `${(b / 2 ** 20).toFixed(0)} MiB` : "n/a");

/** The median of the figures that exist (null when none does). */
function median(values: Array<number | null | undefined>): number | null {
  const v = values.filter((n): n is number => typeof n === "number").sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** "median (min-max)" in seconds, or the one value. */
function spread(values: Array<number | null | undefined>): string {
  const v = values.filter((n): n is number => typeof n === "number");
  if (v.length <= 1) return fmt(v[0]);
  return `${fmt(median(v))} (${(Math.min(...v) / 1000).toFixed(2)}-${(Math.max(...v) / 1000).toFixed(2)})`;
}

/**
 * The JIT keeps a profile of what a guest compiled, per kernel and initrd, and uses it from the
 * guest's second run on (docs/jit.md). The JIT's runs here use a file of the bench's own, primed by
 * one run of each workload and grown by every run after, as a user's would be, so the figures do
 * not depend on what the user's cache holds; a guest's first boot (no profile) has a row of its own.
 */
const PROFILE = join(tmpdir(), `nodevisor-bench-jit-profile-${process.pid}.json`);

async function oursFigures(tier: string): Promise<Figures> {
  const args = ["--cpu-tier", tier];
  const env = tier === "jit" ? { NODEVISOR_JIT_PROFILE: PROFILE } : {};
  const firstRun = tier === "jit" ? await runOurs(["true"], args, { NODEVISOR_JIT_PROFILE: "0" }) : undefined;
  return { run: await runOurs(["true"], args, env), firstRun, loop: await workloadOurs(args, WORKLOAD, env), modprobe: await workloadOurs(args, MODPROBE, env) };
}

async function qemuFigures(kernel: string, initrd: string): Promise<Figures> {
  return {
    run: await runQemu(kernel, initrd, ["true"]),
    loop: await workloadQemu(kernel, initrd, WORKLOAD),
    modprobe: await workloadQemu(kernel, initrd, MODPROBE),
  };
}

export async function benchJit(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  const rounds = Math.max(1, Number(process.env.NODEVISOR_BENCH_ROUNDS) || 3);
  console.log(`\n== CPU tiers: interpreter vs JIT vs qemu-system-riscv64 (TCG), kernel ${image.kernelVersion}, 1 vCPU, 512 MiB; ` +
    `JIT and QEMU: median (range) of ${rounds} interleaved rounds ==`);
  const i = await oursFigures("interp");
  rmSync(PROFILE, { force: true });
  await oursFigures("jit"); // the profile's first runs, not measured
  const jit: Figures[] = [];
  const qemu: Figures[] = [];
  for (let r = 0; r < rounds; r++) {
    jit.push(await oursFigures("jit"));
    if (haveQemu) qemu.push(await qemuFigures(image.kernel, image.initrd));
  }
  const loopInstr = i.loop.instructions ?? 0;
  const mipsOf = (ms: number | null | undefined): number | null => (ms ? loopInstr / ms / 1000 : null);
  const row = (name: string, pick: (f: Figures) => number | null | undefined): string[] => {
    const j = median(jit.map(pick)), q = median(qemu.map(pick));
    return [name, fmt(pick(i)), spread(jit.map(pick)), spread(qemu.map(pick)), x(j, q)];
  };
  const jMips = mipsOf(median(jit.map((f) => f.loop.ms))), qMips = mipsOf(median(qemu.map((f) => f.loop.ms)));
  const rows: string[][] = [
    row("process start -> guest /init", (f) => f.run.initMs),
    ["  (JIT: a guest's first boot)", "", spread(jit.map((f) => f.firstRun?.initMs)), spread(qemu.map((f) => f.run.initMs)), x(median(jit.map((f) => f.firstRun?.initMs)), median(qemu.map((f) => f.run.initMs)))],
    row("whole `run -- true`", (f) => f.run.totalMs),
    row("sh arithmetic loop", (f) => f.loop.ms),
    ["guest MIPS on that loop (medians)", mipsOf(i.loop.ms)?.toFixed(1) ?? "n/a", jMips?.toFixed(1) ?? "n/a", qMips?.toFixed(1) ?? "n/a", x(jMips, qMips)],
    row("first `modprobe ext4`", (f) => f.modprobe.ms),
    ["VM process RSS after the loop", mib(i.loop.rssBytes), mib(median(jit.map((f) => f.loop.rssBytes)) ?? undefined), "", ""],
  ];
  console.log(["metric".padEnd(34), "interp".padStart(9), "jit".padStart(20), "qemu".padStart(20), "jit/qemu".padStart(9)].join(" "));
  for (const r of rows) console.log([r[0]!.padEnd(34), r[1]!.padStart(9), r[2]!.padStart(20), r[3]!.padStart(20), r[4]!.padStart(9)].join(" "));
  for (const [k, f] of jit.entries()) {
    const js = f.loop.stats?.jit;
    if (!js) continue;
    console.log(`JIT round ${k + 1}, end of the loop: ${js.compiles} modules compiled in ${js.compileMs} ms (${(js.compileMs / Math.max(1, js.compiles)).toFixed(2)} ms each, ` +
      `${((js.compileMs * 1000) / Math.max(1, js.blocks)).toFixed(0)} us a block), ${js.blocks} blocks, ${(js.codeBytes / 1024).toFixed(0)} KiB of wasm, ` +
      `${js.invalidations} invalidations, ${js.flushes} flushes, ${js.handBacks} hand-backs, ${js.missedEntries} missed entries, ` +
      `${(js.compiledShare * 100).toFixed(1)}% of all instructions run compiled`);
  }
  console.log(`(loop = ${(loopInstr / 1e6).toFixed(0)} M guest instructions; speedup of the JIT on it: ${x(i.loop.ms, median(jit.map((f) => f.loop.ms)))})`);
  console.log("(the JIT's rows use its profile of this guest's earlier runs, as from a guest's second run on; the row below /init: a first boot, without one: docs/jit.md)");
  rmSync(PROFILE, { force: true });
  if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
}
