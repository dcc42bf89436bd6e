// A snapshot's device state and its RAM agree even when a device writes guest RAM while the vCPUs
// are paused: a peer on the switch floods the VM with frames while it is saved (running, then
// paused), every virtqueue's used index in the saved RAM must be where its saved device says, and
// the VM restored from the paused snapshot (same name, same MAC: no driver rebind) still receives.
// Before the last pages were frozen with the device state, frames delivered while RAM was written
// left the saved receive ring hundreds of entries ahead of its device (used.idx 454 against 231);
// a guest restored from that reads buffers the device never filled, or gives up on the queue.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RAM_BASE } from "../src/machine/layout.js";
import { encodeFrame } from "../src/net/stream_framing.js";
import { encodeHello } from "../src/net/switch/hello.js";
import { frame, mac } from "../src/net/testing/frames.js";
import { GuestRam } from "../src/seams/guest_ram.js";
import { loadSnapshotPages, readSnapshotInfo } from "../src/vm/snapshot/snapshot_file.js";
import type { VmSnapshotHeader } from "../src/vm/snapshot/vm_snapshot.js";
import { CLI, ensureTestImage, nodevisor } from "./helpers.js";
import { typeLine, until, VmProcess } from "./testing/vm_process.js";

before(ensureTestImage, { timeout: 600_000 });

const FLOODER = "02:00:00:00:0f:0d";

/** Each ready virtqueue whose used index in the saved RAM differs from its device's saved one. */
async function ringsOutOfStep(path: string): Promise<string[]> {
  const info = await readSnapshotInfo<VmSnapshotHeader>(path);
  const ram = new GuestRam(RAM_BASE, info.ramBytes);
  await loadSnapshotPages(path, info, ram);
  const problems: string[] = [];
  info.header.board.virtio.forEach((device, d) => device.queues.forEach((q, i) => {
    if (!q.ready) return;
    const at = q.deviceAddr - RAM_BASE + 2; // struct virtq_used { le16 flags; le16 idx; ... }
    const idx = ram.u8[at]! | (ram.u8[at + 1]! << 8);
    if (idx !== q.nextUsed) problems.push(`virtio${d} queue ${i}: used.idx ${idx} in RAM, ${q.nextUsed} in the device`);
  }));
  return problems;
}

/** A port on the switch that sends a broadcast frame every 2 ms until stopped. */
async function flooder(sock: string): Promise<{ sent: () => number; stop: () => void }> {
  const s: Socket = await new Promise((resolve, reject) => {
    const c = connect(sock, () => resolve(c));
    c.once("error", reject);
  });
  s.on("error", () => {});
  s.on("data", () => {}); // what the VM sends back is not looked at
  s.write(encodeFrame(encodeHello(mac(FLOODER), { mode: { kind: "access", vlan: 1 }, name: "flooder" })));
  let n = 0;
  const timer = setInterval(() => {
    if (s.writableLength < 1 << 20) s.write(encodeFrame(frame("ff:ff:ff:ff:ff:ff", FLOODER, `flood ${n++} `.padEnd(200, "."))));
  }, 2);
  return { sent: () => n, stop: () => { clearInterval(timer); s.destroy(); } };
}

test("a VM saved while flooded with frames saves rings that agree with their devices, and restores to a NIC that still receives", { timeout: 1_200_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapdev-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const created = await nodevisor(["switch", "create", "flood"], { env });
  assert.equal(created.status, 0, created.stderr);
  const snap = join(dir, "vm.snap");
  const readings = (out: string) => [...out.matchAll(/rx=(\d+) broken=(\d+)\s/g)].map((m) => ({ rx: Number(m[1]), broken: Number(m[2]) }));
  const counters = "echo rx=$(cat /sys/class/net/eth0/statistics/rx_packets) broken=$(dmesg | grep -c -e 'not a head' -e 'broken' -e 'virtio_net.*unexpected')";
  const original = VmProcess.nodevisor(["--name", "flooded", "--net", "switch=flood", "--control-socket", join(dir, "a.sock"), "--console", "none"], env);
  let restored: VmProcess | null = null;
  let flood: Awaited<ReturnType<typeof flooder>> | null = null;
  try {
    const a = await original.connect(join(dir, "a.sock"));
    await original.waitFor(/~# /, 900_000);
    await typeLine(a, `ip link set eth0 up; sleep 1; ${counters}`);
    await original.waitFor(/rx=\d+ broken=\d+\s/);
    flood = await flooder(join(dir, "flood.sock"));
    await until(() => flood!.sent() > 200, 10_000, "the flood to start");
    await a.execute("snapshot-save", { path: snap });
    assert.deepEqual(await ringsOutOfStep(snap), [], "running: every ring in the saved RAM is where its saved device says");
    // Paused, the guest posts no new buffers, so the ring has room for ~256 frames: saved at once,
    // the write of RAM (a few hundred ms) overlaps the frames the ring still takes.
    await a.execute("pause");
    const saved = await a.execute<{ pausedMs: number }>("snapshot-save", { path: snap });
    console.log(`# saved while ${flood.sent()} frames were sent; paused for ${saved.pausedMs} ms`);
    assert.deepEqual(await ringsOutOfStep(snap), [], "paused: every ring in the saved RAM is where its saved device says");
    await a.execute("quit");
    await original.exited;
    restored = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore", snap, "--name", "flooded", "--control-socket", join(dir, "b.sock"), "--console", "none"], env);
    const b = await restored.connect(join(dir, "b.sock"));
    await typeLine(b, counters);
    await until(() => readings(restored!.stdout).length >= 1, 120_000, `the restored guest to answer (stdout: ${restored!.stdout.slice(-1000)})`);
    await new Promise((r) => setTimeout(r, 2000));
    await typeLine(b, counters);
    await until(() => readings(restored!.stdout).length >= 2, 60_000, `the restored guest to answer again (stdout: ${restored!.stdout.slice(-1000)})`);
    const [first, second] = readings(restored.stdout);
    assert.equal(second!.broken, 0, `the guest's virtio-net driver found its ring corrupt: ${restored.stdout.slice(-2000)}`);
    // ~1,000 frames were sent in those 2 s; the switch and the guest may drop some, not most.
    assert.ok(second!.rx - first!.rx > 200, `the restored NIC receives: rx_packets ${first!.rx} then ${second!.rx} two seconds later`);
  } finally {
    flood?.stop();
    await original.stop();
    await restored?.stop();
    await nodevisor(["switch", "delete", "flood"], { env });
    rmSync(dir, { recursive: true, force: true });
  }
});
