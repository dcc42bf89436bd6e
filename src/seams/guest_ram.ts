// Guest RAM: one shared WebAssembly.Memory mapped at a guest-physical base, so that vCPU worker
// threads, the device thread and JIT-generated wasm code all load and store the same bytes.
// Every DMA-style accessor bounds-checks its range.

/** Raised when a device or loader touches guest-physical memory outside RAM. */
export class GuestMemoryError extends RangeError {
  override name = "GuestMemoryError";
}

export interface GuestRamState {
  base: number;
  size: number;
}

const WASM_PAGE = 65536;

export class GuestRam {
  readonly base: number;
  readonly size: number;
  readonly end: number;
  /** The wasm memory itself (its buffer is a SharedArrayBuffer of whole 64 KiB pages, at least `size` bytes). */
  readonly memory: WebAssembly.Memory;
  readonly buffer: SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  /** For 64-bit atomics (AMO*.D, LR/SC.D). */
  readonly i64: BigInt64Array;
  /** For single-copy-atomic aligned doublewords: one element moved bit-exactly (see cpu/hart.ts). */
  readonly f64: Float64Array;
  readonly view: DataView;

  /** With `memory`, views RAM another thread created (a vCPU worker); otherwise creates it. */
  constructor(base: number, size: number, memory?: WebAssembly.Memory) {
    if (size <= 0 || size % 4096 !== 0) throw new RangeError(`Guest RAM size ${size} must be a positive multiple of 4 KiB`);
    this.base = base;
    this.size = size;
    this.end = base + size;
    // Reserved, not committed: the OS zero-fills pages on first touch, so untouched guest memory
    // costs no host memory. A fixed size (maximum = initial): the buffer never moves.
    const pages = Math.ceil(size / WASM_PAGE);
    this.memory = memory ?? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    if (this.memory.buffer.byteLength < size) throw new RangeError(`Guest RAM of ${size} bytes does not fit the ${this.memory.buffer.byteLength}-byte memory given`);
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.u8 = new Uint8Array(this.buffer);
    this.u16 = new Uint16Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.i64 = new BigInt64Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  /** True when [gpa, gpa+len) lies entirely inside RAM. */
  contains(gpa: number, len: number): boolean {
    return gpa >= this.base && len >= 0 && gpa + len <= this.end;
  }

  /** A live view of [gpa, gpa+len) (no copy). Throws GuestMemoryError when out of RAM. */
  slice(gpa: number, len: number): Uint8Array {
    if (!this.contains(gpa, len)) {
      throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}+${len} is outside RAM`);
    }
    const off = gpa - this.base;
    return this.u8.subarray(off, off + len);
  }

  read(gpa: number, len: number): Uint8Array {
    return this.slice(gpa, len).slice();
  }

  write(gpa: number, data: Uint8Array): void {
    this.slice(gpa, data.length).set(data);
  }

  readU16(gpa: number): number {
    this.check(gpa, 2);
    return this.view.getUint16(gpa - this.base, true);
  }

  readU32(gpa: number): number {
    this.check(gpa, 4);
    return this.view.getUint32(gpa - this.base, true);
  }

  /** 64-bit little-endian read as a JS number; values above 2^53 lose precision (only used for guest addresses and lengths, which are then range-checked). */
  readU64(gpa: number): number {
    this.check(gpa, 8);
    const off = gpa - this.base;
    return this.view.getUint32(off, true) + this.view.getUint32(off + 4, true) * 0x1_0000_0000;
  }

  writeU16(gpa: number, v: number): void {
    this.check(gpa, 2);
    this.view.setUint16(gpa - this.base, v, true);
  }

  writeU32(gpa: number, v: number): void {
    this.check(gpa, 4);
    this.view.setUint32(gpa - this.base, v >>> 0, true);
  }

  writeU64(gpa: number, v: number): void {
    this.check(gpa, 8);
    const off = gpa - this.base;
    this.view.setUint32(off, v % 0x1_0000_0000 >>> 0, true);
    this.view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000) >>> 0, true);
  }

  private check(gpa: number, len: number): void {
    if (!this.contains(gpa, len)) {
      throw new GuestMemoryError(`guest access 0x${gpa.toString(16)}+${len} is outside RAM`);
    }
  }
}
