import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { internetChecksum, IPPROTO_UDP, pseudoHeaderSum } from "../../../net/ethernet.js";
import { TokenBucketShaper } from "../../../net/shaper.js";
import { frame, mac, tcp, udp } from "../../../net/testing/frames.js";
import { RecordingBackend } from "../../../net/testing/recording_backend.js";
import { VirtioMmio } from "../mmio.js";
import { FakeDriver, TestIrq } from "../testing/fake_driver.js";
import { NET_F_CSUM, NET_F_HOST_TSO4, NET_F_MRG_RXBUF, VirtioNet, type VirtioNetOptions } from "./device.js";
import { NET_HDR_BYTES, NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4 } from "./header.js";
import { rxChecksumsValid } from "./offload.js";

const GUEST = "52:54:00:12:34:56";
const PEER = "52:54:00:00:00:02";

function setup(o: Partial<VirtioNetOptions> = {}, accept: bigint = ~0n) {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  const irq = new TestIrq();
  const backend = new RecordingBackend();
  const nic = new VirtioNet({ backend, mac: mac(GUEST), ...o });
  const mmio = new VirtioMmio({ ram, device: nic, irq });
  const drv = new FakeDriver(ram, mmio);
  const [rx, tx] = drv.init(2, accept);
  return { ram, irq, backend, nic, mmio, drv, rx: rx!, tx: tx! };
}

function header(o: { flags?: number; gso?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {}): Uint8Array {
  const h = new Uint8Array(NET_HDR_BYTES);
  const v = new DataView(h.buffer);
  h[0] = o.flags ?? 0;
  h[1] = o.gso ?? 0;
  v.setUint16(4, o.gsoSize ?? 0, true);
  v.setUint16(6, o.csumStart ?? 0, true);
  v.setUint16(8, o.csumOffset ?? 0, true);
  return h;
}

function send(t: ReturnType<typeof setup>, hdr: Uint8Array, f: Uint8Array): void {
  const h = t.drv.heap.put(hdr);
  const d = t.drv.heap.put(f);
  t.tx.publish(t.tx.build([{ addr: h, len: hdr.length }, { addr: d, len: f.length }]));
  t.drv.notify(1);
}

function postRx(t: ReturnType<typeof setup>, n: number, size: number): number[] {
  const addrs: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = t.drv.heap.alloc(size);
    addrs.push(a);
    t.rx.publish(t.rx.build([{ addr: a, len: size, write: true }]));
  }
  t.drv.notify(0);
  return addrs;
}

