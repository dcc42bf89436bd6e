// Test helper: a guest driver that programs a virtio-mmio transport through its registers exactly
// as Linux's virtio_mmio.c does, and builds split virtqueues by hand in guest RAM.

import type { GuestRam } from "../../../seams/guest_ram.js";
import type { IrqLine } from "../../../seams/interrupts.js";
import {
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from "../constants.js";
import {
  REG_DEVICE_FEATURES,
  REG_DEVICE_FEATURES_SEL,
  REG_DRIVER_FEATURES,
  REG_DRIVER_FEATURES_SEL,
  REG_INTERRUPT_ACK,
  REG_INTERRUPT_STATUS,
  REG_QUEUE_DESC_HIGH,
  REG_QUEUE_DESC_LOW,
  REG_QUEUE_DEVICE_HIGH,
  REG_QUEUE_DEVICE_LOW,
  REG_QUEUE_DRIVER_HIGH,
  REG_QUEUE_DRIVER_LOW,
  REG_QUEUE_NOTIFY,
  REG_QUEUE_NUM,
  REG_QUEUE_NUM_MAX,
  REG_QUEUE_READY,
  REG_QUEUE_SEL,
  REG_STATUS,
  type VirtioMmio,
} from "../mmio.js";

export class TestIrq implements IrqLine {
  level = false;
  raises = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raises++;
    this.level = level;
  }
}

/** A bump allocator over guest RAM. */
export class GuestHeap {
  private next: number;
  constructor(readonly ram: GuestRam, start = ram.base + 0x1000) {
    this.next = start;
  }
  alloc(len: number, align = 16): number {
    this.next = Math.ceil(this.next / align) * align;
    const a = this.next;
    this.next += Math.max(len, 1);
    if (this.next > this.ram.end) throw new RangeError("test heap exhausted");
    return a;
  }
  put(data: Uint8Array): number {
    const a = this.alloc(data.length);
    this.ram.write(a, data);
    return a;
  }
}

export interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

