import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { BlockRequestError, emptyBlockStats, type BlockBackend, type BlockStats } from "../../../storage/block_backend.js";
import { F_VERSION_1, STATUS_DEVICE_NEEDS_RESET } from "../constants.js";
import { REG_CONFIG, VirtioMmio } from "../mmio.js";
import { FakeDriver, TestIrq, settle, type DriverQueue } from "../testing/fake_driver.js";
import {
  BLK_F_DISCARD,
  BLK_F_FLUSH,
  BLK_F_RO,
  BLK_F_SEG_MAX,
  BLK_F_WRITE_ZEROES,
  CFG_BLK_SIZE,
  CFG_CAPACITY,
  CFG_MAX_DISCARD_SEG,
  CFG_SEG_MAX,
  VirtioBlk,
} from "./device.js";
import {
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_DISCARD,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
} from "./request.js";

/** An in-memory disk. With `manual`, operations wait until the test releases them (to reorder completions). */
class MemDisk implements BlockBackend {
  readonly data: Uint8Array;
  readonly id = "nodevisor-test-disk-0123456789"; // longer than 20 bytes: must be cut
  readonly queueDepth: number;
  readonly supportsDiscard: boolean;
  readonly readOnly: boolean;
  manual = false;
  held: (() => void)[] = [];
  flushes = 0;
  log: string[] = [];
  private s: BlockStats = emptyBlockStats();
  constructor(readonly size: number, opts: { readOnly?: boolean; discard?: boolean; depth?: number } = {}) {
    this.data = new Uint8Array(size);
    this.readOnly = opts.readOnly ?? false;
    this.supportsDiscard = opts.discard ?? true;
    this.queueDepth = opts.depth ?? 32;
  }
  private gate(): Promise<void> {
    if (!this.manual) return Promise.resolve();
    return new Promise((r) => this.held.push(r));
  }
  private check(offset: number, len: number): void {
    if (offset < 0 || offset + len > this.size) throw new BlockRequestError(`range ${offset}+${len} is beyond the disk end`);
  }
  calls = 0;
  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.calls++;
    await this.gate();
    this.check(offset, buf.length);
    buf.set(this.data.subarray(offset, offset + buf.length));
    this.log.push(`read ${offset}`);
  }
  async write(offset: number, d: Uint8Array): Promise<void> {
    this.calls++;
    await this.gate();
    this.check(offset, d.length);
    this.data.set(d, offset);
    this.log.push(`write ${offset}`);
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.data.fill(0, offset, offset + length);
    this.log.push(`discard ${offset}+${length}`);
  }
  async writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    this.check(offset, length);
    this.data.fill(0, offset, offset + length);
    this.log.push(`zero ${offset}+${length} ${mayUnmap}`);
  }
  stats(): BlockStats {
    return this.s;
  }
  async close(): Promise<void> {}
}

function setup(disk = new MemDisk(1 << 20), accept: bigint = ~0n, maxRequestBytes?: number, maxOutstandingBytes?: number, now?: () => number) {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  const irq = new TestIrq();
  const logs: string[] = [];
  const blk = new VirtioBlk({ backend: disk, queueSize: 64, maxRequestBytes, maxOutstandingBytes, now });
  const mmio = new VirtioMmio({ ram, device: blk, irq, log: (m) => logs.push(m) });
  const drv = new FakeDriver(ram, mmio);
  const [q] = drv.init(1, accept);
  return { ram, irq, logs, blk, mmio, drv, q: q!, disk };
}
type Env = ReturnType<typeof setup>;

function header(env: Env, type: number, sector: number): number {
  const h = env.drv.heap.alloc(16);
  env.ram.writeU32(h, type);
  env.ram.writeU32(h + 4, 0);
  env.ram.writeU64(h + 8, sector);
  return h;
}

/** Posts one request Linux-style: header (R), data (R or W), status (W). Returns head and addresses. */
function post(env: Env, type: number, sector: number, data: { len: number; write: boolean; fill?: number } | null, q: DriverQueue = env.q) {
  const h = header(env, type, sector);
  const status = env.drv.heap.alloc(1);
  env.ram.write(status, new Uint8Array([0xff]));
  const bufs = [{ addr: h, len: 16 }];
  let d = 0;
  if (data !== null) {
    d = env.drv.heap.alloc(data.len);
    if (data.fill !== undefined) env.ram.slice(d, data.len).fill(data.fill);
    bufs.push({ addr: d, len: data.len, write: data.write } as never);
  }
  bufs.push({ addr: status, len: 1, write: true } as never);
  const head = q.build(bufs);
  q.publish(head);
  return { head, status, data: d };
}

