// The system bus: routes guest-physical loads and stores outside RAM to MMIO devices.
// The CPU sees RAM and this bus; it never knows which device it talks to.

import type { MmioDevice, MmioRouter } from "../seams/mmio.js";

export type { MmioDevice };

export interface BusMapping {
  readonly base: number;
  readonly size: number;
  readonly device: MmioDevice;
}

export class BusError extends Error {
  override name = "BusError";
}

/**
 * 8-byte accesses are split by the bus into two 4-byte accesses (low word first),
 * so devices deal only with sizes 1, 2 and 4.
 */
export class Bus implements MmioRouter {
  private readonly maps: BusMapping[] = [];
  private last: BusMapping | null = null;
  /** Set when the most recent access hit no device; the CPU turns that into an access fault. */
  fault = false;

  map(base: number, size: number, device: MmioDevice): void {
    if (size <= 0) throw new BusError(`Cannot map ${device.name}: size ${size} is not positive`);
    for (const m of this.maps) {
      if (base < m.base + m.size && m.base < base + size) {
        throw new BusError(
          `Cannot map ${device.name} at 0x${base.toString(16)}: it overlaps ${m.device.name} at 0x${m.base.toString(16)}`,
        );
      }
    }
    this.maps.push({ base, size, device });
    this.maps.sort((a, b) => a.base - b.base);
  }

  mappings(): readonly BusMapping[] {
    return this.maps;
  }

  private find(addr: number): BusMapping | null {
    const l = this.last;
    if (l !== null && addr >= l.base && addr < l.base + l.size) return l;
    for (const m of this.maps) {
      if (addr >= m.base && addr < m.base + m.size) {
        this.last = m;
        return m;
      }
    }
    return null;
  }

  claims(addr: number): boolean {
    return this.find(addr) !== null;
  }

  /** Returns the value read (unsigned for sizes 1/2/4; for size 8 the low 32 bits, high in `readHigh`). Sets `fault` if unmapped. */
  read(addr: number, size: 1 | 2 | 4 | 8): number {
    const m = this.find(addr);
    if (m === null || addr + (size === 8 ? 8 : size) > m.base + m.size) {
      this.fault = true;
      return 0;
    }
    this.fault = false;
    const off = addr - m.base;
    if (size === 8) {
      const lo = m.device.read(off, 4) >>> 0;
      this.readHigh = m.device.read(off + 4, 4) >>> 0;
      return lo;
    }
    return m.device.read(off, size);
  }

  /** High 32 bits of the last 8-byte read. */
  readHigh = 0;

  /** Writes; for size 8, `value` is the low word and `high` the high word. Sets `fault` if unmapped. */
  write(addr: number, size: 1 | 2 | 4 | 8, value: number, high = 0): void {
    const m = this.find(addr);
    if (m === null || addr + (size === 8 ? 8 : size) > m.base + m.size) {
      this.fault = true;
      return;
    }
    this.fault = false;
    const off = addr - m.base;
    if (size === 8) {
      m.device.write(off, 4, value >>> 0);
      m.device.write(off + 4, 4, high >>> 0);
      return;
    }
    m.device.write(off, size, value);
  }
}
