// The JIT's dispatcher, itself wasm: looks up the page function for the hart's pc (fetch TLB, then
// the per-page slot table) and calls it through the function table, again and again, so control
// moves from compiled page to compiled page without returning to JavaScript. It returns when the
// budget is spent or the interpreter is needed (no compiled code at pc, a fetch-TLB miss, or a
// page function's status 1).
import * as HL from "../hart_layout.js";
import { ByteWriter, I32, F64, I64, OP, VOID, buildModule } from "./wasm_module.js";
import { PAGE_FN_TYPE } from "./compile_block.js";

/** (st, ds, xs, limit) -> instructions retired: state block, data TLB set, fetch TLB set, budget. */
export type DispatchFn = (st: number, ds: number, xs: number, limit: number) => number;

const P_ST = 0, P_DS = 1, P_XS = 2, P_LIMIT = 3;
const L_N = 4, L_PC = 5, L_PCI = 6, L_LO = 7, L_P = 8, L_SLOT = 9;

export function buildDispatcher(memory: WebAssembly.Memory, table: WebAssembly.Table, slotsOffset: number): DispatchFn {
  const w = new ByteWriter();
  const op = (...b: number[]): void => { w.bytes(b); };
  const get = (l: number): void => { op(OP.localGet); w.u32(l); };
  const set = (l: number): void => { op(OP.localSet); w.u32(l); };
  const tee = (l: number): void => { op(OP.localTee); w.u32(l); };
  const i32 = (v: number): void => { op(OP.i32Const); w.s32(v); };
  const mem = (o: number, align: number, offset: number): void => { op(o); w.u32(align); w.u32(offset); };
  const X = HL.TLB_ARRAY_BYTES;
  op(OP.loop, VOID);
  get(P_ST); mem(OP.f64Load, 3, HL.HART_PC); tee(L_PC); op(0xfc, 6); tee(L_PCI); op(OP.i32WrapI64); tee(L_LO);
  i32(12); op(OP.i32ShrU); i32(2047); op(OP.i32And); i32(2); op(OP.i32Shl); get(P_XS); op(OP.i32Add); tee(L_P);
  mem(OP.i32Load, 2, HL.TLB_X_TAG_LO * X); get(L_LO); i32(-4096); op(OP.i32And); op(OP.i32Ne);
  get(L_P); mem(OP.i32Load, 2, HL.TLB_X_TAG_HI * X); get(L_PCI); op(OP.i64Const); w.s64(32n); op(OP.i64ShrU); op(OP.i32WrapI64); op(OP.i32Ne);
  op(OP.i32Or, OP.if, VOID); get(L_N); op(OP.return, OP.end);
  get(L_P); mem(OP.i32Load, 2, HL.TLB_X_OFF * X); get(L_LO); i32(0xfff); op(OP.i32And); op(OP.i32Add);
  i32(12); op(OP.i32ShrU); i32(2); op(OP.i32Shl); mem(OP.i32Load, 2, slotsOffset); tee(L_SLOT);
  op(OP.i32Eqz, OP.if, VOID); get(L_N); op(OP.return, OP.end);
  get(L_PC); get(P_ST); get(P_DS); get(P_LIMIT); get(L_N); op(OP.i32Sub); get(L_SLOT);
  op(OP.callIndirect); w.u32(1); w.u32(0);
  get(L_N); op(OP.i32Add); set(L_N);
  get(P_ST); mem(OP.i32Load, 2, HL.HART_JIT_STATUS); op(OP.if, VOID); get(L_N); op(OP.return, OP.end);
  get(L_N); get(P_LIMIT); op(OP.i32LtU); op(OP.brIf); w.u32(0);
  op(OP.end);
  get(L_N);
  const wasm = buildModule({
    params: [I32, I32, I32, I32], results: [I32], locals: [I32, F64, I64, I32, I32, I32], body: w,
    otherTypes: [PAGE_FN_TYPE], importTable: true,
  }, memory.buffer.byteLength / 65536);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: memory, tbl: table } });
  return inst.exports["fn"] as DispatchFn;
}
