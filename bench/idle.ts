// Idle cost: host CPU used by a booted VM sitting at its shell prompt, nodevisor beside QEMU.

import { VMM_ARGS } from "./boot.js";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { ensureDefaultImage } from "../src/image/index.js";
import { FAST_BOOT_ARGS, QUIET_IDLE_ARGS } from "../src/vm/vm.js";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const SAMPLE_MS = 5000;

/** User+system CPU seconds of a process, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Waits for the prompt, then measures CPU use over SAMPLE_MS; returns percent of one core. */
async function idlePercent(child: ChildProcess, prompt: RegExp): Promise<number> {
  let out = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no shell prompt within 240 s")), 240_000);
    child.stdout!.on("data", (d) => {
      out += d;
      if (prompt.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await new Promise((r) => setTimeout(r, 2000)); // let boot-time background work settle
  const c0 = cpuSeconds(child.pid!);
  await new Promise((r) => setTimeout(r, SAMPLE_MS));
  const used = cpuSeconds(child.pid!) - c0;
  child.kill("SIGKILL");
  return (100 * used) / (SAMPLE_MS / 1000);
}

export async function benchIdle(): Promise<void> {
  const image = await ensureDefaultImage();
  console.log("\n== Idle: host CPU of a VM waiting at its shell prompt (percent of one core) ==");
  const ours = await idlePercent(spawn(process.execPath, [...VMM_ARGS, "run"], { stdio: ["pipe", "pipe", "ignore"] }), /~# /);
  let qemu: number | null = null;
  if (spawnSync("qemu-system-riscv64", ["--version"]).status === 0) {
    const args = ["-M", "virt", "-m", "512", "-nographic", "-kernel", image.kernel, "-initrd", image.initrd,
      "-append", `console=ttyS0 ${[...FAST_BOOT_ARGS, ...QUIET_IDLE_ARGS].join(" ")}`, "-device", "virtio-rng-device"];
    qemu = await idlePercent(spawn("qemu-system-riscv64", args, { stdio: ["pipe", "pipe", "ignore"] }), /~# /);
  }
  console.log(`nodevisor ${ours.toFixed(1)}%   qemu ${qemu === null ? "n/a" : `${qemu.toFixed(1)}%`}`);
}