export class DriverQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private freeDesc = 0;
  private availIdx = 0;
  lastUsed = 0;

  constructor(
    readonly ram: GuestRam,
    readonly heap: GuestHeap,
    readonly index: number,
    readonly size: number,
  ) {
    this.desc = heap.alloc(16 * size, 16);
    this.avail = heap.alloc(6 + 2 * size, 4);
    this.used = heap.alloc(6 + 8 * size, 4);
  }

  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const d = table + 16 * i;
    this.ram.writeU64(d, addr);
    this.ram.writeU32(d + 8, len);
    this.ram.writeU16(d + 12, flags);
    this.ram.writeU16(d + 14, next);
  }

  /** Puts a chain of direct descriptors in the table (no publish); returns the head. */
  build(bufs: Buf[]): number {
    const head = this.freeDesc % this.size;
    bufs.forEach((b, k) => {
      const i = (head + k) % this.size;
      const last = k === bufs.length - 1;
      this.writeDesc(this.desc, i, b.addr, b.len, (b.write ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT), (i + 1) % this.size);
    });
    this.freeDesc += bufs.length;
    return head;
  }

  /** Puts one descriptor pointing at an indirect table holding `bufs`; returns the head. */
  buildIndirect(bufs: Buf[]): number {
    const table = this.heap.alloc(16 * bufs.length, 16);
    bufs.forEach((b, k) => {
      const last = k === bufs.length - 1;
      this.writeDesc(table, k, b.addr, b.len, (b.write ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT), k + 1);
    });
    const head = this.freeDesc % this.size;
    this.writeDesc(this.desc, head, table, 16 * bufs.length, DESC_F_INDIRECT, 0);
    this.freeDesc += 1;
    return head;
  }

  /** Makes `head` available (without notifying). */
  publish(head: number): void {
    this.ram.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.ram.writeU16(this.avail + 2, this.availIdx);
  }

  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.ram.writeU16(this.avail + 2, this.availIdx);
  }

  setUsedEvent(v: number): void {
    this.ram.writeU16(this.avail + 4 + 2 * this.size, v);
  }

  setAvailFlags(v: number): void {
    this.ram.writeU16(this.avail, v);
  }

  availEvent(): number {
    return this.ram.readU16(this.used + 4 + 8 * this.size);
  }

  usedIdx(): number {
    return this.ram.readU16(this.used + 2);
  }

  /** Used entries added since the last call. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const idx = this.usedIdx();
    while (this.lastUsed !== idx) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      out.push({ id: this.ram.readU32(e), len: this.ram.readU32(e + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

export class FakeDriver {
  readonly heap: GuestHeap;
  constructor(
    readonly ram: GuestRam,
    readonly mmio: VirtioMmio,
  ) {
    this.heap = new GuestHeap(ram);
  }

  r(off: number): number {
    return this.mmio.read(off, 4);
  }
  w(off: number, v: number): void {
    this.mmio.write(off, 4, v);
  }

  status(): number {
    return this.r(REG_STATUS);
  }

  deviceFeatures(): bigint {
    this.w(REG_DEVICE_FEATURES_SEL, 1);
    const hi = BigInt(this.r(REG_DEVICE_FEATURES));
    this.w(REG_DEVICE_FEATURES_SEL, 0);
    const lo = BigInt(this.r(REG_DEVICE_FEATURES));
    return (hi << 32n) | lo;
  }

  /** reset, ACKNOWLEDGE, DRIVER, negotiate (accept & offered), FEATURES_OK; returns whether FEATURES_OK stuck. */
  negotiate(accept: bigint = ~0n): boolean {
    this.w(REG_STATUS, 0);
    this.w(REG_STATUS, STATUS_ACKNOWLEDGE);
    this.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const f = this.deviceFeatures() & accept;
    this.w(REG_DRIVER_FEATURES_SEL, 1);
    this.w(REG_DRIVER_FEATURES, Number(f >> 32n) >>> 0);
    this.w(REG_DRIVER_FEATURES_SEL, 0);
    this.w(REG_DRIVER_FEATURES, Number(f & 0xffff_ffffn) >>> 0);
    this.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return (this.status() & STATUS_FEATURES_OK) !== 0;
  }

  setupQueue(index: number, size?: number): DriverQueue {
    this.w(REG_QUEUE_SEL, index);
    if (this.r(REG_QUEUE_READY) !== 0) throw new Error(`queue ${index} already ready`);
    const max = this.r(REG_QUEUE_NUM_MAX);
    const n = size ?? max;
    const q = new DriverQueue(this.ram, this.heap, index, n);
    this.w(REG_QUEUE_NUM, n);
    this.w(REG_QUEUE_DESC_LOW, q.desc >>> 0);
    this.w(REG_QUEUE_DESC_HIGH, Math.floor(q.desc / 0x1_0000_0000));
    this.w(REG_QUEUE_DRIVER_LOW, q.avail >>> 0);
    this.w(REG_QUEUE_DRIVER_HIGH, Math.floor(q.avail / 0x1_0000_0000));
    this.w(REG_QUEUE_DEVICE_LOW, q.used >>> 0);
    this.w(REG_QUEUE_DEVICE_HIGH, Math.floor(q.used / 0x1_0000_0000));
    this.w(REG_QUEUE_READY, 1);
    return q;
  }

  driverOk(): void {
    this.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** Full Linux-style bring-up; returns the queues. */
  init(queueCount: number, accept: bigint = ~0n): DriverQueue[] {
    if (!this.negotiate(accept)) throw new Error("FEATURES_OK refused");
    const qs: DriverQueue[] = [];
    for (let i = 0; i < queueCount; i++) qs.push(this.setupQueue(i));
    this.driverOk();
    return qs;
  }

  notify(q: number): void {
    this.w(REG_QUEUE_NOTIFY, q);
  }

  /** Reads and acknowledges the interrupt status, as vm_interrupt does. */
  ackInterrupt(): number {
    const s = this.r(REG_INTERRUPT_STATUS);
    this.w(REG_INTERRUPT_ACK, s);
    return s;
  }
}

/** Waits until pending promise callbacks and I/O have run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
