// The virtio-mmio transport, version 2 (virtio 1.2 §4.2): registers on the bus, queues in guest RAM.
// Only modern (virtio 1.x) drivers are accepted: VIRTIO_F_VERSION_1 must be negotiated.
// VendorID is 0x554d4551 ("QEMU"), as QEMU's virtio-mmio reports, so guests treat it the same way.

import type { MmioDevice } from "../../seams/mmio.js";
import type { GuestRam } from "../../seams/guest_ram.js";
import type { IrqLine } from "../../seams/interrupts.js";
import {
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  INT_CONFIG_CHANGE,
  INT_USED_BUFFER,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  TRANSPORT_FEATURES,
} from "./constants.js";
import type { VirtioDevice, VirtioDeviceContext } from "./device.js";
import { Virtqueue, type VirtqueueState } from "./virtqueue.js";

/** Register offsets of virtio-mmio version 2. */
export const REG_MAGIC = 0x000;
export const REG_VERSION = 0x004;
export const REG_DEVICE_ID = 0x008;
export const REG_VENDOR_ID = 0x00c;
export const REG_DEVICE_FEATURES = 0x010;
export const REG_DEVICE_FEATURES_SEL = 0x014;
export const REG_DRIVER_FEATURES = 0x020;
export const REG_DRIVER_FEATURES_SEL = 0x024;
export const REG_QUEUE_SEL = 0x030;
export const REG_QUEUE_NUM_MAX = 0x034;
export const REG_QUEUE_NUM = 0x038;
export const REG_QUEUE_READY = 0x044;
export const REG_QUEUE_NOTIFY = 0x050;
export const REG_INTERRUPT_STATUS = 0x060;
export const REG_INTERRUPT_ACK = 0x064;
export const REG_STATUS = 0x070;
export const REG_QUEUE_DESC_LOW = 0x080;
export const REG_QUEUE_DESC_HIGH = 0x084;
export const REG_QUEUE_DRIVER_LOW = 0x090;
export const REG_QUEUE_DRIVER_HIGH = 0x094;
export const REG_QUEUE_DEVICE_LOW = 0x0a0;
export const REG_QUEUE_DEVICE_HIGH = 0x0a4;
export const REG_SHM_SEL = 0x0ac;
export const REG_SHM_LEN_LOW = 0x0b0;
export const REG_SHM_LEN_HIGH = 0x0b4;
export const REG_SHM_BASE_LOW = 0x0b8;
export const REG_SHM_BASE_HIGH = 0x0bc;
export const REG_CONFIG_GENERATION = 0x0fc;
export const REG_CONFIG = 0x100;

export const MMIO_MAGIC = 0x74726976; // "virt"
export const MMIO_VERSION = 2;
export const MMIO_VENDOR_ID = 0x554d4551;
/** Size of the register window to map on the bus (and to put in the device tree). */
export const MMIO_WINDOW_SIZE = 0x200;

export interface VirtioMmioOptions {
  ram: GuestRam;
  device: VirtioDevice;
  irq: IrqLine;
  log?: (msg: string) => void;
  /** Name on the bus; defaults to "virtio-mmio(<device name>)". */
  name?: string;
}

export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Hex string of the driver-accepted feature bits (bigint is not JSON). */
  driverFeatures: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: VirtqueueState[];
  device: unknown;
}

export interface VirtioMmioStats {
  /** Guest mistakes that put the device in DEVICE_NEEDS_RESET. */
  deviceFailures: number;
  /** Register accesses ignored because they were malformed or out of order. */
  ignoredAccesses: number;
  notifications: number;
  interrupts: number;
  resets: number;
}

function hex(v: number | bigint): string {
  return "0x" + v.toString(16);
}

class Context implements VirtioDeviceContext {
  private liveNow = true;
  private readonly aborter = new AbortController();
  readonly signal = this.aborter.signal;
  get live(): boolean {
    return this.liveNow;
  }
  /** Ends this activation: completions are dropped and queued backend work is abandoned. */
  end(): void {
    if (!this.liveNow) return;
    this.liveNow = false;
    this.aborter.abort();
  }
  constructor(
    private readonly owner: VirtioMmio,
    readonly ram: GuestRam,
    readonly queues: readonly Virtqueue[],
    readonly features: bigint,
  ) {}
  signalUsed(queue: number): void {
    if (this.live) this.owner.signalUsed(queue);
  }
  configChanged(): void {
    if (this.live) this.owner.configChanged();
  }
  fail(reason: string): void {
    if (this.live) this.owner.fail(reason);
  }
  log(msg: string): void {
    this.owner.log(msg);
  }
}

