import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, FrameDecoder } from "../stream_framing.js";
import { frame, mac } from "../testing/frames.js";
import { encodeHello } from "./hello.js";
import { SwitchServer } from "./server.js";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";
const C = "52:54:00:00:00:0c";

class Peer {
  frames: Uint8Array[] = [];
  private readonly d = new FrameDecoder();
  constructor(readonly s: Socket) {
    s.on("data", (c) => this.frames.push(...this.d.push(c)));
  }
  static open(path: string): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new Peer(s)));
      s.once("error", reject);
    });
  }
  send(f: Uint8Array): void {
    this.s.write(encodeFrame(f));
  }
  async waitFor(n: number, ms = 2000): Promise<void> {
    const end = Date.now() + ms;
    while (this.frames.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }
}

async function withSwitch(fn: (sw: SwitchServer, path: string) => Promise<void>, persistent = true): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "nv-sw-"));
  const path = join(dir, "s.sock");
  const sw = new SwitchServer({ name: "t", socketPath: path, network: null, persistent });
  await sw.listen();
  try {
    await fn(sw, path);
  } finally {
    await sw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const settle = (ms = 50) => new Promise((r) => setTimeout(r, ms));

test("peers on the socket (QEMU-style, no hello) share VLAN 1; a hello puts a port on another VLAN", async () => {
  await withSwitch(async (sw, path) => {
    const a = await Peer.open(path);
    const b = await Peer.open(path);
    const c = await Peer.open(path);
    c.send(encodeHello(mac(C), { mode: { kind: "access", vlan: 10 }, name: "gamma" }));
    await settle();
    a.send(frame("ff:ff:ff:ff:ff:ff", A, "to all"));
    await b.waitFor(1);
    await settle();
    assert.equal(b.frames.length, 1);
    assert.equal(c.frames.length, 0, "VLAN 10 does not hear VLAN 1");
    b.send(frame(A, B, "reply"));
    await a.waitFor(1);
    assert.equal(new TextDecoder().decode(a.frames[0]!.subarray(14)), "reply");
    for (const p of [a, b, c]) p.s.destroy();
  });
});

test("a peer sending garbage is disconnected; the others carry on", async () => {
  await withSwitch(async (sw, path) => {
    const bad = await Peer.open(path);
    const a = await Peer.open(path);
    const b = await Peer.open(path);
    bad.s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await new Promise<void>((r) => bad.s.once("close", () => r()));
    a.send(frame(B, A));
    await b.waitFor(1);
    assert.equal(b.frames.length, 1);
    assert.equal(sw.ports().length, 2);
    a.s.destroy();
    b.s.destroy();
  });
});

test("a peer that stops reading loses frames (counted) and never holds up the others", async () => {
  await withSwitch(async (sw, path) => {
    const slow = await Peer.open(path);
    slow.s.pause();
    const a = await Peer.open(path);
    const b = await Peer.open(path);
    const big = frame("ff:ff:ff:ff:ff:ff", A, "x".repeat(60_000));
    for (let i = 0; i < 200; i++) a.send(big); // 12 MB towards a peer that reads nothing
    await b.waitFor(200, 10_000);
    assert.equal(b.frames.length, 200, "the reading peer got every frame");
    const slowPort = sw.ports().find((p) => p.counters.dropsQueueFull > 0);
    assert.ok(slowPort, "the slow port dropped frames");
    for (const p of [slow, a, b]) p.s.destroy();
  });
});

test("an on-demand switch stops once its last port has gone", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-sw-"));
  const path = join(dir, "s.sock");
  let stopped = false;
  const sw = new SwitchServer({ name: "t", socketPath: path, network: null, persistent: false, idleMs: 100, onIdleStop: () => (stopped = true) });
  await sw.listen();
  const a = await Peer.open(path);
  await settle(200);
  assert.equal(stopped, false, "a port is connected");
  a.s.destroy();
  await settle(400);
  assert.equal(stopped, true);
  rmSync(dir, { recursive: true, force: true });
});
