// A split virtqueue (virtio 1.2 §2.7) read from and written to guest RAM, device side.
// Everything read from the rings is untrusted: every index and address is checked, and any
// violation is thrown as a VirtqueueError, which the transport turns into DEVICE_NEEDS_RESET.

import type { GuestRam } from "../../seams/guest_ram.js";
import {
  AVAIL_F_NO_INTERRUPT,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  MAX_INDIRECT_DESCRIPTORS,
  MAX_QUEUE_SIZE,
} from "./constants.js";
import type { DescriptorChain } from "./descriptor_chain.js";

/** The driver broke the virtqueue rules; the device must be reset before it is used again. */
export class VirtqueueError extends Error {
  override name = "VirtqueueError";
}

/** Everything needed to bring a queue back after a snapshot (plain fields only). */
export interface VirtqueueState {
  size: number;
  ready: boolean;
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
  nextAvail: number;
  nextUsed: number;
  signalledUsed: number;
  signalledUsedValid: boolean;
}

const DESC_SIZE = 16;

export class Virtqueue {
  readonly index: number;
  readonly maxSize: number;
  size: number;
  ready = false;
  descAddr = 0;
  /** The available ring ("driver area"). */
  driverAddr = 0;
  /** The used ring ("device area"). */
  deviceAddr = 0;
  /** Set from the negotiated features when the device is activated. */
  eventIdx = false;
  indirect = false;
  private nextAvail = 0;
  private nextUsed = 0;
  private signalledUsed = 0;
  private signalledUsedValid = false;
  private readonly ram: GuestRam;
  /** Device-writable buffers of chains not yet used, by head: marked dirty once the device is done writing them. */
  private readonly writableInFlight = new Map<number, Uint8Array[]>();

