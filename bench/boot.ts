// Boot and CPU benchmarks: nodevisor and qemu-system-riscv64 (TCG) on the same kernel and
// initrd, in one run, printed side by side with the ratio.

import { spawn, spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { ensureDefaultImage } from "../src/image/index.js";
import { commandArgument } from "../src/vm/guest_protocol.js";
import { FAST_BOOT_ARGS } from "../src/vm/vm.js";
import { vmmNodeFlags } from "../src/cli/vmm_node_flags.js";
import { ControlClient } from "../src/vm/control_client.js";
import type { VmStats } from "../src/vm/controller.js";
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
/** What users start (`npx nodevisor`): run as a program, its shell lines start Node with the VMM's flags (bin/nodevisor.js). */
const BIN = fileURLToPath(new URL("../bin/nodevisor.js", import.meta.url));
/** The VMM process itself, with the flags bin/nodevisor.js gives it: for figures read off its pid. */
export const VMM_ARGS = [...vmmNodeFlags([]), CLI];
/** A fixed CPU-bound guest workload (busybox sh integer arithmetic), between two serial-console markers. */
export const LOOP = "i=0; s=0; while [ $i -lt 30000 ]; do s=$(( (s * 31 + i) % 1000003 )); i=$((i+1)); done";
// The pause after the end marker keeps the VM up while the host reads its counters.
export const WORKLOAD = ["sh", "-c", `echo @@work-start > /dev/ttyS0; ${LOOP}; echo @@work-end > /dev/ttyS0; sleep 1`];
const INIT_MARKER = "nodevisor: init started";

export interface RunTiming {
  initMs: number | null;
  totalMs: number;
  instructions?: number;
}

export async function runOurs(argv: string[], runArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunTiming> {
  const t0 = performance.now(), epoch0 = performance.timeOrigin + t0;
  const child = spawn(BIN, ["run", ...runArgs, "--", ...argv], {
    env: { ...process.env, ...env, NODEVISOR_TIMINGS: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.resume();
  const status = await new Promise<number | null>((r) => child.on("close", r));
  const totalMs = performance.now() - t0;
  const m = /nodevisor-timings (\{.*\})/.exec(stderr);
  if (status !== 0 || !m) throw new Error(`nodevisor run failed (status ${status}): ${stderr.slice(-1500)}`);
  const t = JSON.parse(m[1]!) as { initAtEpochMs: number | null; instructions: number };
  return { initMs: t.initAtEpochMs === null ? null : t.initAtEpochMs - epoch0, totalMs, instructions: t.instructions };
}

export interface WorkloadTiming {
  ms: number;
  /** Guest instructions between the markers (known only for our own interpreter). */
  instructions: number | null;
  /** nodevisor only: query-stats and the process's resident memory at the end marker. */
  stats?: VmStats;
  rssBytes?: number;
}

/** VmRSS of a process, in bytes (0 when unreadable). */
function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs a workload (WORKLOAD by default) in nodevisor; times it between the serial markers and reads instret over the control socket. */
export async function workloadOurs(runArgs: string[] = [], workload: string[] = WORKLOAD, env: NodeJS.ProcessEnv = {}): Promise<WorkloadTiming> {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bench-"));
  const sock = join(dir, "vm.sock");
  const child = spawn(process.execPath, [...VMM_ARGS, "run", ...runArgs, "--control-socket", sock, "--", ...workload], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  child.stderr.resume();
  const closed = new Promise((r) => child.on("close", r));
  try {
    while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 50));
    const client = await ControlClient.connect(sock);
    const marks: Array<{ t: number; instr: number; stats: VmStats; rss: number }> = [];
    let serial = "";
    let pending = Promise.resolve();
    client.on("CONSOLE", (d: { data: string }) => {
      const before = serial.split("@@work-").length;
      serial += Buffer.from(d.data, "base64").toString();
      for (let n = before; n < serial.split("@@work-").length; n++) {
        const t = performance.now();
        pending = pending
          .then(async () => {
            const st = await client.execute<VmStats>("query-stats");
            marks.push({ t, instr: st.instructionsRetired, stats: st, rss: rssOf(child.pid) });
          })
          .catch(() => {});
      }
    });
    await client.execute("console-attach");
    await closed;
    await pending;
    client.close();
    if (marks.length < 2) throw new Error("nodevisor: the workload markers never appeared on the serial console");
    return { ms: marks[1]!.t - marks[0]!.t, instructions: marks[1]!.instr - marks[0]!.instr, stats: marks[1]!.stats, rssBytes: marks[1]!.rss };
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a workload (WORKLOAD by default) in QEMU and times it between the same serial markers. */
export async function workloadQemu(kernel: string, initrd: string, workload: string[] = WORKLOAD, smp = 1): Promise<WorkloadTiming> {
  let start = 0;
  let end = 0;
  await runQemu(kernel, initrd, workload, (text) => {
    if (!start && text.includes("@@work-start")) start = performance.now();
    if (!end && text.includes("@@work-end")) end = performance.now();
  }, smp);
  if (!start || !end) throw new Error("qemu: the workload markers never appeared on the serial console");
  return { ms: end - start, instructions: null };
}

export async function runQemu(kernel: string, initrd: string, argv: string[], onSerial?: (text: string) => void, smp = 1): Promise<RunTiming> {
  const consoles = [0, 1, 2].flatMap((i) => ["-chardev", `null,id=c${i}`, "-device", `virtconsole,chardev=c${i}`]);
  const args = [
    "-M", "virt", "-m", "512", "-smp", String(smp), ...(smp > 1 ? ["-accel", "tcg,thread=multi"] : []), "-nographic", "-no-reboot",
    "-kernel", kernel, "-initrd", initrd,
    "-append", `console=ttyS0 panic=-1 ${FAST_BOOT_ARGS.join(" ")} quiet loglevel=1 ${commandArgument(argv)}`,
    "-device", "virtio-rng-device", "-device", "virtio-serial-device", ...consoles,
  ];
  const t0 = performance.now();
  const child = spawn("qemu-system-riscv64", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let initMs: number | null = null;
  child.stdout.on("data", (d) => {
    out += d;
    if (initMs === null && out.includes(INIT_MARKER)) initMs = performance.now() - t0;
    onSerial?.(out);
  });
  child.stderr.resume();
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  await new Promise((r) => child.on("close", r));
  clearTimeout(timer);
  return { initMs, totalMs: performance.now() - t0 };
}

export const fmt = (ms: number | null | undefined): string => (ms == null ? "n/a" : `${(ms / 1000).toFixed(2)} s`);
const ratio = (ours: number | null | undefined, qemu: number | null | undefined): string =>
  ours == null || qemu == null ? "n/a" : `${(ours / qemu).toFixed(2)}x`;

export async function benchBoot(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  console.log(`\n== Boot and CPU: nodevisor vs qemu-system-riscv64 (TCG), kernel ${image.kernelVersion}, 1 vCPU, 512 MiB ==`);
  const oursTrue = await runOurs(["true"]);
  const qemuTrue = haveQemu ? await runQemu(image.kernel, image.initrd, ["true"]) : null;
  const oursWork = await workloadOurs();
  const qemuWork = haveQemu ? await workloadQemu(image.kernel, image.initrd) : null;

  // Both VMs execute the same guest code; our interpreter counts its instructions.
  const workInstr = oursWork.instructions ?? 0;
  const oursWorkMs = oursWork.ms;
  const qemuWorkMs = qemuWork ? qemuWork.ms : null;
  const mips = (ms: number | null): number | null => (ms && ms > 0 ? workInstr / ms / 1000 : null);

  const rows: Array<[string, string, string, string]> = [
    ["process start -> guest /init", fmt(oursTrue.initMs), fmt(qemuTrue?.initMs), ratio(oursTrue.initMs, qemuTrue?.initMs)],
    ["whole `run -- true`", fmt(oursTrue.totalMs), fmt(qemuTrue?.totalMs), ratio(oursTrue.totalMs, qemuTrue?.totalMs)],
    ["CPU workload (sh arithmetic loop)", fmt(oursWorkMs), fmt(qemuWorkMs), ratio(oursWorkMs, qemuWorkMs)],
    [
      "guest MIPS on that workload",
      mips(oursWorkMs)?.toFixed(1) ?? "n/a",
      mips(qemuWorkMs)?.toFixed(1) ?? "n/a",
      mips(oursWorkMs) && mips(qemuWorkMs) ? `${(mips(oursWorkMs)! / mips(qemuWorkMs)!).toFixed(2)}x` : "n/a",
    ],
  ];
  console.log(["metric".padEnd(36), "nodevisor".padStart(12), "qemu".padStart(12), "ours/qemu".padStart(10)].join(" "));
  for (const [a, b, c, d] of rows) console.log([a.padEnd(36), b.padStart(12), c.padStart(12), d.padStart(10)].join(" "));
  console.log(
    `(workload = ${(workInstr / 1e6).toFixed(0)} M guest instructions, timed between serial markers inside one VM; a whole \`run -- true\` = ${((oursTrue.instructions ?? 0) / 1e6).toFixed(0)} M instructions)`,
  );
  if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
}