export class VirtioMmio implements MmioDevice {
  readonly name: string;
  private readonly ram: GuestRam;
  private readonly device: VirtioDevice;
  private readonly irq: IrqLine;
  private readonly logger: (msg: string) => void;
  private readonly queues: Virtqueue[];
  private readonly offered: bigint;

  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private ctx: Context | null = null;
  private irqLevel = false;
  private readonly counters: VirtioMmioStats = {
    deviceFailures: 0,
    ignoredAccesses: 0,
    notifications: 0,
    interrupts: 0,
    resets: 0,
  };

  constructor(opts: VirtioMmioOptions) {
    this.ram = opts.ram;
    this.device = opts.device;
    this.irq = opts.irq;
    this.logger = opts.log ?? (() => {});
    this.name = opts.name ?? `virtio-mmio(${opts.device.name})`;
    this.offered = opts.device.features | TRANSPORT_FEATURES;
    this.queues = [];
    for (let i = 0; i < opts.device.queueCount; i++) this.queues.push(new Virtqueue(opts.ram, i, opts.device.queueMaxSize));
  }

  log(msg: string): void {
    try {
      this.logger(`${this.name}: ${msg}`);
    } catch {
      // A broken logger must not take the device down.
    }
  }

  stats(): VirtioMmioStats {
    return { ...this.counters };
  }

