// How compiled code finds the next block: `go`, a wasm function every module of blocks imports,
// looks the virtual pc up in the hart's jump cache (hart_layout.ts HART_JUMP_CACHE: pc -> table
// slot, valid for one generation, which moves on whenever a fetch-TLB entry changes or code is
// dropped); on a miss it translates the pc through the fetch TLB, finds the block in the
// direct-mapped lookup by RAM offset (whose entries for a page go when its code is dropped or a
// device writes it) and fills the jump cache; either way it tail-calls the block through the function table. So control moves from block to block, across pages, without
// returning to JavaScript. When there is no block (or no TLB entry) it stores pc and returns: the
// JavaScript side (exec_jit.ts) sorts out which. The dispatcher JavaScript calls is `go` at the
// hart's pc.
import * as HL from "../hart_layout.js";
import { JIT_LOOKUP_ENTRIES } from "../../seams/guest_ram.js";
import { ByteWriter, I32, I64, OP, V128, VOID, buildModule, type FuncType } from "./wasm_module.js";

/**
 * (st, budget) -> budget left: runs compiled code at the pc of the hart whose state block is at st
 * (its W_JIT_DS and W_JIT_XS words name its data and fetch TLB sets) for at most `budget` instructions.
 */
export type DispatchFn = (st: number, budget: number) => number;

/**
 * A block function's type (and `go`'s): (vpage or pc: i64, st, rem: i32, token: v128) -> i32: the
 * virtual page (go: the pc), the hart's state block and the budget left; returns the budget left.
 * The token is passed on unread: a v128 makes the type one JavaScript cannot call, so V8 compiles
 * no JS wrapper for the blocks a module imports (it did, per module: ~7% of the compile thread).
 */
export const BLOCK_FN_TYPE: FuncType = { params: [I64, I32, I32, V128], results: [I32] };

/** Where `go` finds its tables in the guest-RAM memory. */
export interface LookupTables {
  /** Offset of the block lookup (pairs of int32: RAM offset + 1, table slot). */
  lookupOffset: number;
}

/** `go`'s locals after its three parameters. */
const GO_LOCALS = [I32, I32, I32, I32, I32, I32];
const G_PC = 0, G_ST = 1, G_REM = 2, G_TOKEN = 3, G_LO = 4, G_P = 5, G_OFF = 6, G_E = 7, G_HI = 8, G_J = 9;
const JC = HL.HART_JUMP_CACHE;

