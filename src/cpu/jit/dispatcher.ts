// The JIT's dispatcher, itself wasm: finds the compiled block for the hart's pc (fetch TLB, the
// page's gate in the per-page table, then the direct-mapped block lookup by RAM offset) and calls
// it through the function table, again and again, so control moves from block to block without
// returning to JavaScript. It returns when the budget is spent or it cannot go on in compiled
// code: a fetch-TLB miss, a page without code (or one a device wrote), a block the lookup does not
// hold, or a block's status other than JIT_GO_ON. JavaScript then sorts out which (exec_jit.ts).
import * as HL from "../hart_layout.js";
import { JIT_LOOKUP_ENTRIES } from "../../seams/guest_ram.js";
import { ByteWriter, I32, I64, OP, VOID, buildModule } from "./wasm_module.js";
import { BLOCK_FN_TYPE } from "./compile_block.js";

/** (st, ds, xs, limit) -> instructions retired: state block, data TLB set, fetch TLB set, budget. */
export type DispatchFn = (st: number, ds: number, xs: number, limit: number) => number;

const P_ST = 0, P_DS = 1, P_XS = 2, P_LIMIT = 3;
const L_N = 4, L_PCI = 5, L_LO = 6, L_P = 7, L_OFF = 8, L_E = 9;

export function buildDispatcher(memory: WebAssembly.Memory, table: WebAssembly.Table, slotsOffset: number, lookupOffset: number): DispatchFn {
  const w = new ByteWriter();
  const op = (...b: number[]): void => { w.bytes(b); };
  const get = (l: number): void => { op(OP.localGet); w.u32(l); };
  const set = (l: number): void => { op(OP.localSet); w.u32(l); };
  const tee = (l: number): void => { op(OP.localTee); w.u32(l); };
  const i32 = (v: number): void => { op(OP.i32Const); w.s32(v); };
  const mem = (o: number, align: number, offset: number): void => { op(o); w.u32(align); w.u32(offset); };
  const leave = (): void => { op(OP.if, VOID); get(L_N); op(OP.return, OP.end); };
  const X = HL.TLB_ARRAY_BYTES;
  op(OP.loop, VOID);
  // pc through the fetch TLB
  get(P_ST); mem(OP.f64Load, 3, HL.HART_PC); op(0xfc, 6); tee(L_PCI); op(OP.i32WrapI64); tee(L_LO);
  i32(12); op(OP.i32ShrU); i32(2047); op(OP.i32And); i32(2); op(OP.i32Shl); get(P_XS); op(OP.i32Add); tee(L_P);
  mem(OP.i32Load, 2, HL.TLB_X_TAG_LO * X); get(L_LO); i32(-4096); op(OP.i32And); op(OP.i32Ne);
  get(L_P); mem(OP.i32Load, 2, HL.TLB_X_TAG_HI * X); get(L_PCI); op(OP.i64Const); w.s64(32); op(OP.i64ShrU); op(OP.i32WrapI64); op(OP.i32Ne);
  op(OP.i32Or); leave();
  get(L_P); mem(OP.i32Load, 2, HL.TLB_X_OFF * X); get(L_LO); i32(0xfff); op(OP.i32And); op(OP.i32Add); tee(L_OFF);
  // the page's gate: 0 while it has no code or a device wrote it
  i32(12); op(OP.i32ShrU); i32(2); op(OP.i32Shl); mem(OP.i32Load, 2, slotsOffset); op(OP.i32Eqz); leave();
  // the block lookup: entry (RAM offset + 1, table slot)
  get(L_OFF); i32(1); op(OP.i32ShrU); i32(JIT_LOOKUP_ENTRIES - 1); op(OP.i32And); i32(3); op(OP.i32Shl); tee(L_E);
  mem(OP.i32Load, 2, lookupOffset); get(L_OFF); i32(1); op(OP.i32Add); op(OP.i32Ne); leave();
  get(L_PCI); op(OP.i64Const); w.s64(-4096); op(OP.i64And); get(P_ST); get(P_DS); get(P_LIMIT); get(L_N);
  get(L_E); mem(OP.i32Load, 2, lookupOffset + 4);
  op(OP.callIndirect); w.u32(1); w.u32(0);
  set(L_N);
  get(P_ST); mem(OP.i32Load, 2, HL.HART_JIT_STATUS); leave();
  get(L_N); get(P_LIMIT); op(OP.i32LtU); op(OP.brIf); w.u32(0);
  op(OP.end);
  get(L_N);
  const wasm = buildModule({
    params: [I32, I32, I32, I32], results: [I32], functions: [{ locals: [I32, I64, I32, I32, I32, I32], body: w }],
    otherTypes: [BLOCK_FN_TYPE], importTable: true,
  }, memory.buffer.byteLength / 65536);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: memory, tbl: table } });
  return inst.exports["f0"] as DispatchFn;
}
