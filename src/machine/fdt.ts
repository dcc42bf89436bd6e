// Flattened device tree (DTB) writer: the board describes itself to firmware and Linux with this.
// Format: devicetree specification v0.4, chapter 5 (version 17, last compatible version 16).

export const FDT_MAGIC = 0xd00dfeed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_BEGIN_NODE = 1;
export const FDT_END_NODE = 2;
export const FDT_PROP = 3;
export const FDT_NOP = 4;
export const FDT_END = 9;
export const FDT_HEADER_SIZE = 40;

/** Raised when the builder is used out of order or given a value the format cannot hold. */
export class FdtError extends Error {
  override name = "FdtError";
}

const U32_LIMIT = 0x1_0000_0000;
const U64_LIMIT = 1n << 64n;
// Node and property names as the devicetree specification allows them (sections 2.2.1 and 2.2.4).
const NODE_NAME = /^[A-Za-z0-9,._+-]{1,31}(@[A-Za-z0-9,._+-]+)?$/;
const PROP_NAME = /^[A-Za-z0-9,._+?#-]+$/;

/** A growable big-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** Zero-pads to a multiple of `n` bytes. */
  align(n: number): void {
    const pad = (n - (this.length % n)) % n;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

interface OpenNode {
  path: string;
  propNames: Set<string>;
  childNames: Set<string>;
  hasChildren: boolean;
}

export interface FdtReservation {
  address: bigint;
  size: bigint;
}

/**
 * Builds a DTB by streaming nodes and properties in document order:
 * beginNode("") … props … (child nodes) … endNode(), then finish().
 * Properties of a node must come before its first child node, as the format requires.
 */
export class FdtBuilder {
  private readonly struct = new ByteWriter();
  private readonly strings = new ByteWriter();
  private readonly stringOffsets = new Map<string, number>();
  private readonly reservations: FdtReservation[] = [];
  private readonly stack: OpenNode[] = [];
  private rootDone = false;
  private nextPhandle = 1;
  private bootCpu = 0;
  private readonly encoder = new TextEncoder();

  /** Adds a /memreserve/ entry (a range the OS must not use, e.g. firmware). */
  addReservation(address: bigint | number, size: bigint | number): void {
    this.reservations.push({ address: toU64(address, "reservation address"), size: toU64(size, "reservation size") });
  }

  /** Sets the header's boot_cpuid_phys (the hart id that boots). */
  setBootCpu(hartId: number): void {
    this.bootCpu = checkU32(hartId, "boot CPU id");
  }

  /** Returns a fresh phandle value (1, 2, …); write it with propU32("phandle", p) and refer to it elsewhere. */
  allocatePhandle(): number {
    return this.nextPhandle++;
  }

  beginNode(name: string): void {
    if (this.stack.length === 0) {
      if (this.rootDone) throw new FdtError(`Cannot begin node "${name}": the root node is already closed`);
      if (name !== "") throw new FdtError(`Cannot begin node "${name}": the first node must be the root, named ""`);
    } else {
      const parent = this.stack[this.stack.length - 1];
      if (!NODE_NAME.test(name)) throw new FdtError(`Cannot begin node "${name}" under ${parent.path}: the name is not a valid node name`);
      if (parent.childNames.has(name)) throw new FdtError(`Cannot begin node "${name}": ${parent.path} already has a child of that name`);
      parent.childNames.add(name);
      parent.hasChildren = true;
    }
    const parentPath = this.stack.length === 0 ? "" : this.stack[this.stack.length - 1].path;
    const path = this.stack.length === 0 ? "/" : parentPath === "/" ? `/${name}` : `${parentPath}/${name}`;
    this.stack.push({ path, propNames: new Set(), childNames: new Set(), hasChildren: false });
    this.struct.u32(FDT_BEGIN_NODE);
    this.struct.bytes(this.encoder.encode(name));
    this.struct.bytes(new Uint8Array(1));
    this.struct.align(4);
  }

  endNode(): void {
    if (this.stack.pop() === undefined) throw new FdtError("Cannot end a node: no node is open");
    this.struct.u32(FDT_END_NODE);
    if (this.stack.length === 0) this.rootDone = true;
  }

  propBytes(name: string, value: Uint8Array): void {
    const node = this.stack[this.stack.length - 1];
    if (node === undefined) throw new FdtError(`Cannot add property "${name}": no node is open`);
    if (!PROP_NAME.test(name)) throw new FdtError(`Cannot add property "${name}" to ${node.path}: the name is not a valid property name`);
    if (node.hasChildren) throw new FdtError(`Cannot add property "${name}" to ${node.path}: properties must come before child nodes`);
    if (node.propNames.has(name)) throw new FdtError(`Cannot add property "${name}" to ${node.path}: it is already set`);
    node.propNames.add(name);
    this.struct.u32(FDT_PROP);
    this.struct.u32(value.length);
    this.struct.u32(this.stringOffset(name));
    this.struct.bytes(value);
    this.struct.align(4);
  }

  propEmpty(name: string): void {
    this.propBytes(name, new Uint8Array(0));
  }

  propU32(name: string, value: number): void {
    this.propCells(name, [value]);
  }

  /** A list of 32-bit cells (reg, interrupts, ranges written as cells, …). */
  propCells(name: string, cells: readonly number[]): void {
    const out = new Uint8Array(cells.length * 4);
    const view = new DataView(out.buffer);
    cells.forEach((c, i) => view.setUint32(i * 4, checkU32(c, `cell ${i} of "${name}"`)));
    this.propBytes(name, out);
  }

  propU64(name: string, value: bigint | number): void {
    this.propU64s(name, [value]);
  }

  /** A list of 64-bit values, each written as two big-endian cells (high first). */
  propU64s(name: string, values: readonly (bigint | number)[]): void {
    const out = new Uint8Array(values.length * 8);
    const view = new DataView(out.buffer);
    values.forEach((v, i) => view.setBigUint64(i * 8, toU64(v, `value ${i} of "${name}"`)));
    this.propBytes(name, out);
  }

  propString(name: string, value: string): void {
    this.propStrings(name, [value]);
  }

  /** A string list (e.g. compatible): each string NUL-terminated, back to back. */
  propStrings(name: string, values: readonly string[]): void {
    const parts = values.map((s) => {
      if (s.includes("\0")) throw new FdtError(`Cannot add property "${name}": a string contains a NUL character`);
      return this.encoder.encode(s);
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length + 1;
    }
    this.propBytes(name, out);
  }

  /** Assembles header, memory reservation block, structure block and strings block. */
  finish(): Uint8Array {
    if (this.stack.length !== 0) throw new FdtError(`Cannot finish the device tree: node ${this.stack[this.stack.length - 1].path} is still open`);
    if (!this.rootDone) throw new FdtError("Cannot finish the device tree: it has no root node");
    const rsvOff = FDT_HEADER_SIZE; // already 8-byte aligned, as the reservation block must be
    const rsvSize = (this.reservations.length + 1) * 16;
    const structOff = rsvOff + rsvSize;
    const structSize = this.struct.length + 4; // + FDT_END
    const stringsOff = structOff + structSize;
    const stringsSize = this.strings.length;
    const total = stringsOff + stringsSize;

    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    const header = [FDT_MAGIC, total, structOff, stringsOff, rsvOff, FDT_VERSION, FDT_LAST_COMP_VERSION, this.bootCpu, stringsSize, structSize];
    header.forEach((v, i) => view.setUint32(i * 4, v));
    this.reservations.forEach((r, i) => {
      view.setBigUint64(rsvOff + i * 16, r.address);
      view.setBigUint64(rsvOff + i * 16 + 8, r.size);
    });
    out.set(this.struct.result(), structOff);
    view.setUint32(structOff + this.struct.length, FDT_END);
    out.set(this.strings.result(), stringsOff);
    return out;
  }

  // Property names are stored once in the strings block and referenced by offset.
  private stringOffset(name: string): number {
    let off = this.stringOffsets.get(name);
    if (off === undefined) {
      off = this.strings.length;
      this.strings.bytes(this.encoder.encode(name));
      this.strings.bytes(new Uint8Array(1));
      this.stringOffsets.set(name, off);
    }
    return off;
  }
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v >= U32_LIMIT) throw new FdtError(`Cannot encode ${what}: ${v} is not an unsigned 32-bit integer`);
  return v;
}

function toU64(v: bigint | number, what: string): bigint {
  if (typeof v === "number" && !Number.isSafeInteger(v)) throw new FdtError(`Cannot encode ${what}: ${v} is not a safe integer (pass a bigint)`);
  const b = BigInt(v);
  if (b < 0n || b >= U64_LIMIT) throw new FdtError(`Cannot encode ${what}: ${b} is not an unsigned 64-bit integer`);
  return b;
}