test("config space and features", () => {
  const env = setup();
  const f = env.drv.deviceFeatures();
  assert.ok(f & BLK_F_FLUSH && f & BLK_F_SEG_MAX && f & BLK_F_DISCARD && f & BLK_F_WRITE_ZEROES);
  assert.equal(f & BLK_F_RO, 0n);
  assert.equal(env.mmio.read(REG_CONFIG + CFG_CAPACITY, 4), (1 << 20) / 512);
  assert.equal(env.mmio.read(REG_CONFIG + CFG_CAPACITY + 4, 4), 0);
  assert.equal(env.mmio.read(REG_CONFIG + CFG_SEG_MAX, 4), 62);
  assert.equal(env.mmio.read(REG_CONFIG + CFG_BLK_SIZE, 2), 512);
  assert.equal(env.mmio.read(REG_CONFIG + CFG_MAX_DISCARD_SEG, 4), 32);
  assert.equal(env.mmio.read(REG_CONFIG + 0x400, 4), 0);
  const ro = setup(new MemDisk(4096, { readOnly: true }));
  const rf = ro.drv.deviceFeatures();
  assert.ok(rf & BLK_F_RO);
  assert.equal(rf & BLK_F_DISCARD, 0n);
});

test("write then read back, GET_ID, FLUSH", async () => {
  const env = setup();
  const w = post(env, BLK_T_OUT, 3, { len: 1024, write: false, fill: 0x5a });
  env.drv.notify(0);
  await settle();
  assert.equal(env.ram.read(w.status, 1)[0], BLK_S_OK);
  assert.ok(env.disk.data.subarray(3 * 512, 5 * 512).every((b) => b === 0x5a));
  assert.equal(env.disk.data[3 * 512 - 1], 0);
  const r = post(env, BLK_T_IN, 4, { len: 512, write: true });
  const id = post(env, BLK_T_GET_ID, 0, { len: 20, write: true });
  const fl = post(env, BLK_T_FLUSH, 0, null);
  env.drv.notify(0);
  await settle();
  const used = env.q.takeUsed();
  assert.deepEqual(
    used.sort((a, b) => a.id - b.id),
    [
      { id: w.head, len: 1 },
      { id: r.head, len: 513 },
      { id: id.head, len: 21 },
      { id: fl.head, len: 1 },
    ].sort((a, b) => a.id - b.id),
  );
  assert.ok(env.ram.read(r.data, 512).every((b) => b === 0x5a));
  assert.equal(new TextDecoder().decode(env.ram.read(id.data, 20)), "nodevisor-test-disk-");
  assert.equal(env.ram.read(fl.status, 1)[0], BLK_S_OK);
  assert.equal(env.disk.flushes, 1); // FLUSH negotiated: writeback, only the explicit flush
  assert.equal(env.irq.level, true);
  const s = env.blk.stats();
  assert.equal(s.writeRequests, 1);
  assert.equal(s.readRequests, 1);
  assert.equal(s.bytesWritten, 1024);
  assert.equal(s.bytesRead, 512);
  assert.equal(s.getIdRequests, 1);
  assert.equal(s.flushRequests, 1);
  assert.equal(s.inFlight, 0);
  assert.equal(s.requests, 4);
  assert.equal(s.errors, 0);
});

test("without VIRTIO_BLK_F_FLUSH every write is flushed (write-through)", async () => {
  const env = setup(new MemDisk(1 << 20), F_VERSION_1);
  post(env, BLK_T_OUT, 0, { len: 512, write: false, fill: 1 });
  env.drv.notify(0);
  await settle();
  assert.equal(env.disk.flushes, 1);
});

test("requests in flight together complete out of order", async () => {
  const env = setup();
  env.disk.manual = true;
  const a = post(env, BLK_T_OUT, 0, { len: 512, write: false, fill: 0x11 });
  const b = post(env, BLK_T_OUT, 1, { len: 512, write: false, fill: 0x22 });
  env.drv.notify(0);
  await settle();
  assert.equal(env.disk.held.length, 2);
  assert.equal(env.blk.stats().inFlight, 2);
  env.disk.held[1]!();
  await settle();
  assert.deepEqual(env.q.takeUsed(), [{ id: b.head, len: 1 }]);
  assert.equal(env.ram.read(a.status, 1)[0], 0xff);
  env.disk.held[0]!();
  await settle();
  assert.deepEqual(env.q.takeUsed(), [{ id: a.head, len: 1 }]);
  assert.equal(env.blk.stats().maxInFlight, 2);
});

