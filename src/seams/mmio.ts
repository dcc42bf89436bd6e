// Memory-mapped I/O as every layer sees it: a device is an object with read and write at
// offsets of its range; a router (the board's bus) finds the device for a guest-physical address.

/** A device mapped at an address range. Offsets are relative to the device's base. */
export interface MmioDevice {
  readonly name: string;
  /** Read 1, 2 or 4 bytes; returns the value zero-extended (unsigned). */
  read(offset: number, size: 1 | 2 | 4): number;
  /** Write 1, 2 or 4 bytes (value holds the low `size` bytes). */
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Guest-physical MMIO routing: what a vCPU calls for the devices it serves itself (CLINT, PLIC). */
export interface MmioRouter {
  /** Set when the most recent access hit no device; the CPU turns that into an access fault. */
  readonly fault: boolean;
  /** High 32 bits of the last 8-byte read. */
  readonly readHigh: number;
  /** True when some device is mapped at `addr`. */
  claims(addr: number): boolean;
  /** Returns the value read (unsigned for sizes 1/2/4; for size 8 the low 32 bits, high in `readHigh`). */
  read(addr: number, size: 1 | 2 | 4 | 8): number;
  /** Writes; for size 8, `value` is the low word and `high` the high word. */
  write(addr: number, size: 1 | 2 | 4 | 8, value: number, high?: number): void;
}
