// The JIT tier against the interpreter and QEMU's TCG, in one run on the same kernel and initrd:
// boot, a whole `run -- true`, the sh arithmetic loop, and the first `modprobe ext4` (what the
// first ext4 mount costs: the kernel hashes the module's signature), with the JIT's compile
// figures and the resident memory of the VM process at the end of the loop.
import { spawnSync } from "node:child_process";
import { ensureDefaultImage } from "../src/image/index.js";
import { fmt, runOurs, runQemu, workloadOurs, workloadQemu, WORKLOAD, type RunTiming, type WorkloadTiming } from "./boot.js";

const MODPROBE = ["sh", "-c", "echo @@work-start > /dev/ttyS0; modprobe ext4; echo @@work-end > /dev/ttyS0; sleep 1"];
const TIERS = ["interp", "jit"] as const;

interface TierFigures {
  run: RunTiming;
  loop: WorkloadTiming;
  modprobe: WorkloadTiming;
}

const x = (a: number | null | undefined, b: number | null | undefined): string => (a == null || b == null || b === 0 ? "n/a" : `${(a / b).toFixed(2)}x`);
const mib = (b: number | undefined): string => (b ? `${(b / 2 ** 20).toFixed(0)} MiB` : "n/a");

export async function benchJit(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  console.log(`\n== CPU tiers: interpreter vs JIT vs qemu-system-riscv64 (TCG), kernel ${image.kernelVersion}, 1 vCPU, 512 MiB ==`);
  const ours: Record<string, TierFigures> = {};
  for (const tier of TIERS) {
    const args = ["--cpu-tier", tier];
    ours[tier] = { run: await runOurs(["true"], args), loop: await workloadOurs(args), modprobe: await workloadOurs(args, MODPROBE) };
  }
  const qemu = haveQemu ? {
    run: await runQemu(image.kernel, image.initrd, ["true"]),
    loop: await workloadQemu(image.kernel, image.initrd, WORKLOAD),
    modprobe: await workloadQemu(image.kernel, image.initrd, MODPROBE),
  } : null;
  const i = ours.interp!, j = ours.jit!;
  const loopInstr = i.loop.instructions ?? 0;
  const mips = (ms: number | null | undefined): number | null => (ms ? loopInstr / ms / 1000 : null);
  const rows: string[][] = [
    ["process start -> guest /init", fmt(i.run.initMs), fmt(j.run.initMs), fmt(qemu?.run.initMs), x(j.run.initMs, qemu?.run.initMs)],
    ["whole `run -- true`", fmt(i.run.totalMs), fmt(j.run.totalMs), fmt(qemu?.run.totalMs), x(j.run.totalMs, qemu?.run.totalMs)],
    ["sh arithmetic loop", fmt(i.loop.ms), fmt(j.loop.ms), fmt(qemu?.loop.ms), x(j.loop.ms, qemu?.loop.ms)],
    ["guest MIPS on that loop", mips(i.loop.ms)?.toFixed(1) ?? "n/a", mips(j.loop.ms)?.toFixed(1) ?? "n/a", mips(qemu?.loop.ms)?.toFixed(1) ?? "n/a",
      x(mips(j.loop.ms), mips(qemu?.loop.ms))],
    ["first `modprobe ext4`", fmt(i.modprobe.ms), fmt(j.modprobe.ms), fmt(qemu?.modprobe.ms), x(j.modprobe.ms, qemu?.modprobe.ms)],
    ["VM process RSS after the loop", mib(i.loop.rssBytes), mib(j.loop.rssBytes), "", ""],
  ];
  console.log(["metric".padEnd(32), "interp".padStart(10), "jit".padStart(10), "qemu".padStart(10), "jit/qemu".padStart(9)].join(" "));
  for (const r of rows) console.log([r[0]!.padEnd(32), r[1]!.padStart(10), r[2]!.padStart(10), r[3]!.padStart(10), r[4]!.padStart(9)].join(" "));
  const js = j.loop.stats?.jit;
  if (js) {
    console.log(`JIT at the end of the loop: ${js.compiles} modules compiled in ${js.compileMs} ms (${(js.compileMs / Math.max(1, js.compiles)).toFixed(2)} ms each, ` +
      `${((js.compileMs * 1000) / Math.max(1, js.blocks)).toFixed(0)} us a block), ${js.blocks} blocks, ${(js.codeBytes / 1024).toFixed(0)} KiB of wasm, ` +
      `${js.invalidations} invalidations, ${js.flushes} flushes, ${js.handBacks} hand-backs, ${js.missedEntries} missed entries, ` +
      `${(js.compiledShare * 100).toFixed(1)}% of all instructions run compiled`);
  }
  console.log(`(loop = ${(loopInstr / 1e6).toFixed(0)} M guest instructions; speedup of the JIT on it: ${x(i.loop.ms, j.loop.ms)})`);
  if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
}