test("each served request's latency lands in the histogram; queue depth counts requests on the backend", async () => {
  let clockMs = 1000;
  const env = setup(new MemDisk(1 << 20), ~0n, undefined, undefined, () => clockMs);
  env.disk.manual = true;
  post(env, BLK_T_OUT, 0, { len: 512, write: false, fill: 1 });
  post(env, BLK_T_IN, 1, { len: 512, write: true });
  post(env, BLK_T_IN, 2, { len: 512, write: true });
  env.drv.notify(0);
  await settle();
  assert.deepEqual([env.blk.stats().inFlight, env.blk.stats().maxInFlight], [3, 3]);
  clockMs += 0.3; // 300 µs
  env.disk.held[0]!();
  await settle();
  clockMs += 19.7; // 20 ms after the start
  env.disk.held[1]!();
  await settle();
  assert.equal(env.blk.stats().inFlight, 1);
  clockMs += 7000; // beyond the largest bound
  env.disk.held[2]!();
  await settle();
  const l = env.blk.latency();
  assert.equal(l.count, 3);
  assert.ok(Math.abs(l.sumSeconds - (0.0003 + 0.02 + 7.02)) < 1e-9, `sum ${l.sumSeconds}`);
  const le = (bound: number): number => l.cumulativeCounts[l.boundsSeconds.indexOf(bound)]!;
  assert.deepEqual([le(0.00025), le(0.0005), le(0.01), le(0.025), le(5)], [0, 1, 1, 2, 2]);
  assert.deepEqual([env.blk.stats().inFlight, env.blk.stats().maxInFlight], [0, 3]);
});

test("queue depth is respected; the rest waits in the ring", async () => {
  const env = setup(new MemDisk(1 << 20, { depth: 1 }));
  env.disk.manual = true;
  post(env, BLK_T_IN, 0, { len: 512, write: true });
  post(env, BLK_T_IN, 1, { len: 512, write: true });
  env.drv.notify(0);
  await settle();
  assert.equal(env.disk.held.length, 1);
  env.disk.held.shift()!();
  await settle();
  assert.equal(env.disk.held.length, 1);
  env.disk.held.shift()!();
  await settle();
  assert.equal(env.q.takeUsed().length, 2);
});

test("requests abandoned by a reset keep their backend slots until they settle", async () => {
  const env = setup(new MemDisk(1 << 20, { depth: 2 }));
  env.disk.manual = true;
  post(env, BLK_T_OUT, 0, { len: 512, write: false });
  post(env, BLK_T_OUT, 1, { len: 512, write: false });
  env.drv.notify(0);
  await settle();
  assert.equal(env.disk.held.length, 2);
  for (let round = 0; round < 3; round++) {
    env.drv.w(0x070, 0); // reset with both writes still on the backend
    const [q] = env.drv.init(1);
    post(env, BLK_T_OUT, 2, { len: 512, write: false }, q);
    post(env, BLK_T_OUT, 3, { len: 512, write: false }, q);
    env.drv.notify(0);
    await settle();
    assert.equal(env.disk.held.length, 2, `round ${round}: the backend holds at most its depth`);
    env.q = q!;
  }
  env.disk.held.splice(0).forEach((release) => release());
  await settle();
  assert.equal(env.disk.held.length, 2, "the newest activation's requests start once the abandoned ones settle");
  env.disk.held.splice(0).forEach((release) => release());
  await settle();
  assert.equal(env.q.takeUsed().length, 2);
  assert.equal(env.blk.stats().outstandingBytes, 0);
});

test("the bytes held for requests on the backend are bounded", async () => {
  const env = setup(new MemDisk(1 << 20), ~0n, undefined, 8192);
  env.disk.manual = true;
  for (let i = 0; i < 6; i++) post(env, BLK_T_OUT, i * 8, { len: 4096, write: false });
  env.drv.notify(0);
  await settle();
  assert.equal(env.disk.held.length, 2);
  assert.equal(env.blk.stats().outstandingBytes, 8192);
  while (env.disk.held.length > 0) {
    env.disk.held.shift()!();
    await settle();
  }
  assert.equal(env.q.takeUsed().length, 6);
});

