// Snapshots and live migration: save time, how long the guest is stopped, file size and time to
// a running guest again, and a live migration between two processes (total time, downtime), for
// an idle VM at its shell (512 MiB, and 2 GiB with NODEVISOR_BENCH_2G=1), beside QEMU saving the
// same guest with `migrate exec:cat > FILE`, restoring it with `-incoming exec:cat FILE` and
// migrating between two QEMU processes over a UNIX socket.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createConnection } from "node:net";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { ensureDefaultImage } from "../src/image/index.js";
import { ControlClient } from "../src/vm/control_client.js";
import type { VmStats, VmStatus } from "../src/vm/controller.js";
import { FAST_BOOT_ARGS } from "../src/vm/vm.js";
import { fmt, VMM_ARGS } from "./boot.js";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A process that only loads Node and the CLI bundle (`run --help`): the floor under any restore. */
async function programLoadMs(): Promise<number> {
  const t0 = performance.now();
  const p = spawn(process.execPath, [...VMM_ARGS, "run", "--help"], { stdio: "ignore" });
  await new Promise((r) => p.on("close", r));
  return performance.now() - t0;
}

interface SnapshotFigures {
  saveMs: number;
  pausedMs: number | null;
  /** Bytes the file takes on disk (ours is sparse). */
  bytes: number;
  restoreMs: number;
  /** Request to guest running, in a process started ahead and waiting (ours: --restore-wait + snapshot-load; QEMU: -incoming defer + migrate-incoming). */
  loadIntoWaitingMs: number | null;
  migrateMs: number | null;
  downtimeMs: number | null;
}

async function untilExists(path: string): Promise<void> {
  while (!existsSync(path)) await sleep(5);
}