/** `go`'s body; `blockType` is the index of BLOCK_FN_TYPE in the module. */
function emitGo(t: LookupTables, blockType: number): ByteWriter {
  const w = new ByteWriter();
  const op = (...b: number[]): void => { w.bytes(b); };
  const get = (l: number): void => { op(OP.localGet); w.u32(l); };
  const tee = (l: number): void => { op(OP.localTee); w.u32(l); };
  const set = (l: number): void => { op(OP.localSet); w.u32(l); };
  const i32 = (v: number): void => { op(OP.i32Const); w.s32(v); };
  const mem = (o: number, align: number, offset: number): void => { op(o); w.u32(align); w.u32(offset); };
  const X = HL.TLB_ARRAY_BYTES;
  // The jump cache: keyed by the pc and the fetch TLB set (W_JIT_XKEY), in the current generation.
  get(G_PC); op(OP.i32WrapI64); tee(G_LO);
  i32(1); op(OP.i32ShrU); get(G_LO); i32(13); op(OP.i32ShrU); op(OP.i32Xor); i32(HL.JC_ENTRIES - 1); op(OP.i32And); i32(4); op(OP.i32Shl); get(G_ST); op(OP.i32Add); set(G_J);
  get(G_PC); op(OP.i64Const); w.s64(32); op(OP.i64ShrU); op(OP.i32WrapI64); get(G_ST); mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JIT_XKEY); op(OP.i32Xor); set(G_HI);
  op(OP.block, VOID); // $miss
  get(G_J); mem(OP.i32Load, 2, JC); get(G_LO); op(OP.i32Ne);
  get(G_J); mem(OP.i32Load, 2, JC + 4); get(G_HI); op(OP.i32Ne); op(OP.i32Or);
  get(G_J); mem(OP.i32Load, 2, JC + 8); get(G_ST); mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JC_GEN); op(OP.i32Ne); op(OP.i32Or);
  op(OP.brIf, 0);
  get(G_PC); op(OP.i64Const); w.s64(-4096); op(OP.i64And);
  get(G_ST); get(G_REM); get(G_TOKEN);
  get(G_J); mem(OP.i32Load, 2, JC + 12);
  op(OP.returnCallIndirect); w.u32(blockType); w.u32(0);
  op(OP.end);
  op(OP.block, VOID); // $none
  get(G_LO); i32(12); op(OP.i32ShrU); i32(2047); op(OP.i32And); i32(2); op(OP.i32Shl);
  get(G_ST); mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JIT_XS); op(OP.i32Add); tee(G_P);
  mem(OP.i32Load, 2, HL.TLB_X_TAG_LO * X); get(G_LO); i32(-4096); op(OP.i32And); op(OP.i32Ne);
  get(G_P); mem(OP.i32Load, 2, HL.TLB_X_TAG_HI * X); get(G_PC); op(OP.i64Const); w.s64(32); op(OP.i64ShrU); op(OP.i32WrapI64); op(OP.i32Ne);
  op(OP.i32Or, OP.brIf, 0);
  get(G_P); mem(OP.i32Load, 2, HL.TLB_X_OFF * X); get(G_LO); i32(0xfff); op(OP.i32And); op(OP.i32Add); set(G_OFF);
  get(G_OFF); i32(1); op(OP.i32ShrU); i32(JIT_LOOKUP_ENTRIES - 1); op(OP.i32And); i32(3); op(OP.i32Shl); tee(G_E);
  mem(OP.i32Load, 2, t.lookupOffset); get(G_OFF); i32(1); op(OP.i32Add); op(OP.i32Ne, OP.brIf, 0);
  // found: into the jump cache, then on
  get(G_E); mem(OP.i32Load, 2, t.lookupOffset + 4); set(G_E);
  get(G_J); get(G_LO); mem(OP.i32Store, 2, JC);
  get(G_J); get(G_HI); mem(OP.i32Store, 2, JC + 4);
  get(G_J); get(G_ST); mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JC_GEN); mem(OP.i32Store, 2, JC + 8);
  get(G_J); get(G_E); mem(OP.i32Store, 2, JC + 12);
  get(G_PC); op(OP.i64Const); w.s64(-4096); op(OP.i64And);
  get(G_ST); get(G_REM); get(G_TOKEN);
  get(G_E);
  op(OP.returnCallIndirect); w.u32(blockType); w.u32(0);
  op(OP.end);
  // no compiled block at pc: leave it for JavaScript
  get(G_ST); get(G_PC); op(OP.f64ConvertI64S); mem(OP.f64Store, 3, HL.HART_PC);
  get(G_REM);
  return w;
}

/** The dispatcher JavaScript calls, and `go` for the modules of blocks to import. */
export function buildDispatcher(memory: WebAssembly.Memory, table: WebAssembly.Table, t: LookupTables): { dispatch: DispatchFn; go: (...args: never[]) => number } {
  const w = new ByteWriter();
  const get = (l: number): void => { w.byte(OP.localGet); w.u32(l); };
  // go(trunc(pc), st, budget): function 1 of this module
  get(0); w.byte(OP.f64Load).u32(3).u32(HL.HART_PC); w.bytes([0xfc, 6]);
  get(0); get(1);
  w.bytes([0xfd, 12]); w.bytes(new Array<number>(16).fill(0)); // v128.const 0: the token (BLOCK_FN_TYPE)
  w.byte(OP.call).u32(1);
  const wasm = buildModule({
    params: [I32, I32], results: [I32],
    functions: [{ locals: [], body: w }, { locals: GO_LOCALS, body: emitGo(t, 1), type: 1 }],
    otherTypes: [BLOCK_FN_TYPE], importTable: true,
  }, memory.buffer.byteLength / 65536);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: memory, tbl: table } });
  return { dispatch: inst.exports["f0"] as DispatchFn, go: inst.exports["f1"] as (...args: never[]) => number };
}
