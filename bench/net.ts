// Network benchmarks, nodevisor beside QEMU in one run: TCP throughput and ping round trip between
// two guests (nodevisor over its switch, QEMU over its own -netdev socket, and QEMU guests over our
// switch, which isolates the switch from our guest CPU), the switch alone with synthetic peers
// (switch_capacity.ts), a rate-limited NIC's
// achieved rate and its neighbour's throughput, and host-to-guest TCP over user mode (passt for
// both). Times are taken inside the guests from /proc/uptime, the limited NIC's rate from its counters.

import { VMM_ARGS } from "./boot.js";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDefaultImage } from "../src/image/index.js";
import { commandArgument, parseSerialFallback } from "../src/image/init_script.js";
import { FAST_BOOT_ARGS } from "../src/vm/vm.js";
import { ControlClient } from "../src/vm/control_client.js";
import type { VmStats } from "../src/vm/controller.js";
import { switchCapacity } from "./switch_capacity.js";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const MB = 20;
/** Fetches /f from $1 and prints the transfer's start and end (guest uptime) and ping's summary. */
/** The switch's own cost shows only in transfers longer than TCP's start: QEMU guests move this much, several times. */
const SWITCH_MB = 100;
const SWITCH_ROUNDS = 3;
/** Also prints the guest's /proc/stat CPU line before and after, to tell whether its CPU was the bottleneck. */
const CLIENT = (server: string, pingTarget: string) =>
  `s0=$(head -1 /proc/stat); t0=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null http://${server}/f; t1=$(cut -d' ' -f1 /proc/uptime); s1=$(head -1 /proc/stat); echo "XFER $t0 $t1"; echo "STAT0 $s0"; echo "STAT1 $s1"; ping -c 5 ${pingTarget} | tail -1`;
const SERVER = (mb = MB) => `dd if=/dev/zero of=/tmp/f bs=1M count=${mb} 2>/dev/null; echo READY; httpd -f -p 80 -h /tmp`;