  read(offset: number, size: 1 | 2 | 4): number {
    try {
      return this.readInner(offset, size);
    } catch (e) {
      this.fail(`reading register ${hex(offset)} failed: ${(e as Error).message}`);
      return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    try {
      this.writeInner(offset, size, value >>> 0);
    } catch (e) {
      this.fail(`writing register ${hex(offset)} failed: ${(e as Error).message}`);
    }
  }

  private ignore(why: string): void {
    this.counters.ignoredAccesses++;
    this.log(`ignored: ${why}`);
  }

  private selectedQueue(): Virtqueue | null {
    return this.queues[this.queueSel] ?? null;
  }

  private readInner(offset: number, size: 1 | 2 | 4): number {
    if (offset >= REG_CONFIG) return this.device.configRead(offset - REG_CONFIG, size);
    if (size !== 4 || offset % 4 !== 0) {
      this.ignore(`a ${size}-byte read of register ${hex(offset)}; registers are read 32 bits at a time`);
      return 0;
    }
    switch (offset) {
      case REG_MAGIC:
        return MMIO_MAGIC;
      case REG_VERSION:
        return MMIO_VERSION;
      case REG_DEVICE_ID:
        return this.device.deviceId;
      case REG_VENDOR_ID:
        return MMIO_VENDOR_ID;
      case REG_DEVICE_FEATURES:
        if (this.deviceFeaturesSel > 1) return 0;
        return Number((this.offered >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case REG_QUEUE_NUM_MAX:
        return this.selectedQueue()?.maxSize ?? 0;
      case REG_QUEUE_READY:
        return this.selectedQueue()?.ready ? 1 : 0;
      case REG_INTERRUPT_STATUS:
        return this.interruptStatus;
      case REG_STATUS:
        return this.status;
      case REG_SHM_LEN_LOW:
      case REG_SHM_LEN_HIGH:
      case REG_SHM_BASE_LOW:
      case REG_SHM_BASE_HIGH:
        return 0xffff_ffff; // no shared memory regions
      case REG_CONFIG_GENERATION:
        return this.configGeneration;
      default:
        return 0;
    }
  }

  private writeInner(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= REG_CONFIG) {
      this.device.configWrite(offset - REG_CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) {
      this.ignore(`a ${size}-byte write to register ${hex(offset)}; registers are written 32 bits at a time`);
      return;
    }
    switch (offset) {
      case REG_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = value;
        return;
      case REG_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = value;
        return;
      case REG_DRIVER_FEATURES: {
        if (this.status & (STATUS_FEATURES_OK | STATUS_DRIVER_OK) || !(this.status & STATUS_DRIVER)) {
          this.ignore(`driver features written with status ${hex(this.status)}, outside feature negotiation`);
          return;
        }
        if (this.driverFeaturesSel > 1) {
          if (value !== 0) this.ignore(`driver features bank ${this.driverFeaturesSel} does not exist`);
          return;
        }
        const shift = BigInt(32 * this.driverFeaturesSel);
        this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
        return;
      }
      case REG_QUEUE_SEL:
        this.queueSel = value;
        return;
      case REG_QUEUE_NUM:
      case REG_QUEUE_DESC_LOW:
      case REG_QUEUE_DESC_HIGH:
      case REG_QUEUE_DRIVER_LOW:
      case REG_QUEUE_DRIVER_HIGH:
      case REG_QUEUE_DEVICE_LOW:
      case REG_QUEUE_DEVICE_HIGH:
        this.writeQueueField(offset, value);
        return;
      case REG_QUEUE_READY:
        this.writeQueueReady(value);
        return;
      case REG_QUEUE_NOTIFY:
        this.queueNotify(value);
        return;
      case REG_INTERRUPT_ACK:
        this.interruptStatus &= ~value;
        this.updateIrq();
        return;
      case REG_STATUS:
        this.writeStatus(value);
        return;
      case REG_SHM_SEL:
        return;
      default:
        this.ignore(`write of ${hex(value)} to read-only or unknown register ${hex(offset)}`);
    }
  }

  private writeQueueField(offset: number, value: number): void {
    const q = this.selectedQueue();
    if (q === null) {
      this.ignore(`queue register ${hex(offset)} written while QueueSel ${this.queueSel} names no queue`);
      return;
    }
    if (q.ready) {
      this.ignore(`queue ${q.index} register ${hex(offset)} written while the queue is ready`);
      return;
    }
    const lo = (v: number): number => Math.floor(v / 0x1_0000_0000) * 0x1_0000_0000 + value;
    const hi = (v: number): number => value * 0x1_0000_0000 + (v % 0x1_0000_0000);
    switch (offset) {
      case REG_QUEUE_NUM:
        q.size = value;
        return;
      case REG_QUEUE_DESC_LOW:
        q.descAddr = lo(q.descAddr);
        return;
      case REG_QUEUE_DESC_HIGH:
        q.descAddr = hi(q.descAddr);
        return;
      case REG_QUEUE_DRIVER_LOW:
        q.driverAddr = lo(q.driverAddr);
        return;
      case REG_QUEUE_DRIVER_HIGH:
        q.driverAddr = hi(q.driverAddr);
        return;
      case REG_QUEUE_DEVICE_LOW:
        q.deviceAddr = lo(q.deviceAddr);
        return;
      case REG_QUEUE_DEVICE_HIGH:
        q.deviceAddr = hi(q.deviceAddr);
        return;
    }
  }

  private writeQueueReady(value: number): void {
    const q = this.selectedQueue();
    if (q === null) {
      this.ignore(`QueueReady written while QueueSel ${this.queueSel} names no queue`);
      return;
    }
    if (value === 0) {
      q.ready = false;
      return;
    }
    if (q.ready) return;
    if (!(this.status & STATUS_FEATURES_OK)) {
      this.fail(`queue ${q.index} was made ready before FEATURES_OK`);
      return;
    }
    const problem = q.validate();
    if (problem !== null) {
      this.fail(problem);
      return;
    }
    q.eventIdx = (this.driverFeatures & F_EVENT_IDX) !== 0n;
    q.indirect = (this.driverFeatures & F_INDIRECT_DESC) !== 0n;
    q.start();
    q.ready = true;
  }

  private queueNotify(value: number): void {
    this.counters.notifications++;
    if (this.ctx === null || !(this.status & STATUS_DRIVER_OK)) {
      // Linux's balloon kicks its stats queue before DRIVER_OK; a ready queue is served at activation anyway.
      if (!this.queues[value]?.ready) this.ignore(`notify of queue ${value} before DRIVER_OK`);
      return;
    }
    if (this.status & STATUS_DEVICE_NEEDS_RESET) {
      this.ignore(`notify of queue ${value} while the device needs a reset`);
      return;
    }
    const q = this.queues[value];
    if (q === undefined || !q.ready) {
      this.ignore(`notify of queue ${value}, which does not exist or is not ready`);
      return;
    }
    try {
      this.device.notify(value);
    } catch (e) {
      this.fail(`processing queue ${value} failed: ${(e as Error).message}`);
    }
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const allowed = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED;
    // Linux writes back what it read, NEEDS_RESET included: drop that bit silently.
    const foreign = value & ~allowed & ~STATUS_DEVICE_NEEDS_RESET;
    if (foreign) this.ignore(`status bits ${hex(foreign)} are reserved`);
    value &= allowed;
    const old = this.status;
    if (old & ~value & allowed) {
      this.ignore(`status ${hex(value)} would clear bits of ${hex(old)} without a reset`);
      return;
    }
    const added = value & ~old;
    if (added & STATUS_FEATURES_OK) {
      const problem = this.checkFeatures();
      if (problem !== null) {
        this.log(`refused FEATURES_OK: ${problem}`);
        value &= ~STATUS_FEATURES_OK;
      }
    }
    if (added & STATUS_DRIVER_OK && !(value & STATUS_FEATURES_OK)) {
      this.fail(`DRIVER_OK was set without FEATURES_OK (status ${hex(value)})`);
      return;
    }
    this.status = value | (old & STATUS_DEVICE_NEEDS_RESET);
    if (added & STATUS_DRIVER_OK && !(old & STATUS_DEVICE_NEEDS_RESET)) this.activate();
  }

  private checkFeatures(): string | null {
    const f = this.driverFeatures;
    if (!(f & F_VERSION_1)) return "the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)";
    const extra = f & ~this.offered;
    if (extra !== 0n) return `the driver accepted features ${hex(extra)} that were not offered`;
    return null;
  }

  private activate(): void {
    this.ctx = new Context(this, this.ram, this.queues, this.driverFeatures);
    try {
      this.device.activate(this.ctx);
    } catch (e) {
      this.fail(`activating the device failed: ${(e as Error).message}`);
    }
  }

  /** The host resets the device (the VM is stopping): work in flight is abandoned, as on a driver reset. */
  hostReset(): void {
    this.reset();
  }

  private reset(): void {
    this.counters.resets++;
    this.ctx?.end();
    this.ctx = null;
    try {
      this.device.reset();
    } catch (e) {
      this.log(`device reset failed: ${(e as Error).message}`);
    }
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.interruptStatus = 0;
    this.updateIrq();
  }

  /** Called by the device context. */
  signalUsed(queue: number): void {
    const q = this.queues[queue];
    if (q === undefined || !q.ready) return;
    let want: boolean;
    try {
      want = q.needsInterrupt();
    } catch (e) {
      this.fail(`checking queue ${queue} for an interrupt failed: ${(e as Error).message}`);
      return;
    }
    if (want) {
      this.interruptStatus |= INT_USED_BUFFER;
      this.updateIrq();
    }
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.interruptStatus |= INT_CONFIG_CHANGE;
    this.updateIrq();
  }

  /** Marks the device broken until the driver resets it. */
  fail(reason: string): void {
    this.counters.deviceFailures++;
    this.log(`device needs reset: ${reason}`);
    this.ctx?.end();
    if (this.status & STATUS_DEVICE_NEEDS_RESET) return;
    this.status |= STATUS_DEVICE_NEEDS_RESET;
    // The spec asks for a config-change notification when NEEDS_RESET is set after DRIVER_OK.
    if (this.status & STATUS_DRIVER_OK) {
      this.interruptStatus |= INT_CONFIG_CHANGE;
      this.updateIrq();
    }
  }

  private updateIrq(): void {
    const level = this.interruptStatus !== 0;
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    if (level) this.counters.interrupts++;
    try {
      this.irq.set(level);
    } catch (e) {
      this.log(`raising the interrupt failed: ${(e as Error).message}`);
    }
  }

  save(): VirtioMmioState {
    return {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: hex(this.driverFeatures),
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.save()),
      device: this.device.save(),
    };
  }

  /** Restores transport, queues and device; re-activates the device if the driver had set DRIVER_OK. */
  restore(s: VirtioMmioState): void {
    if (s.queues.length !== this.queues.length) {
      throw new RangeError(`Cannot restore ${this.name}: the snapshot has ${s.queues.length} queues, the device has ${this.queues.length}`);
    }
    this.ctx?.end();
    this.ctx = null;
    this.device.reset();
    this.status = s.status;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = BigInt(s.driverFeatures);
    this.queueSel = s.queueSel;
    this.interruptStatus = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    this.queues.forEach((q, i) => {
      q.reset();
      q.restore(s.queues[i]!);
      q.eventIdx = (this.driverFeatures & F_EVENT_IDX) !== 0n;
      q.indirect = (this.driverFeatures & F_INDIRECT_DESC) !== 0n;
    });
    this.device.restore(s.device);
    this.irqLevel = !(this.interruptStatus !== 0);
    this.updateIrq();
    for (const q of this.queues) {
      const problem = q.ready ? q.validate() : null;
      if (problem !== null) this.fail(`restored ${problem}`);
    }
    if (this.status & STATUS_DRIVER_OK && !(this.status & STATUS_DEVICE_NEEDS_RESET)) this.activate();
  }
}