test("config space: the MAC and link up; the offloads and mergeable buffers are offered", () => {
  const t = setup();
  const cfg = [...Array(6)].map((_, i) => t.mmio.read(0x100 + i, 1));
  assert.deepEqual(cfg, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  assert.equal(t.mmio.read(0x106, 2), 1);
  const f = t.drv.deviceFeatures();
  for (const b of [NET_F_CSUM, NET_F_HOST_TSO4, NET_F_MRG_RXBUF]) assert.ok(f & b);
});

test("transmit: the frame after the header reaches the backend; a bad chain is dropped, counted and completed", () => {
  const t = setup();
  const f = frame(PEER, GUEST, "x".repeat(100));
  send(t, header(), f);
  assert.deepEqual(t.backend.sent, [f]);
  send(t, header(), new Uint8Array(5));
  assert.equal(t.backend.sent.length, 1);
  assert.equal(t.tx.takeUsed().length, 2, "both chains are given back");
  const s = t.nic.stats();
  assert.equal(s.txPackets, 1);
  assert.equal(s.bytesWritten, f.length);
  assert.equal(s.dropsMalformed, 1);
  assert.equal(t.drv.status() & 0x40, 0, "a bad frame does not break the device");
});

test("receive: a frame spans mergeable buffers, with num_buffers in the header; frames wait for buffers", () => {
  const t = setup();
  const f = frame(GUEST, PEER, "y".repeat(2486)); // 2500 bytes
  t.backend.deliver(f);
  assert.equal(t.rx.takeUsed().length, 0, "no buffers yet: the frame waits");
  const addrs = postRx(t, 3, 1000);
  const used = t.rx.takeUsed();
  assert.deepEqual(used.map((u) => u.len), [1000, 1000, 512]);
  const hdr = t.ram.read(addrs[0]!, NET_HDR_BYTES);
  assert.equal(hdr[10], 3, "num_buffers");
  const got = new Uint8Array([...t.ram.read(addrs[0]! + NET_HDR_BYTES, 988), ...t.ram.read(addrs[1]!, 1000), ...t.ram.read(addrs[2]!, 512)]);
  assert.deepEqual(got, f);
  assert.equal(t.nic.stats().rxPackets, 1);
  assert.ok(t.irq.level);
});

test("receive without mergeable buffers: a frame too big for one buffer is dropped as malformed", () => {
  const t = setup({}, ~NET_F_MRG_RXBUF);
  postRx(t, 2, 600);
  t.backend.deliver(frame(GUEST, PEER, "z".repeat(1000)));
  t.backend.deliver(frame(GUEST, PEER, "small"));
  assert.deepEqual(t.rx.takeUsed().map((u) => u.len), [0, NET_HDR_BYTES + 19]);
  assert.equal(t.nic.stats().dropsMalformed, 1);
});

test("flow control: the backend is paused while the guest is behind, and frames beyond the queue are dropped", () => {
  const t = setup();
  for (let i = 0; i < 600; i++) t.backend.deliver(frame(GUEST, PEER));
  assert.equal(t.backend.receiving, false);
  assert.equal(t.nic.stats().dropsQueueFull, 600 - 512);
  postRx(t, 256, 2048);
  postRx(t, 256, 2048);
  assert.equal(t.rx.takeUsed().length, 512);
  assert.equal(t.backend.receiving, true);
});

test("link down: the guest sees the status change; frames both ways are dropped until it is up again", () => {
  const t = setup();
  postRx(t, 4, 2048);
  t.nic.setLink(false);
  assert.equal(t.mmio.read(0x106, 2), 0);
  assert.equal(t.drv.ackInterrupt() & 2, 2, "config-change interrupt");
  send(t, header(), frame(PEER, GUEST));
  t.backend.deliver(frame(GUEST, PEER));
  assert.equal(t.backend.sent.length, 0);
  assert.equal(t.nic.stats().dropsLinkDown, 2);
  t.nic.setLink(true);
  t.backend.deliver(frame(GUEST, PEER));
  assert.equal(t.rx.takeUsed().length, 1);
});

test("TSO: a 4000-byte TCP frame is cut into MSS-sized segments with right sequence numbers and checksums", () => {
  const t = setup();
  const payload = new Uint8Array(4000).map((_, i) => i & 0xff);
  const big = tcp({ srcMac: GUEST, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.101", srcPort: 1000, dstPort: 80, seq: 5000, flags: 0x18, payload });
  big[34 + 16] = big[34 + 17] = 0; // the guest leaves only the pseudo-header sum; the device must do the rest
  send(t, header({ flags: NET_HDR_F_NEEDS_CSUM, gso: NET_HDR_GSO_TCPV4, gsoSize: 1448, csumStart: 34, csumOffset: 16 }), big);
  const segs = t.backend.sent;
  assert.deepEqual(segs.map((s) => s.length - 54), [1448, 1448, 1104]);
  segs.forEach((s, i) => {
    assert.ok(rxChecksumsValid(s), `segment ${i} checksums`);
    assert.equal(new DataView(s.buffer).getUint32(38), 5000 + 1448 * i);
    assert.equal(s[47]! & 0x08, i === 2 ? 0x08 : 0, "PSH only on the last");
  });
  assert.deepEqual(new Uint8Array(segs.flatMap((s) => [...s.subarray(54)])), payload);
});

test("checksum offload: a partial UDP checksum is finished; the receive header says DATA_VALID for a correct one", () => {
  const t = setup();
  const u = udp({ srcMac: GUEST, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.101", srcPort: 9, dstPort: 9, payload: new Uint8Array(50).fill(7) });
  // What Linux hands over: the checksum field holds the folded pseudo-header sum only.
  const partial = ~internetChecksum(new Uint8Array(0), 0, 0, pseudoHeaderSum(0x0a000364, 0x0a000365, IPPROTO_UDP, 58)) & 0xffff;
  u[40] = partial >> 8;
  u[41] = partial & 0xff;
  assert.equal(rxChecksumsValid(u), false);
  send(t, header({ flags: NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6 }), u);
  assert.ok(rxChecksumsValid(t.backend.sent[0]!));
  const [a] = postRx(t, 1, 2048);
  t.backend.deliver(t.backend.sent[0]!);
  assert.equal(t.ram.read(a!, 1)[0], 2, "VIRTIO_NET_HDR_F_DATA_VALID");
});

test("a hostile header (GSO without the feature, checksum offset past the end) drops the frame, not the device", () => {
  const t = setup({}, ~NET_F_HOST_TSO4);
  const f = tcp({ srcMac: GUEST, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.101", srcPort: 1, dstPort: 2 });
  send(t, header({ gso: NET_HDR_GSO_TCPV4, gsoSize: 100 }), f);
  send(t, header({ flags: NET_HDR_F_NEEDS_CSUM, csumStart: 50, csumOffset: 60000 }), f);
  assert.equal(t.backend.sent.length, 0);
  assert.equal(t.nic.stats().dropsMalformed, 2);
  assert.equal(t.drv.status() & 0x40, 0);
});

test("rate limit: transmit waits for tokens (on a timer) instead of dropping", () => {
  let now = 0;
  const timers: Array<() => void> = [];
  const shaper = new TokenBucketShaper({ tx: { bandwidth: { size: 1000, refillTimeMs: 1000 } } }, () => now);
  const t = setup({ shaper, setTimer: (fn) => timers.push(fn) });
  for (let i = 0; i < 3; i++) send(t, header(), frame(PEER, GUEST, "p".repeat(586))); // 600-byte frames
  assert.equal(t.backend.sent.length, 1, "the second frame waits for tokens");
  assert.equal(timers.length, 1);
  now = 200;
  timers.shift()!();
  assert.equal(t.backend.sent.length, 2);
  now = 800;
  timers.shift()!();
  assert.equal(t.backend.sent.length, 3);
  assert.equal(t.nic.stats().dropsRateLimit, 0);
});

test("rate limit on receive: frames wait for tokens; when too many wait, the drops are counted as rate-limit drops", () => {
  let now = 0;
  const timers: Array<() => void> = [];
  const shaper = new TokenBucketShaper({ rx: { ops: { size: 1, refillTimeMs: 1000 } } }, () => now);
  const t = setup({ shaper, setTimer: (fn) => timers.push(fn) });
  postRx(t, 8, 2048);
  for (let i = 0; i < 520; i++) t.backend.deliver(frame(GUEST, PEER));
  assert.equal(t.rx.takeUsed().length, 1, "one packet per second");
  assert.equal(t.backend.receiving, false, "the backend is asked to hold the rest");
  assert.equal(t.nic.stats().dropsRateLimit, 520 - 1 - 512);
  assert.equal(t.nic.stats().dropsQueueFull, 0);
  now = 1000;
  timers.shift()!();
  assert.equal(t.rx.takeUsed().length, 1);
});

test("hostile receive chains (read-only, or too small for the header) are handed back empty; the next good one is used", () => {
  const t = setup();
  const a = t.drv.heap.alloc(2048);
  t.rx.publish(t.rx.build([{ addr: a, len: 2048 }])); // device-readable only
  t.rx.publish(t.rx.build([{ addr: a, len: 4, write: true }])); // shorter than the header
  const [good] = postRx(t, 1, 2048);
  t.backend.deliver(frame(GUEST, PEER, "after the junk"));
  assert.deepEqual(t.rx.takeUsed().map((u) => u.len), [0, 0, NET_HDR_BYTES + 28]);
  assert.equal(new TextDecoder().decode(t.ram.read(good! + NET_HDR_BYTES + 14, 14)), "after the junk");
  assert.equal(t.nic.stats().dropsMalformed, 2);
  assert.equal(t.drv.status() & 0x40, 0, "the device keeps working");
});

test("save while a frame holds receive buffers, restore elsewhere: the held buffers are used first, none is lost", () => {
  const t = setup();
  // 2 of the 3 buffers a 2500-byte frame needs: the device holds both, waiting for a third.
  const addrs = postRx(t, 2, 1000);
  t.backend.deliver(frame(GUEST, PEER, "y".repeat(2486)));
  assert.equal(t.rx.takeUsed().length, 0);
  const state = JSON.parse(JSON.stringify(t.mmio.save()));
  assert.equal(state.device.rxHeldHeads.length, 2);
  // The new process: the frame waiting in the old one is gone (a frame lost on the wire); the next one uses the held buffers.
  const backend2 = new RecordingBackend();
  const nic2 = new VirtioNet({ backend: backend2, mac: mac(GUEST) });
  const mmio2 = new VirtioMmio({ ram: t.ram, device: nic2, irq: new TestIrq() });
  mmio2.restore(state);
  const f = frame(GUEST, PEER, "z".repeat(1486)); // 1500 bytes: the two held buffers hold it
  backend2.deliver(f);
  assert.deepEqual(t.rx.takeUsed().map((u) => u.len), [1000, 512]);
  assert.deepEqual(new Uint8Array([...t.ram.read(addrs[0]! + NET_HDR_BYTES, 988), ...t.ram.read(addrs[1]!, 512)]), f);
});

test("held heads that cannot be ring entries are dropped at restore, not trusted", () => {
  const t = setup();
  postRx(t, 1, 1000);
  const state = JSON.parse(JSON.stringify(t.mmio.save()));
  state.device.rxHeldHeads = [-1, 1e9, "x"];
  const nic2 = new VirtioNet({ backend: new RecordingBackend(), mac: mac(GUEST) });
  const mmio2 = new VirtioMmio({ ram: t.ram, device: nic2, irq: new TestIrq() });
  mmio2.restore(state);
  assert.equal(nic2.save().rxHeldHeads!.length, 0, "nonsense heads are dropped at restore");
});

test("announce: a RARP broadcast from the NIC's MAC, as QEMU announces a moved guest", () => {
  const t = setup();
  t.nic.announce();
  const f = t.backend.sent.at(-1)!;
  assert.deepEqual([...f.subarray(0, 6)], [255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...f.subarray(6, 12)], [...mac(GUEST)]);
  assert.equal((f[12]! << 8) | f[13]!, 0x8035);
});