class Proc {
  out = "";
  readonly done: Promise<void>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on("data", (d: Buffer) => (this.out += d.toString("latin1")));
    child.stderr!.on("data", (d: Buffer) => (this.out += d.toString("latin1")));
    this.done = new Promise((r) => child.on("close", () => r()));
  }
  async waitFor(re: RegExp, ms = 300_000): Promise<void> {
    const end = Date.now() + ms;
    while (!re.test(this.out)) {
      if (Date.now() > end || this.child.exitCode !== null) throw new Error(`no ${re} in:\n${this.out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  kill(): void {
    this.child.kill("SIGKILL");
  }
}

interface NetFigures {
  mbPerSecond: number;
  rttMs: number | null;
  /** Share of the receiving guest's CPU time that was not idle during the transfer. */
  guestBusy: number | null;
}

/** Busy share between two /proc/stat "cpu" lines (idle and iowait count as idle). */
function busyShare(out: string): number | null {
  const line = (tag: string): number[] | null => {
    const m = new RegExp(`${tag} cpu\\s+([\\d ]+)`).exec(out);
    return m === null ? null : m[1]!.trim().split(/\s+/).map(Number);
  };
  const a = line("STAT0");
  const b = line("STAT1");
  if (a === null || b === null) return null;
  const d = b.map((v, i) => v - (a[i] ?? 0));
  const total = d.reduce((x, y) => x + y, 0);
  return total > 0 ? 1 - ((d[3] ?? 0) + (d[4] ?? 0)) / total : null;
}

function figures(out: string, mb = MB): NetFigures {
  const x = /XFER ([\d.]+) ([\d.]+)/.exec(out);
  if (!x) throw new Error(`the client printed no transfer time:\n${out.slice(-2000)}`);
  const rtt = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(out);
  return { mbPerSecond: mb / (Number(x[2]) - Number(x[1])), rttMs: rtt ? Number(rtt[1]) : null, guestBusy: busyShare(out) };
}

/** QEMU's RAM for a server holding an `mb` file in tmpfs (which may take half of RAM). */
const memoryFor = (mb: number): number => Math.max(256, 4 * mb);

/** The median of each figure over several runs. */
function median(runs: NetFigures[]): NetFigures {
  const mid = <T>(xs: T[]): T => xs[Math.floor(xs.length / 2)]!;
  const rtts = runs.map((r) => r.rttMs).filter((r): r is number => r !== null);
  const busy = runs.map((r) => r.guestBusy).filter((r): r is number => r !== null);
  return {
    mbPerSecond: mid(runs.map((r) => r.mbPerSecond).sort((a, b) => a - b)),
    rttMs: rtts.length > 0 ? mid(rtts.sort((a, b) => a - b)) : null,
    guestBusy: busy.length > 0 ? mid(busy.sort((a, b) => a - b)) : null,
  };
}

function ours(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc(spawn(process.execPath, [...VMM_ARGS, "run", "--memory", "256M", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } }));
}

function qemu(image: { kernel: string; initrd: string }, command: string, netdev: string, mac: string, memoryMb = 256): Proc {
  return new Proc(
    spawn("qemu-system-riscv64", [
      "-M", "virt", "-m", String(memoryMb), "-smp", "1", "-nographic", "-no-reboot", "-kernel", image.kernel, "-initrd", image.initrd,
      "-append", `console=ttyS0 panic=-1 quiet ${FAST_BOOT_ARGS.join(" ")} ${commandArgument(command)}`,
      "-netdev", `${netdev},id=n0`, "-device", `virtio-net-device,netdev=n0,mac=${mac}`, "-device", "virtio-rng-device",
    ], { stdio: ["ignore", "pipe", "pipe"] }),
  );
}

async function guestToGuestOurs(extra = ""): Promise<NetFigures> {
  const dir = mkdtempSync(join(tmpdir(), "nv-bench-net-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const server = ours(["--name", "alpha", "--net", `switch=bench${extra}`, "--", "sh", "-c", SERVER()], env);
  try {
    await server.waitFor(/READY/);
    const client = ours(["--name", "beta", "--net", `switch=bench${extra}`, "--", "sh", "-c", CLIENT("alpha", "alpha")], env);
    await client.done;
    return figures(client.out);
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function guestToGuestQemu(image: { kernel: string; initrd: string }, mb = MB): Promise<NetFigures> {
  const port = 20000 + (process.pid % 20000);
  // The same MTU as our switch announces, so both move the same frames.
  const server = qemu(image, `ip link set eth0 mtu 65520; ip addr add 10.0.3.10/24 dev eth0; ${SERVER(mb)}`, `socket,listen=127.0.0.1:${port}`, "52:54:00:bb:00:10", memoryFor(mb));
  try {
    await server.waitFor(/READY/);
    const client = qemu(image, `ip link set eth0 mtu 65520; ip addr add 10.0.3.11/24 dev eth0; ${CLIENT("10.0.3.10", "10.0.3.10")}`, `socket,connect=127.0.0.1:${port}`, "52:54:00:bb:00:11");
    await client.done;
    const r = parseSerialFallback(client.out);
    return figures(r?.output ?? client.out, mb);
  } finally {
    server.kill();
  }
}

/**
 * The same two QEMU guests, joined through our switch instead of QEMU's own socket: the guest CPU
 * is QEMU's on both rows, so this row shows whether our switch keeps up where the guest CPU is
 * not the bottleneck (with our own guests it always is: the interpreter saturates first).
 */
async function guestToGuestQemuOverSwitch(image: { kernel: string; initrd: string }, mb: number): Promise<NetFigures> {
  const dir = mkdtempSync(join(tmpdir(), "nv-bench-qsw-"));
  const env = { ...process.env, NODEVISOR_SWITCH_DIR: dir };
  const created = spawnSync(process.execPath, [CLI, "switch", "create", "qbench", "--no-dhcp"], { env, encoding: "utf8" });
  if (created.status !== 0) throw new Error(`could not create the bench switch: ${created.stderr}`);
  const sock = spawnSync(process.execPath, [CLI, "switch", "path", "qbench"], { env, encoding: "utf8" }).stdout.trim();
  const netdev = `stream,server=off,addr.type=unix,addr.path=${sock}`;
  const server = qemu(image, `ip link set eth0 mtu 65520; ip addr add 10.0.3.10/24 dev eth0; ${SERVER(mb)}`, netdev, "52:54:00:bb:00:20", memoryFor(mb));
  try {
    await server.waitFor(/READY/);
    const client = qemu(image, `ip link set eth0 mtu 65520; ip addr add 10.0.3.11/24 dev eth0; ${CLIENT("10.0.3.10", "10.0.3.10")}`, netdev, "52:54:00:bb:00:21");
    await client.done;
    const r = parseSerialFallback(client.out);
    return figures(r?.output ?? client.out, mb);
  } finally {
    server.kill();
    spawnSync(process.execPath, [CLI, "switch", "delete", "qbench"], { env });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function hostToGuest(run: (port: number) => Promise<string>): Promise<NetFigures> {
  const body = Buffer.alloc(MB << 20);
  const srv: Server = createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    return figures(await run((srv.address() as AddressInfo).port));
  } finally {
    srv.close();
  }
}

const USER_CLIENT = (port: number) => `gw=$(ip route | awk '/default/ {print $3}'); ${CLIENT(`$gw:${port}`, "$gw")}`;

async function userOurs(port: number): Promise<string> {
  const p = ours(["--net", "user", "--", "sh", "-c", USER_CLIENT(port)]);
  await p.done;
  return p.out;
}

async function userQemu(image: { kernel: string; initrd: string }, port: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "nv-bench-passt-"));
  const sock = join(dir, "passt.sock");
  const passt = new Proc(spawn("passt", ["-f", "-q", "-1", "-4", "-s", sock, ...(process.getuid?.() === 0 ? ["--runas", "0"] : [])], { stdio: ["ignore", "pipe", "pipe"] }));
  try {
    await new Promise((r) => setTimeout(r, 500));
    const p = qemu(image, USER_CLIENT(port), `stream,server=off,addr.type=unix,addr.path=${sock}`, "52:54:00:bb:00:12");
    await p.done;
    return parseSerialFallback(p.out)?.output ?? p.out;
  } finally {
    passt.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The limited NIC's receive limit in the rate-limit row, bytes per second. */
const LIMIT_BPS = 1 << 20;
/** How long the limited NIC's rate is sampled (after its first second's burst). */
const LIMIT_WINDOW_MS = 30_000;
/** Copies by the neighbour measured per phase, after the one under way when the phase began. */
const COPIES_PER_PHASE = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The neighbour's copies so far, MB/s each, from its "XFER t0 t1" lines. */
function copies(out: string): number[] {
  return [...out.matchAll(/XFER ([\d.]+) ([\d.]+)/g)].map((m) => MB / (Number(m[2]) - Number(m[1])));
}

/** The mean of the neighbour's next copies that start after now: the one under way is skipped. */
async function nextCopies(p: Proc): Promise<number> {
  const skip = copies(p.out).length + 1;
  const end = Date.now() + 600_000;
  while (copies(p.out).length < skip + COPIES_PER_PHASE) {
    if (Date.now() > end || p.child.exitCode !== null) throw new Error(`the neighbour stopped copying:\n${p.out.slice(-2000)}`);
    await sleep(200);
  }
  const rates = copies(p.out).slice(skip, skip + COPIES_PER_PHASE);
  return rates.reduce((a, b) => a + b, 0) / rates.length;
}

/**
 * A rate-limited vNIC and its neighbour on one switch. Neighbour "gamma" copies ${MB} MB from server
 * "alpha" over and over; its throughput is taken alone, then while VM "beta" (rx-bps=1M) downloads
 * from alpha without pause, then with beta's limit lifted (set-net-limits), which shows what the
 * limit spares the neighbour. Beta's achieved rate comes from its NIC's counters (query-stats, host
 * clock) over 30 s after its first second's burst.
 */
export async function rateLimitedNeighbour(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "nv-bench-rl-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const procs: Proc[] = [];
  let ctl: ControlClient | null = null;
  try {
    const server = ours(["--memory", "512M", "--name", "alpha", "--net", "switch=rl", "--", "sh", "-c",
      `dd if=/dev/zero of=/tmp/f bs=1M count=${MB} 2>/dev/null; dd if=/dev/zero of=/tmp/big bs=1M count=200 2>/dev/null; echo READY; httpd -f -p 80 -h /tmp`], env);
    procs.push(server);
    await server.waitFor(/READY/);
    const gamma = ours(["--name", "gamma", "--net", "switch=rl", "--", "sh", "-c",
      `while :; do t0=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null http://alpha/f; t1=$(cut -d' ' -f1 /proc/uptime); echo "XFER $t0 $t1"; done`], env);
    procs.push(gamma);
    const alone = await nextCopies(gamma);
    const ctlPath = join(dir, "beta.ctl");
    const beta = ours(["--name", "beta", "--net", `switch=rl,rx-bps=${LIMIT_BPS}`, "--control-socket", ctlPath, "--", "sh", "-c",
      "echo BUSY; while :; do wget -q -O /dev/null http://alpha/big; done"], env);
    procs.push(beta);
    await beta.waitFor(/BUSY/);
    ctl = await ControlClient.connect(ctlPath, { timeoutMs: 10_000 });
    const c = ctl;
    const rx = async (): Promise<{ t: number; bytes: number }> => {
      const stats = await c.execute<VmStats>("query-stats");
      return { t: performance.now(), bytes: stats.devices.find((d) => d.name === "net0")!.counters!.bytesRead! };
    };
    await sleep(3000); // past the bucket's first second and wget's start
    const s0 = await rx();
    // On a timer during gamma's copies, within beta's first download (200 MB last 200 s at the limit).
    const s1Sample = sleep(LIMIT_WINDOW_MS).then(rx);
    const beside = await nextCopies(gamma);
    const s1 = await s1Sample;
    const achieved = (s1.bytes - s0.bytes) / ((s1.t - s0.t) / 1000);
    await c.execute("set-net-limits", { nic: "net0" });
    const s2 = await rx();
    const besideUnlimited = await nextCopies(gamma);
    const s3 = await rx();
    const unlimitedRate = (s3.bytes - s2.bytes) / ((s3.t - s2.t) / 1000);
    const mib = (b: number) => (b / (1 << 20)).toFixed(2);
    console.log(`rate limit      beta rx-bps=${mib(LIMIT_BPS)}M achieved ${mib(achieved)} MB/s over ${((s1.t - s0.t) / 1000).toFixed(0)} s = ${((achieved / LIMIT_BPS) * 100).toFixed(1)}% of its limit (unlimited it took ${mib(unlimitedRate)} MB/s${unlimitedRate < 1.5 * LIMIT_BPS ? ": the limit was hardly the bottleneck, the host is too busy for this figure" : ""})`);
    console.log(`                neighbour gamma, ${MB} MB copies from the same server: alone ${alone.toFixed(2)} MB/s, beside the limited beta ${beside.toFixed(2)} MB/s (×${(beside / alone).toFixed(2)}), beside beta unlimited ${besideUnlimited.toFixed(2)} MB/s (×${(besideUnlimited / alone).toFixed(2)}); host load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs`);
  } finally {
    ctl?.close();
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.done));
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (f: NetFigures | null): string =>
  f === null ? "n/a" : `${f.mbPerSecond.toFixed(2)} MB/s${f.rttMs !== null ? `, rtt ${f.rttMs.toFixed(2)} ms` : ""}${f.guestBusy !== null ? `, client CPU ${Math.round(f.guestBusy * 100)}% busy` : ""}`;
const ratio = (a: NetFigures, b: NetFigures | null): string => (b === null ? "" : `  (throughput ×${(a.mbPerSecond / b.mbPerSecond).toFixed(2)} of QEMU)`);

export async function benchNet(): Promise<void> {
  const image = await ensureDefaultImage();
  const haveQemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  const havePasst = spawnSync("passt", ["--version"]).status === 0;
  console.log(`\n== Network: ${MB} MB over TCP (busybox httpd → wget), ping round trip; MTU 65520 everywhere ==`);
  const g = await guestToGuestOurs();
  const gq = haveQemu ? await guestToGuestQemu(image) : null;
  console.log(`guest → guest   nodevisor (switch) ${fmt(g)}   qemu (-netdev socket) ${fmt(gq)}${ratio(g, gq)}`);
  if (haveQemu) {
    // Alternating, so both sides see the same host; medians of SWITCH_ROUNDS runs.
    const overSwitch: NetFigures[] = [];
    const direct: NetFigures[] = [];
    for (let i = 0; i < SWITCH_ROUNDS; i++) {
      direct.push(await guestToGuestQemu(image, SWITCH_MB));
      overSwitch.push(await guestToGuestQemuOverSwitch(image, SWITCH_MB));
    }
    const qs = median(overSwitch);
    const qd = median(direct);
    console.log(`guest → guest   qemu guests over our switch ${fmt(qs)}   over -netdev socket ${fmt(qd)}${ratio(qs, qd)}  (QEMU's CPU on both: the switch's own cost; ${SWITCH_MB} MB, median of ${SWITCH_ROUNDS})`);
  }
  for (const [bytes, count] of [[65520, 20_000], [1514, 200_000]] as const) {
    const c = await switchCapacity(bytes, count);
    console.log(
      `switch alone    ${bytes}-byte frames: ${Math.round(c.framesPerSecond)} frames/s = ${c.mbPerSecond.toFixed(0)} MB/s, ${c.cpuUsPerFrame.toFixed(1)} µs of switch CPU per frame${c.dropped > 0 ? ` (${c.dropped} of ${count} dropped at a full port queue)` : ""}`,
    );
  }
  const noOffload = await guestToGuestOurs(",offload=off");
  console.log(`guest → guest   nodevisor (switch, offload=off) ${fmt(noOffload)}  (offloads bring ×${(g.mbPerSecond / noOffload.mbPerSecond).toFixed(2)})`);
  await rateLimitedNeighbour();
  if (!havePasst) {
    console.log("host → guest    skipped: passt is not installed");
    return;
  }
  const u = await hostToGuest(userOurs);
  const uq = haveQemu ? await hostToGuest((port) => userQemu(image, port)) : null;
  console.log(`host → guest    nodevisor (passt)  ${fmt(u)}   qemu (passt)          ${fmt(uq)}${ratio(u, uq)}`);
}
