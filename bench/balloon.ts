// The balloon: time to inflate and deflate 1 GiB of a 2 GiB guest, and the resident memory of an
// idle 2 GiB VM some seconds after boot with and without free page reporting, beside QEMU's
// virtio-balloon (`-device virtio-balloon-device,free-page-reporting=on|off`) on the same image.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ensureDefaultImage } from "../src/image/index.js";
import { ControlClient } from "../src/vm/control_client.js";
import type { BalloonInfo } from "../src/vm/controller.js";
import { FAST_BOOT_ARGS } from "../src/vm/vm.js";
import { fmt, VMM_ARGS } from "./boot.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** How long after the shell prompt the resident memory is read: reporting waits 2 s, then works through the free lists. */
const SETTLE_MS = 15_000;

interface BalloonFigures {
  idleRssMiB: number;
  inflateMs?: number;
  deflateMs?: number;
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "latin1"))![1]) / 1024;

/** Sets the guest to `value` bytes and waits until its balloon gets there; returns the milliseconds. */
async function move(set: () => Promise<unknown>, actual: () => Promise<number>, value: number): Promise<number> {
  const t0 = performance.now();
  await set();
  while ((await actual()) !== value) await sleep(20);
  return performance.now() - t0;
}

async function ours(dir: string, reporting: boolean, moveToo: boolean): Promise<BalloonFigures> {
  const sock = join(dir, `ours-${reporting}.sock`);
  const vm = spawn(process.execPath, [...VMM_ARGS, "run", "--memory", "2G", "--balloon", `reporting=${reporting ? "on" : "off"}`, "--control-socket", sock, "--console", "none"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  vm.stdout!.on("data", (d) => (out += d));
  try {
    while (!existsSync(sock)) await sleep(20);
    const c = await ControlClient.connect(sock);
    while (!out.includes("~# ")) await sleep(100);
    await sleep(SETTLE_MS);
    const f: BalloonFigures = { idleRssMiB: rssMiB(vm.pid!) };
    if (moveToo) {
      const actual = async () => (await c.execute<BalloonInfo>("query-balloon")).actual;
      f.inflateMs = await move(() => c.execute("balloon", { value: GiB }), actual, GiB);
      f.deflateMs = await move(() => c.execute("balloon", { value: 2 * GiB }), actual, 2 * GiB);
    }
    await c.execute("quit");
    await new Promise((res) => vm.on("close", res));
    return f;
  } finally {
    vm.kill("SIGKILL");
  }
}

/** A minimal QMP client: one command at a time. */
async function qmp(path: string): Promise<(cmd: string, args?: object) => Promise<Record<string, unknown>>> {
  const sock = createConnection(path);
  let buf = "";
  const waiting: Array<(m: Record<string, unknown>) => void> = [];
  sock.on("data", (d) => {
    buf += d;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      if ("return" in m || "error" in m || "QMP" in m) waiting.shift()?.(m);
    }
  });
  await new Promise<Record<string, unknown>>((r) => waiting.push(r));
  const send = (cmd: string, args?: object) =>
    new Promise<Record<string, unknown>>((r) => {
      waiting.push(r);
      sock.write(`${JSON.stringify({ execute: cmd, ...(args ? { arguments: args } : {}) })}\n`);
    });
  await send("qmp_capabilities");
  return send;
}

async function qemu(dir: string, kernel: string, initrd: string, reporting: boolean, moveToo: boolean): Promise<BalloonFigures> {
  const q = join(dir, `q-${reporting}.sock`);
  const consoles = [0, 1, 2].flatMap((i) => ["-chardev", `null,id=c${i}`, "-device", `virtconsole,chardev=c${i}`]);
  const vm: ChildProcess = spawn("qemu-system-riscv64", [
    "-M", "virt", "-m", "2048", "-smp", "1", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
    "-append", `console=ttyS0 panic=-1 ${FAST_BOOT_ARGS.join(" ")} quiet loglevel=1`,
    "-device", "virtio-rng-device", "-device", "virtio-serial-device", ...consoles,
    "-device", `virtio-balloon-device,free-page-reporting=${reporting ? "on" : "off"}`,
    "-qmp", `unix:${q},server=on,wait=off`,
  ], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  vm.stdout!.on("data", (d) => (out += d));
  try {
    while (!out.includes("~# ")) await sleep(100);
    await sleep(SETTLE_MS);
    const f: BalloonFigures = { idleRssMiB: rssMiB(vm.pid!) };
    if (moveToo) {
      const send = await qmp(q);
      const actual = async () => ((await send("query-balloon")).return as { actual: number }).actual;
      f.inflateMs = await move(() => send("balloon", { value: GiB }), actual, GiB);
      f.deflateMs = await move(() => send("balloon", { value: 2 * GiB }), actual, 2 * GiB);
    }
    return f;
  } finally {
    vm.kill("SIGKILL");
  }
}

export async function benchBalloon(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  console.log("\n== Balloon: a 2 GiB VM, nodevisor's virtio-balloon vs QEMU's virtio-balloon-device on the same image ==");
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bench-balloon-"));
  try {
    const o = await ours(dir, true, true);
    const oOff = await ours(dir, false, false);
    const q = haveQemu ? await qemu(dir, image.kernel, image.initrd, true, true) : null;
    const qOff = haveQemu ? await qemu(dir, image.kernel, image.initrd, false, false) : null;
    const mib = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(0)} MiB`);
    const rows: string[][] = [
      ["inflate 1 GiB (balloon -> actual reached)", fmt(o.inflateMs), fmt(q?.inflateMs)],
      ["deflate 1 GiB", fmt(o.deflateMs), fmt(q?.deflateMs)],
      [`idle VmRSS ${SETTLE_MS / 1000} s after the prompt, reporting on`, mib(o.idleRssMiB), mib(q?.idleRssMiB)],
      [`idle VmRSS ${SETTLE_MS / 1000} s after the prompt, reporting off`, mib(oOff.idleRssMiB), mib(qOff?.idleRssMiB)],
    ];
    console.log(["metric".padEnd(48), "nodevisor".padStart(12), "qemu".padStart(12)].join(" "));
    for (const r of rows) console.log([r[0]!.padEnd(48), r[1]!.padStart(12), r[2]!.padStart(12)].join(" "));
    console.log("(VmRSS is the whole process: nodevisor's includes Node.js and the VMM, ~100 MiB; QEMU's its TCG code cache.)");
    if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
