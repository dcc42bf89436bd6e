// A minimal WebAssembly binary writer for the JIT: modules that import the guest's shared memory
// (and a function table) and export their functions. Only the opcodes the block compiler emits.

/** Opcodes used by the compiler (WebAssembly core spec, binary format). */
export const OP = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, brTable: 0x0e, return: 0x0f,
  call: 0x10, callIndirect: 0x11, returnCall: 0x12, returnCallIndirect: 0x13, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i64Load: 0x29, f64Load: 0x2b,
  i32Load8U: 0x2d, i32Load16U: 0x2f,
  i64Load8S: 0x30, i64Load8U: 0x31, i64Load16S: 0x32, i64Load16U: 0x33, i64Load32S: 0x34, i64Load32U: 0x35,
  i32Store: 0x36, i64Store: 0x37, f64Store: 0x39, i32Store8: 0x3a, i32Store16: 0x3b,
  i64Store8: 0x3c, i64Store16: 0x3d, i64Store32: 0x3e,
  i32Const: 0x41, i64Const: 0x42, f64Const: 0x44,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b, i32GeU: 0x4f,
  i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52, i64LtS: 0x53, i64LtU: 0x54, i64GeS: 0x59, i64GeU: 0x5a,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32DivS: 0x6d, i32DivU: 0x6e, i32RemS: 0x6f, i32RemU: 0x70,
  i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76,
  i64Add: 0x7c, i64Sub: 0x7d, i64Mul: 0x7e, i64DivS: 0x7f, i64DivU: 0x80, i64RemS: 0x81, i64RemU: 0x82,
  i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrS: 0x87, i64ShrU: 0x88,
  f64Eq: 0x61, f64Add: 0xa0, f64Sub: 0xa1,
  i32WrapI64: 0xa7, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad, i64TruncF64S: 0xb0, f64ConvertI32U: 0xb8, f64ConvertI64S: 0xb9,
} as const;

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;
export const V128 = 0x7b;
/** Block type "no result". */
export const VOID = 0x40;

const F64_SCRATCH = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64_SCRATCH.buffer);

const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** Bytes of the unsigned LEB128 encoding of `v` (a uint32). */
function leb128Length(v: number): number {
  let n = 1;
  for (let x = v >>> 7; x !== 0; x >>>= 7) n++;
  return n;
}

/** Growable byte buffer with LEB128 writers. */
export class ByteWriter {
  private buf: Uint8Array<ArrayBuffer>;
  length = 0;

  /** `capacity`: the first buffer's size (it doubles as needed). Each buffer is an off-heap allocation: reuse writers in loops (reset). */
  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity);
  }

  /** Empties the writer, keeping its buffer. */
  reset(): this {
    this.length = 0;
    return this;
  }

  byte(b: number): this {
    if (this.length === this.buf.length) this.reserve(1);
    this.buf[this.length++] = b;
    return this;
  }

  bytes(bs: ArrayLike<number>): this {
    const n = bs.length;
    this.reserve(n);
    for (let i = 0; i < n; i++) this.buf[this.length++] = bs[i]!;
    return this;
  }

  /** Appends another writer's bytes. */
  append(w: ByteWriter): this {
    this.reserve(w.length);
    this.buf.set(w.buf.subarray(0, w.length), this.length);
    this.length += w.length;
    return this;
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = Math.max(64, this.buf.length * 2);
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  u32(v: number): this {
    let x = v >>> 0;
    do {
      const b = x & 0x7f;
      x >>>= 7;
      this.byte(x === 0 ? b : b | 0x80);
    } while (x !== 0);
    return this;
  }

  /** Signed LEB128 of an int32 value. */
  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) { this.byte(b); return this; }
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of a 64-bit value: a safe-integer number, or a bigint for the rest. */
  s64(v: number | bigint): this {
    if (typeof v === "number") {
      if (v === (v | 0)) return this.s32(v);
      if (!Number.isSafeInteger(v)) throw new RangeError(`s64: ${v} is not a safe integer; pass a bigint`);
      let x = v;
      for (;;) {
        const b = ((x % 128) + 128) % 128;
        x = (x - b) / 128;
        if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) { this.byte(b); return this; }
        this.byte(b | 0x80);
      }
    }
    let x = BigInt.asIntN(64, v);
    for (;;) {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      if ((x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0)) { this.byte(b); return this; }
      this.byte(b | 0x80);
    }
  }

  f64(v: number): this {
    F64_SCRATCH[0] = v;
    return this.bytes(F64_BYTES);
  }

  toBytes(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }

  /** The bytes without a copy, when the writer was sized exactly (else a copy); the writer must not be written again. */
  buffer(): Uint8Array<ArrayBuffer> {
    return this.length === this.buf.length ? this.buf : this.toBytes();
  }
}

export interface FuncType {
  params: number[];
  results: number[];
}

export interface FunctionBody {
  /** Extra locals after the params, by type. */
  locals: number[];
  /** The body's instructions (without the final `end`). */
  body: ByteWriter;
  /** Its type: 0 (the module's own, the default) or one of otherTypes (1...). */
  type?: number;
}