async function ours(dir: string, memory: string): Promise<SnapshotFigures> {
  const sock = join(dir, "a.sock");
  const snap = join(dir, "ours.snap");
  const vm = spawn(process.execPath, [...VMM_ARGS, "run", "--memory", memory, "--control-socket", sock, "--console", "none"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  vm.stdout!.on("data", (d) => (out += d));
  vm.stderr!.on("data", (d) => {
    err += d;
    process.stderr.write(d);
  });
  try {
    await untilExists(sock);
    const c = await ControlClient.connect(sock);
    while (!out.includes("~# ")) await sleep(100);
    await sleep(2000); // let the shell settle
    const t0 = performance.now();
    const r = await c.execute<{ bytes: number; pausedMs: number }>("snapshot-save", { path: snap });
    const saveMs = performance.now() - t0;
    // Live migration of the same idle guest to a second process.
    const mig = join(dir, "mig.sock");
    let destErr = "";
    const dest = spawn(process.execPath, [...VMM_ARGS, "run", "--incoming", `unix:${mig}`, "--console", "none"], { stdio: ["ignore", "ignore", "pipe"] });
    dest.stderr!.on("data", (d) => (destErr += d));
    while (!destErr.includes("waiting for a migration")) await sleep(20);
    const t2 = performance.now();
    await c.execute("migrate", { uri: `unix:${mig}` });
    let m: { status: string; downtimeMs?: number; totalTimeMs?: number } = { status: "setup" };
    while (!["completed", "failed", "cancelled"].includes(m.status)) {
      // The source exits once the destination runs the guest: its last answer may not come.
      m = await c.execute<typeof m>("query-migrate").catch(() => ({ ...m, status: "completed" }));
      await sleep(5);
    }
    const migrateMs = m.status === "completed" ? performance.now() - t2 : null;
    await new Promise((res) => vm.on("close", res));
    dest.kill("SIGKILL");

    const sock2 = join(dir, "b.sock");
    const t1 = performance.now();
    const restored = spawn(process.execPath, [...VMM_ARGS, "run", "--restore", snap, "--control-socket", sock2, "--console", "none"], { stdio: ["ignore", "ignore", "inherit"] });
    await untilExists(sock2);
    const c2 = await ControlClient.connect(sock2);
    // Running again: the restored vCPUs have retired instructions of their own.
    for (;;) {
      const [st, stats] = await Promise.all([c2.execute<VmStatus>("query-status"), c2.execute<VmStats>("query-stats")]);
      if (st.state === "running" && stats.instructionsRetired > 0) break;
      await sleep(2);
    }
    const restoreMs = performance.now() - t1;
    await c2.execute("quit");
    await new Promise((res) => restored.on("close", res));
    // The same snapshot into a process that was started ahead and waits (Firecracker's model).
    const sock3 = join(dir, "w.sock");
    const warm = spawn(process.execPath, [...VMM_ARGS, "run", "--restore-wait", "--control-socket", sock3, "--console", "none", "--name", "warm"], { stdio: ["ignore", "ignore", "inherit"] });
    await untilExists(sock3);
    const c3 = await ControlClient.connect(sock3);
    await sleep(500); // let the waiting process settle, as a pool's would
    const t3 = performance.now();
    await c3.execute("snapshot-load", { path: snap });
    const loadIntoWaitingMs = performance.now() - t3;
    await c3.execute("quit");
    await new Promise((res) => warm.on("close", res));
    // The source exits as soon as the destination runs the guest; it logs the downtime it measured.
    const downtime = /the guest stopped for (\d+) ms/.exec(err);
    return { saveMs, pausedMs: r.pausedMs, bytes: statSync(snap).blocks * 512, restoreMs, loadIntoWaitingMs, migrateMs, downtimeMs: m.downtimeMs ?? (downtime ? Number(downtime[1]) : null) };
  } finally {
    vm.kill("SIGKILL");
  }
}

/** A minimal QMP client: one command at a time. */
async function qmp(path: string): Promise<(cmd: string, args?: object) => Promise<Record<string, unknown>>> {
  const sock = createConnection(path);
  sock.on("error", () => {}); // a QEMU killed after its migration resets the connection
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
  await new Promise<Record<string, unknown>>((r) => waiting.push(r)); // greeting
  const send = (cmd: string, args?: object) =>
    new Promise<Record<string, unknown>>((r) => {
      waiting.push(r);
      sock.write(`${JSON.stringify({ execute: cmd, ...(args ? { arguments: args } : {}) })}\n`);
    });
  await send("qmp_capabilities");
  return send;
}

/** Waits until an incoming QEMU runs the guest, continuing it if the stream left it paused. */
async function untilRunning(send: (cmd: string) => Promise<Record<string, unknown>>): Promise<void> {
  for (;;) {
    const st = ((await send("query-status")).return ?? {}) as { status?: string };
    if (st.status === "running") return;
    if (st.status === "paused" || st.status === "postmigrate") await send("cont");
    await sleep(2);
  }
}

function qemuArgs(kernel: string, initrd: string, qmpPath: string, extra: string[], memoryMiB = 512): string[] {
  const consoles = [0, 1, 2].flatMap((i) => ["-chardev", `null,id=c${i}`, "-device", `virtconsole,chardev=c${i}`]);
  return [
    "-M", "virt", "-m", String(memoryMiB), "-smp", "1", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
    "-append", `console=ttyS0 panic=-1 ${FAST_BOOT_ARGS.join(" ")} quiet loglevel=1`,
    "-device", "virtio-rng-device", "-device", "virtio-serial-device", ...consoles,
    "-qmp", `unix:${qmpPath},server=on,wait=off`, ...extra,
  ];
}

async function qemu(dir: string, kernel: string, initrd: string, memoryMiB: number): Promise<SnapshotFigures> {
  const file = join(dir, "qemu.state");
  const q1 = join(dir, "q1.sock");
  let vm: ChildProcess = spawn("qemu-system-riscv64", qemuArgs(kernel, initrd, q1, [], memoryMiB), { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  vm.stdout!.on("data", (d) => (out += d));
  let dest: ChildProcess | null = null;
  const finished = async (send: (cmd: string) => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> => {
    for (;;) {
      const info = ((await send("query-migrate")).return ?? {}) as Record<string, unknown>;
      if (info.status === "completed" || info.status === "failed") return info;
      await sleep(5);
    }
  };
  try {
    while (!out.includes("~# ")) await sleep(100);
    await sleep(2000);
    let send = await qmp(q1);
    // Live migration between two QEMU processes first (the source stays running after a migration to a file is not possible).
    const q3 = join(dir, "q3.sock");
    const mig = join(dir, "qmig.sock");
    dest = spawn("qemu-system-riscv64", qemuArgs(kernel, initrd, q3, ["-incoming", `unix:${mig}`], memoryMiB), { stdio: ["ignore", "ignore", "ignore"] });
    await untilExists(mig);
    const tm = performance.now();
    await send("migrate", { uri: `unix:${mig}` });
    const minfo = await finished(send);
    const migrateMs = minfo.status === "completed" ? performance.now() - tm : null;
    vm.kill("SIGKILL");
    await new Promise((r) => vm.on("close", r));
    // The destination runs the guest now: save it from there.
    vm = dest;
    dest = null;
    send = await qmp(q3);
    const t0 = performance.now();
    await send("migrate", { uri: `exec:cat > ${file}` });
    const info = await finished(send);
    const saveMs = performance.now() - t0;
    vm.kill("SIGKILL");
    await new Promise((r) => vm.on("close", r));

    const q2 = join(dir, "q2.sock");
    const t1 = performance.now();
    vm = spawn("qemu-system-riscv64", qemuArgs(kernel, initrd, q2, ["-incoming", `exec:cat ${file}`], memoryMiB), { stdio: ["ignore", "ignore", "ignore"] });
    await untilExists(q2);
    await sleep(5);
    const send2 = await qmp(q2);
    await untilRunning(send2);
    const restoreMs = performance.now() - t1;
    vm.kill("SIGKILL");
    await new Promise((r) => vm.on("close", r));
    // Into a QEMU started ahead with -incoming defer: migrate-incoming, then cont once it is in.
    const q4 = join(dir, "q4.sock");
    vm = spawn("qemu-system-riscv64", qemuArgs(kernel, initrd, q4, ["-incoming", "defer"], memoryMiB), { stdio: ["ignore", "ignore", "ignore"] });
    await untilExists(q4);
    await sleep(5);
    const send4 = await qmp(q4);
    await sleep(500);
    const t4 = performance.now();
    await send4("migrate-incoming", { uri: `exec:cat ${file}` });
    await untilRunning(send4);
    const loadIntoWaitingMs = performance.now() - t4;
    return {
      saveMs, pausedMs: typeof info.downtime === "number" ? info.downtime : null, bytes: statSync(file).blocks * 512, restoreMs, loadIntoWaitingMs,
      migrateMs, downtimeMs: typeof minfo.downtime === "number" ? minfo.downtime : null,
    };
  } finally {
    vm.kill("SIGKILL");
    dest?.kill("SIGKILL");
  }
}

export async function benchSnapshot(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  const sizes = process.env.NODEVISOR_BENCH_2G === "1" ? [512, 2048] : [512];
  for (const mib of sizes) {
    console.log(`\n== Snapshots and live migration: an idle ${mib} MiB VM at its shell, nodevisor snapshot-save / run --restore / migrate vs QEMU migrate to a file / -incoming / migrate ==`);
    const dir = mkdtempSync(join(tmpdir(), "nodevisor-bench-snap-"));
    try {
      const o = await ours(dir, `${mib}M`);
      const loadMs = await programLoadMs();
      const q = haveQemu ? await qemu(dir, image.kernel, image.initrd, mib) : null;
      const size = (b: number | undefined) => (b === undefined ? "n/a" : `${(b / 2 ** 20).toFixed(1)} MiB`);
      const ms = (v: number | null | undefined) => (v == null ? "n/a" : `${Math.round(v)} ms`);
      const rows: string[][] = [
        ["save (command to file complete)", fmt(o.saveMs), fmt(q?.saveMs)],
        ["guest stopped during save", ms(o.pausedMs), ms(q?.pausedMs)],
        ["file size on disk", size(o.bytes), size(q?.bytes)],
        ["process start -> guest running again", ms(o.restoreMs), ms(q?.restoreMs)],
        ["  of which Node + the CLI bundle (run --help)", ms(loadMs), "n/a"],
        ["load into a waiting process -> running", ms(o.loadIntoWaitingMs), ms(q?.loadIntoWaitingMs)],
        ["live migration, command to completed", ms(o.migrateMs), ms(q?.migrateMs)],
        ["live migration downtime", ms(o.downtimeMs), ms(q?.downtimeMs)],
      ];
      console.log(["metric".padEnd(40), "nodevisor".padStart(12), "qemu".padStart(12)].join(" "));
      for (const r of rows) console.log([r[0]!.padEnd(40), r[1]!.padStart(12), r[2]!.padStart(12)].join(" "));
      if (!haveQemu) console.log("qemu-system-riscv64 is not installed (Debian package qemu-system-misc): QEMU columns are empty.");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log("(Both saves are live pre-copy: the guest stops only for the last pages and the device state. Targets: restore < 50 ms, idle migration downtime < 50 ms. Waiting process: ours --restore-wait + snapshot-load, QEMU -incoming defer + migrate-incoming.)");
}
