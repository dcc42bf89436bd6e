// SMP: the same CPU-bound work as two guest processes, on 1 and 2 vCPUs, against
// qemu-system-riscv64 -smp 1 / -smp 2 with MTTCG, on the same kernel and initrd. The speedup is
// wall time on 1 vCPU over wall time on 2.

import { spawnSync } from "node:child_process";
import { ensureDefaultImage } from "../src/image/index.js";
import { fmt, LOOP, workloadOurs, workloadQemu } from "./boot.js";

const TWO_PROCESSES = ["sh", "-c", `echo @@work-start > /dev/ttyS0; (${LOOP}) & (${LOOP}) & wait; echo @@work-end > /dev/ttyS0; sleep 1`];

export async function benchSmp(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  console.log(`\n== SMP: two CPU-bound guest processes on 1 and 2 vCPUs, nodevisor vs qemu-system-riscv64 (MTTCG) ==`);
  const ours1 = await workloadOurs(["--cpus", "1"], TWO_PROCESSES);
  const ours2 = await workloadOurs(["--cpus", "2"], TWO_PROCESSES);
  // The same two vCPUs time-sliced on one thread (what --cpus 2 did before worker threads).
  const sliced2 = await workloadOurs(["--cpus", "2"], TWO_PROCESSES, { NODEVISOR_VCPU_THREADS: "0" });
  // The interpreter on worker threads (the default for several vCPUs before the JIT ran there).
  const interp2 = await workloadOurs(["--cpus", "2", "--cpu-tier", "interp"], TWO_PROCESSES);
  const qemu1 = haveQemu ? await workloadQemu(image.kernel, image.initrd, TWO_PROCESSES, 1) : null;
  const qemu2 = haveQemu ? await workloadQemu(image.kernel, image.initrd, TWO_PROCESSES, 2) : null;
  const speedup = (a: { ms: number } | null, b: { ms: number } | null): string => (a && b ? `${(a.ms / b.ms).toFixed(2)}x` : "n/a");
  const rows: string[][] = [
    ["1 vCPU", fmt(ours1.ms), fmt(qemu1?.ms), qemu1 ? `${(ours1.ms / qemu1.ms).toFixed(2)}x` : "n/a"],
    ["2 vCPUs (worker threads)", fmt(ours2.ms), fmt(qemu2?.ms), qemu2 ? `${(ours2.ms / qemu2.ms).toFixed(2)}x` : "n/a"],
    ["2 vCPUs time-sliced on one thread", fmt(sliced2.ms), "", ""],
    ["2 vCPUs, interpreter (worker threads)", fmt(interp2.ms), "", ""],
    ["speedup 1 -> 2 vCPUs", speedup(ours1, ours2), speedup(qemu1, qemu2), ""],
  ];
  console.log(["metric".padEnd(36), "nodevisor".padStart(12), "qemu".padStart(12), "ours/qemu".padStart(10)].join(" "));
  for (const r of rows) console.log([r[0]!.padEnd(36), r[1]!.padStart(12), r[2]!.padStart(12), r[3]!.padStart(10)].join(" "));
  console.log(`(targets: speedup >= 1.7x on 2 host cores; the machine's load average now: ${(await import("node:os")).loadavg()[0]!.toFixed(1)})`);
  if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
}