/** A module of functions, of type 0 unless a function says otherwise. */
export interface ModuleSpec extends FuncType {
  functions: FunctionBody[];
  /** Further types the bodies refer to (call_indirect), numbered from 1. */
  otherTypes?: FuncType[];
  /** Import `env.tbl`, a funcref table, as table 0. */
  importTable?: boolean;
  /** Import `env.<name>` for each name, functions of type 0, as functions 0... (the module's own functions follow). */
  importFunctions?: string[];
  /**
   * Instead of exporting each function, put the first `tableFunctions` of its own in a table of
   * their own and export that as `t` (compile_block.ts instantiateBlocks): an instance then creates
   * no export per function, which was most of an instantiation's cost (40 functions: ~70 µs
   * against ~7 µs with one export).
   */
  tableFunctions?: number;
}

function section(out: ByteWriter, id: number, content: ByteWriter): void {
  out.byte(id).u32(content.length).append(content);
}

/** A name as the binary format has it (ASCII only here: import and export names). */
function name(w: ByteWriter, s: string): void {
  w.u32(s.length);
  for (let i = 0; i < s.length; i++) w.byte(s.charCodeAt(i));
}

/** Scratch writers buildModule reuses (it runs for every module the JIT compiles; a fresh writer is an off-heap allocation). */
const SCRATCH = { types: new ByteWriter(), imports: new ByteWriter(), funcs: new ByteWriter(), tables: new ByteWriter(), exports: new ByteWriter(), elems: new ByteWriter(), code: new ByteWriter(64 << 10), locals: new ByteWriter(64) };

/**
 * A module that imports `env.mem` (shared memory of `pages` 64 KiB pages; the import's limits
 * must equal the memory's own), optionally `env.tbl` and functions, and exports its own function i as `f${i}`
 * (or, with `tableFunctions`, a table of them as `t`).
 */
export function buildModule(spec: ModuleSpec, pages: number): Uint8Array<ArrayBuffer> {
  const allTypes = [spec, ...(spec.otherTypes ?? [])];
  const types = SCRATCH.types.reset().u32(allTypes.length);
  for (const t of allTypes) types.byte(0x60).u32(t.params.length).bytes(t.params).u32(t.results.length).bytes(t.results);
  const importFns = spec.importFunctions ?? [];
  const imports = SCRATCH.imports.reset().u32(1 + (spec.importTable ? 1 : 0) + importFns.length);
  for (const fn of importFns) {
    name(imports, "env");
    name(imports, fn);
    imports.byte(0x00).u32(0);
  }
  name(imports, "env");
  name(imports, "mem");
  imports.byte(0x02).byte(0x03).u32(pages).u32(pages); // memory, shared with maximum
  if (spec.importTable) {
    name(imports, "env");
    name(imports, "tbl");
    imports.byte(0x01).byte(0x70).byte(0x00).u32(0); // table of funcref, min 0, no maximum
  }
  const n = spec.functions.length;
  const funcs = SCRATCH.funcs.reset().u32(n);
  for (const fn of spec.functions) funcs.u32(fn.type ?? 0);
  const first = importFns.length;
  const inTable = spec.tableFunctions ?? -1;
  const tables = SCRATCH.tables.reset();
  const elems = SCRATCH.elems.reset();
  const exports = SCRATCH.exports.reset();
  if (inTable >= 0) {
    tables.u32(1).byte(0x70).byte(0x01).u32(inTable).u32(inTable); // one funcref table, exactly that size
    exports.u32(1);
    name(exports, "t");
    exports.byte(0x01).u32(spec.importTable ? 1 : 0);
    elems.u32(1).u32(spec.importTable ? 2 : 0); // one active segment: at 0 of the table (2: with its index)
    if (spec.importTable) elems.u32(1);
    elems.byte(OP.i32Const).byte(0).byte(OP.end);
    if (spec.importTable) elems.byte(0x00); // elemkind funcref
    elems.u32(inTable);
    for (let i = 0; i < inTable; i++) elems.u32(first + i);
  } else {
    exports.u32(n);
    for (let i = 0; i < n; i++) {
      name(exports, `f${i}`);
      exports.byte(0x00).u32(first + i);
    }
  }
  const code = SCRATCH.code.reset().u32(n);
  const locals = SCRATCH.locals;
  for (const fn of spec.functions) {
    // Locals as runs of one type each.
    locals.reset();
    let runs = 0;
    for (let i = 0; i < fn.locals.length; ) {
      const t = fn.locals[i]!;
      let j = i + 1;
      while (j < fn.locals.length && fn.locals[j] === t) j++;
      locals.u32(j - i).byte(t);
      runs++;
      i = j;
    }
    const header = leb128Length(runs) + locals.length;
    code.u32(header + fn.body.length + 1).u32(runs).append(locals).append(fn.body).byte(OP.end);
  }
  const sections = inTable >= 0 ? [types, imports, funcs, tables, exports, elems, code] : [types, imports, funcs, exports, code];
  let size = 8;
  for (const c of sections) size += 1 + leb128Length(c.length) + c.length;
  const out = new ByteWriter(size).bytes(WASM_HEADER);
  section(out, 1, types);
  section(out, 2, imports);
  section(out, 3, funcs);
  if (inTable >= 0) section(out, 4, tables);
  section(out, 7, exports);
  if (inTable >= 0) section(out, 9, elems);
  section(out, 10, code);
  return out.buffer();
}