  constructor(ram: GuestRam, index: number, maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > MAX_QUEUE_SIZE || (maxSize & (maxSize - 1)) !== 0) {
      throw new RangeError(`Queue ${index} maximum size ${maxSize} must be a power of two between 1 and ${MAX_QUEUE_SIZE}`);
    }
    this.ram = ram;
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descAddr = this.driverAddr = this.deviceAddr = 0;
    this.eventIdx = this.indirect = false;
    this.nextAvail = this.nextUsed = this.signalledUsed = 0;
    this.writableInFlight.clear();
    this.signalledUsedValid = false;
  }

  /** Why this queue's configuration cannot be used, or null when it can (checked when the driver sets QueueReady). */
  validate(): string | null {
    const n = this.size;
    if (!Number.isInteger(n) || n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) {
      return `queue ${this.index} size ${n} is not a power of two between 1 and ${this.maxSize}`;
    }
    if (this.descAddr % 16 !== 0 || !this.ram.contains(this.descAddr, DESC_SIZE * n)) {
      return `queue ${this.index} descriptor table at 0x${this.descAddr.toString(16)} is misaligned or outside RAM`;
    }
    if (this.driverAddr % 2 !== 0 || !this.ram.contains(this.driverAddr, 6 + 2 * n)) {
      return `queue ${this.index} available ring at 0x${this.driverAddr.toString(16)} is misaligned or outside RAM`;
    }
    if (this.deviceAddr % 4 !== 0 || !this.ram.contains(this.deviceAddr, 6 + 8 * n)) {
      return `queue ${this.index} used ring at 0x${this.deviceAddr.toString(16)} is misaligned or outside RAM`;
    }
    return null;
  }

  /** Called when the driver sets QueueReady: both rings start at index 0. */
  start(): void {
    this.nextAvail = 0;
    this.nextUsed = 0;
    this.signalledUsed = 0;
    this.signalledUsedValid = false;
  }

  private availIdx(): number {
    return this.ram.readU16(this.driverAddr + 2);
  }

  /** Number of chains the driver has made available that the device has not popped yet. */
  pending(): number {
    if (!this.ready) return 0;
    // avail_event (pop) is stored before the available index is loaded: a driver on another thread
    // stores the index, fences, loads avail_event to decide whether to notify; without this barrier both could miss.
    if (this.eventIdx) this.ram.hostFence();
    const n = (this.availIdx() - this.nextAvail) & 0xffff;
    if (n > this.size) {
      throw new VirtqueueError(
        `Queue ${this.index}: the available index moved ${n} entries ahead of the device, more than the queue size ${this.size}`,
      );
    }
    return n;
  }

  /** Pops the next available chain, or returns null when there is none. Throws VirtqueueError on a malformed ring or chain. */
  pop(): DescriptorChain | null {
    if (this.pending() === 0) return null;
    const slot = this.nextAvail & (this.size - 1);
    const head = this.ram.readU16(this.driverAddr + 4 + 2 * slot);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    // Ask to be notified as soon as the driver adds anything past what we have taken.
    if (this.eventIdx) this.ram.writeU16(this.deviceAddr + 4 + 8 * this.size, this.nextAvail);
    return this.walk(head);
  }

  /** Reads the chain that starts at descriptor `head`. Exposed so devices can replay in-flight chains after a restore. */
  walk(head: number): DescriptorChain {
    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    let readableBytes = 0;
    let writableBytes = 0;
    let table = this.descAddr;
    let tableSize = this.size;
    let limit = this.size;
    let inIndirect = false;
    let idx = head;
    let count = 0;
    for (;;) {
      if (idx >= tableSize) {
        throw new VirtqueueError(
          `Queue ${this.index}: descriptor index ${idx} is outside the ${inIndirect ? "indirect " : ""}table of ${tableSize} entries`,
        );
      }
      if (++count > limit) {
        throw new VirtqueueError(
          `Queue ${this.index}: the chain from head ${head} is longer than ${limit} descriptors (a loop?)`,
        );
      }
      const d = table + DESC_SIZE * idx;
      const addr = this.ram.readU64(d);
      const len = this.ram.readU32(d + 8);
      const flags = this.ram.readU16(d + 12);
      const next = this.ram.readU16(d + 14);
      if (flags & DESC_F_INDIRECT) {
        if (!this.indirect) throw new VirtqueueError(`Queue ${this.index}: indirect descriptor used but VIRTIO_F_INDIRECT_DESC was not negotiated`);
        if (inIndirect) throw new VirtqueueError(`Queue ${this.index}: an indirect table contains another indirect descriptor`);
        if (flags & DESC_F_NEXT) throw new VirtqueueError(`Queue ${this.index}: an indirect descriptor also has the NEXT flag`);
        if (len === 0 || len % DESC_SIZE !== 0) {
          throw new VirtqueueError(`Queue ${this.index}: indirect table length ${len} is not a non-zero multiple of 16`);
        }
        if (len / DESC_SIZE > MAX_INDIRECT_DESCRIPTORS) {
          throw new VirtqueueError(`Queue ${this.index}: indirect table of ${len / DESC_SIZE} entries exceeds ${MAX_INDIRECT_DESCRIPTORS}`);
        }
        if (!this.ram.contains(addr, len)) {
          throw new VirtqueueError(`Queue ${this.index}: indirect table at 0x${addr.toString(16)}+${len} is outside RAM`);
        }
        table = addr;
        tableSize = limit = len / DESC_SIZE;
        inIndirect = true;
        idx = 0;
        count = 0;
        continue;
      }
      if (!this.ram.contains(addr, len)) {
        throw new VirtqueueError(`Queue ${this.index}: descriptor ${idx} buffer 0x${addr.toString(16)}+${len} is outside RAM`);
      }
      const view = this.ram.slice(addr, len);
      if (flags & DESC_F_WRITE) {
        writable.push(view);
        writableBytes += len;
      } else {
        if (writable.length > 0) {
          throw new VirtqueueError(`Queue ${this.index}: descriptor ${idx} is device-readable but follows a device-writable one`);
        }
        readable.push(view);
        readableBytes += len;
      }
      if (!(flags & DESC_F_NEXT)) break;
      idx = next;
    }
    if (writable.length > 0) this.writableInFlight.set(head, writable);
    return { head, readable, writable, readableBytes, writableBytes };
  }

  /** Puts a completed chain in the used ring with the number of bytes the device wrote into it. */
  pushUsed(head: number, written: number): void {
    const done = this.writableInFlight.get(head);
    if (done !== undefined) {
      // DMA is over for this chain: mark its buffers after the writes, so a live copy sees them and no compiled code outlives them.
      for (const v of done) this.ram.deviceWrote(v.byteOffset, v.length);
      this.writableInFlight.delete(head);
    }
    const slot = this.nextUsed & (this.size - 1);
    const e = this.deviceAddr + 4 + 8 * slot;
    this.ram.writeU32(e, head);
    this.ram.writeU32(e + 4, written);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    this.ram.writeU16(this.deviceAddr + 2, this.nextUsed);
  }

  /** Whether the driver wants an interrupt for the used entries added since the last one we sent (§2.7.10). */
  needsInterrupt(): boolean {
    // The used index (pushUsed) is stored before the driver's flags or used_event are loaded, as the
    // driver stores used_event, fences and loads the used index: otherwise both sides could miss.
    this.ram.hostFence();
    if (!this.eventIdx) {
      if (this.signalledUsed === this.nextUsed) return false;
      this.signalledUsed = this.nextUsed;
      return (this.ram.readU16(this.driverAddr) & AVAIL_F_NO_INTERRUPT) === 0;
    }
    const old = this.signalledUsed;
    const now = this.nextUsed;
    const valid = this.signalledUsedValid;
    this.signalledUsed = now;
    this.signalledUsedValid = true;
    if (old === now && valid) return false;
    if (!valid) return true;
    const usedEvent = this.ram.readU16(this.driverAddr + 4 + 2 * this.size);
    // vring_need_event: did new_idx step past used_event since old_idx?
    return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  save(): VirtqueueState {
    return {
      size: this.size,
      ready: this.ready,
      descAddr: this.descAddr,
      driverAddr: this.driverAddr,
      deviceAddr: this.deviceAddr,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      signalledUsed: this.signalledUsed,
      signalledUsedValid: this.signalledUsedValid,
    };
  }

  restore(s: VirtqueueState): void {
    this.size = s.size;
    this.ready = s.ready;
    this.descAddr = s.descAddr;
    this.driverAddr = s.driverAddr;
    this.deviceAddr = s.deviceAddr;
    this.nextAvail = s.nextAvail & 0xffff;
    this.nextUsed = s.nextUsed & 0xffff;
    this.signalledUsed = s.signalledUsed & 0xffff;
    this.signalledUsedValid = s.signalledUsedValid;
  }
}