test("out of range, unaligned, read-only, unknown type: error status, no crash, device stays usable", async () => {
  const env = setup();
  const cases = [
    post(env, BLK_T_IN, 2048, { len: 512, write: true }), // one past the end
    post(env, BLK_T_OUT, 2047, { len: 1024, write: false }), // crosses the end
    post(env, BLK_T_IN, 2 ** 60, { len: 512, write: true }), // absurd sector
    post(env, BLK_T_IN, 0, { len: 100, write: true }), // not a whole sector
    post(env, 77, 0, null), // unknown type
  ];
  env.drv.notify(0);
  await settle();
  assert.deepEqual(
    cases.map((c) => env.ram.read(c.status, 1)[0]),
    [BLK_S_IOERR, BLK_S_IOERR, BLK_S_IOERR, BLK_S_IOERR, BLK_S_UNSUPP],
  );
  assert.equal(env.q.takeUsed().length, 5);
  assert.equal(env.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.equal(env.blk.stats().ioErrors, 4);
  assert.equal(env.blk.stats().unsupportedRequests, 1);
  assert.equal(env.disk.calls, 0, "bad requests never reach the backend");
  const ok = post(env, BLK_T_IN, 2047, { len: 512, write: true });
  env.drv.notify(0);
  await settle();
  assert.equal(env.ram.read(ok.status, 1)[0], BLK_S_OK);

  const ro = setup(new MemDisk(4096, { readOnly: true }));
  const w = post(ro, BLK_T_OUT, 0, { len: 512, write: false, fill: 9 });
  const r = post(ro, BLK_T_IN, 0, { len: 512, write: true });
  ro.drv.notify(0);
  await settle();
  assert.equal(ro.ram.read(w.status, 1)[0], BLK_S_IOERR);
  assert.equal(ro.ram.read(r.status, 1)[0], BLK_S_OK);
  assert.ok(ro.disk.data.every((b) => b === 0));
});

test("short header and missing status byte are answered without breaking the device", async () => {
  const env = setup();
  const st = env.drv.heap.alloc(1);
  const h = env.drv.heap.alloc(8);
  const a = env.q.build([{ addr: h, len: 8 }, { addr: st, len: 1, write: true }]);
  env.q.publish(a);
  const b = env.q.build([{ addr: h, len: 8 }]);
  env.q.publish(b);
  env.drv.notify(0);
  await settle();
  assert.deepEqual(env.q.takeUsed(), [
    { id: a, len: 1 },
    { id: b, len: 0 },
  ]);
  assert.equal(env.ram.read(st, 1)[0], BLK_S_IOERR);
  assert.equal(env.blk.stats().malformedRequests, 1);
  assert.equal(env.blk.stats().errors, 2);
});

function segments(env: Env, segs: [number, number, number][]): number {
  const d = env.drv.heap.alloc(16 * segs.length);
  segs.forEach(([sector, n, flags], i) => {
    env.ram.writeU64(d + 16 * i, sector);
    env.ram.writeU32(d + 16 * i + 8, n);
    env.ram.writeU32(d + 16 * i + 12, flags);
  });
  return d;
}

function postSegments(env: Env, type: number, segs: [number, number, number][]) {
  const h = header(env, type, 0);
  const d = segments(env, segs);
  const status = env.drv.heap.alloc(1);
  const head = env.q.build([{ addr: h, len: 16 }, { addr: d, len: 16 * segs.length }, { addr: status, len: 1, write: true }]);
  env.q.publish(head);
  return status;
}

test("DISCARD and WRITE_ZEROES with the unmap flag", async () => {
  const env = setup();
  env.disk.data.fill(7);
  const s1 = postSegments(env, BLK_T_DISCARD, [[0, 8, 0], [16, 8, 0]]);
  const s2 = postSegments(env, BLK_T_WRITE_ZEROES, [[100, 2, 1]]);
  const s3 = postSegments(env, BLK_T_DISCARD, [[0, 8, 1]]); // unmap flag on discard: UNSUPP
  const s4 = postSegments(env, BLK_T_WRITE_ZEROES, [[2040, 16, 0]]); // beyond the end
  const s5 = postSegments(env, BLK_T_WRITE_ZEROES, [[0, 1, 0x80]]); // unknown flag
  env.drv.notify(0);
  await settle();
  assert.deepEqual(
    [s1, s2, s3, s4, s5].map((s) => env.ram.read(s, 1)[0]),
    [BLK_S_OK, BLK_S_OK, BLK_S_UNSUPP, BLK_S_IOERR, BLK_S_UNSUPP],
  );
  assert.ok(env.disk.log.includes("discard 0+4096") && env.disk.log.includes("discard 8192+4096"));
  assert.ok(env.disk.log.includes("zero 51200+1024 true"));
  assert.equal(env.disk.data[4096], 7);
  assert.equal(env.disk.data[0], 0);
  // Not negotiated: UNSUPP.
  const env2 = setup(new MemDisk(1 << 20), F_VERSION_1 | BLK_F_FLUSH);
  const s6 = postSegments(env2, BLK_T_DISCARD, [[0, 8, 0]]);
  env2.drv.notify(0);
  await settle();
  assert.equal(env2.ram.read(s6, 1)[0], BLK_S_UNSUPP);
});

test("backend failure gives IOERR and a reset drops a completion that arrives late", async () => {
  const disk = new MemDisk(1 << 20);
  disk.read = async () => {
    throw new Error("disk on fire");
  };
  const env = setup(disk);
  const r = post(env, BLK_T_IN, 0, { len: 512, write: true });
  env.drv.notify(0);
  await settle();
  assert.equal(env.ram.read(r.status, 1)[0], BLK_S_IOERR);
  assert.ok(env.logs.some((l) => /disk on fire/.test(l)));

  const env2 = setup();
  env2.disk.data.fill(0x33);
  env2.disk.manual = true;
  const r2 = post(env2, BLK_T_IN, 0, { len: 512, write: true });
  env2.drv.notify(0);
  await settle();
  env2.drv.w(0x070, 0); // reset while the read is in flight
  env2.disk.held[0]!();
  await settle();
  assert.equal(env2.ram.read(r2.status, 1)[0], 0xff);
  assert.ok(env2.ram.read(r2.data, 512).every((b) => b === 0));
  assert.equal(env2.q.usedIdx(), 0);
});

test("save with a request in flight, restore elsewhere: the request is replayed", async () => {
  const env = setup();
  env.disk.manual = true;
  const w = post(env, BLK_T_OUT, 5, { len: 512, write: false, fill: 0x77 });
  env.drv.notify(0);
  await settle();
  const state = JSON.parse(JSON.stringify(env.mmio.save()));
  assert.deepEqual(state.device, { inFlightHeads: [w.head] });
  const disk2 = new MemDisk(1 << 20);
  const blk2 = new VirtioBlk({ backend: disk2, queueSize: 64 });
  const mmio2 = new VirtioMmio({ ram: env.ram, device: blk2, irq: new TestIrq() });
  mmio2.restore(state);
  await settle();
  assert.ok(disk2.data.subarray(5 * 512, 6 * 512).every((b) => b === 0x77));
  assert.deepEqual(env.q.takeUsed(), [{ id: w.head, len: 1 }]);
});

test("Linux-style indirect request with scattered data, and the request size bound", async () => {
  const env = setup(new MemDisk(1 << 20), ~0n, 4096);
  env.disk.data.fill(0x42, 0, 1024);
  const h = header(env, BLK_T_IN, 0);
  const d1 = env.drv.heap.alloc(512);
  const d2 = env.drv.heap.alloc(512);
  const st = env.drv.heap.alloc(1);
  const head = env.q.buildIndirect([
    { addr: h, len: 16 },
    { addr: d1, len: 512, write: true },
    { addr: d2, len: 512, write: true },
    { addr: st, len: 1, write: true },
  ]);
  env.q.publish(head);
  const big = post(env, BLK_T_IN, 0, { len: 8192, write: true });
  env.drv.notify(0);
  await settle();
  assert.deepEqual(env.q.takeUsed().sort((a, b) => a.id - b.id), [
    { id: head, len: 1025 },
    { id: big.head, len: 1 },
  ]);
  assert.equal(env.ram.read(st, 1)[0], BLK_S_OK);
  assert.ok(env.ram.read(d1, 512).every((b) => b === 0x42) && env.ram.read(d2, 512).every((b) => b === 0x42));
  assert.equal(env.ram.read(big.status, 1)[0], BLK_S_IOERR);
  assert.equal(env.disk.calls, 1);
});
