// The emitter a block function is written with (compile_block.ts emits the instructions): the
// function's parameters and fixed locals, the guest registers it holds in locals, the translations
// it may reuse (anchors), its loops and forward branches, and how it leaves (a hand-back, a jump).
import * as HL from "../hart_layout.js";
import { ByteWriter, I32, I64, OP, VOID } from "./wasm_module.js";

// Parameters and locals of a block function; the guest registers' locals follow (Emitter.reg).
// P_TOKEN, a v128 every block passes on unread, makes the signature one JavaScript cannot call: V8 then
// compiles no JS wrapper for a module's imported blocks (dispatcher.ts, BLOCK_FN_TYPE).
export const P_VPAGE = 0, P_ST = 1, P_REM = 2, P_TOKEN = 3;
export const L_ADDR = 4, L_LO = 5, L_P = 6, L_OFF = 7, L_A = 8, L_B = 9, L_T = 10, L_C = 11, L_HB = 12, L_DS = 13;
/** Translations later accesses of a block may reuse (emitAccess), each in two i32 locals from L_ANCHOR: the address's low word and its RAM offset. */
const ANCHORS = 4;
export const L_ANCHOR = 14;
export const FIXED_LOCALS = [I64, I32, I32, I32, I64, I64, I64, I64, I32, I32, ...new Array<typeof I32>(2 * ANCHORS).fill(I32)];
const L_FIRST_REG = L_ANCHOR + 2 * ANCHORS;

/** Emits the block functions of one module. */
export class Emitter {
  w = new ByteWriter();
  /** Page offset -> function index of the blocks in this module. */
  fnIndex = new Map<number, number>();
  /** Function index of `go` (dispatcher.ts) in the module. */
  goIndex = 0;
  /** Function index of the module's read translate (emitTranslateFn); the write one follows it. */
  translateIndex = 0;
  /** Whether a block called the translate functions (emitModule then adds them). */
  usedTranslate = false;
  /** FENCE orders this thread against others (harts on several threads): emitted as `atomic.fence`. */
  hostFences = false;

  op(a: number, b?: number): this { this.w.byte(a); if (b !== undefined) this.w.byte(b); return this; }
  get(l: number): this { return this.op(OP.localGet).u(l); }
  set(l: number): this { return this.op(OP.localSet).u(l); }
  tee(l: number): this { return this.op(OP.localTee).u(l); }
  u(v: number): this { this.w.u32(v); return this; }
  i32(v: number): this { this.op(OP.i32Const); this.w.s32(v); return this; }
  i64(v: bigint | number): this { this.op(OP.i64Const); this.w.s64(v); return this; }
  /** A memory access with alignment log2 `align` and constant offset. */
  mem(opcode: number, align: number, offset: number): this { return this.op(opcode).u(align).u(offset); }
  /** Constructs open between the code being emitted and the block function's hand-back label. */
  depth = 0;
  if_(): this { this.depth++; return this.op(OP.if, VOID); }
  end_(): this { this.depth--; return this.op(OP.end); }
  /** Open constructs whose code runs only sometimes: a register first read there is not cached (the local would not be set on every path). */
  cond = 0;
  /** Guest register -> its local in the current block function (0: not read or written yet). */
  private regLocal = new Int32Array(32);
  /** Whether guest register r's local holds its value here (on every path that reaches this point). */
  private regValid = new Uint8Array(32);
  /**
   * Whether guest register r's local holds a value its slot in the state block does not yet: written
   * back at the next flush (before any instruction but pure arithmetic, at joins and loop heads) and
   * at every exit, so that a run of arithmetic stores each register it writes once, not at each write.
   */
  private dirty = new Uint8Array(32);
  /** Register locals in use by the current block function. */
  regLocals = 0;
  /** Whether the current block function has loaded its data TLB set into L_DS. */
  private haveDs = false;
  /** Page offset of a loop head open in the current block function -> its instruction index and the depth just inside its `loop`. */
  readonly loopHeads = new Map<number, { index: number; depth: number }>();
  /** Per anchor (emitAccess): its base register (-1: free), immediate, size and direction (1: write). */
  readonly anchorBase = new Int32Array(ANCHORS);
  readonly anchorImm = new Int32Array(ANCHORS);
  readonly anchorSize = new Int32Array(ANCHORS);
  readonly anchorWrite = new Uint8Array(ANCHORS);
  private nextAnchor = 0;
  /** Instruction index a forward branch goes to -> the depth just inside its wasm `block` (emitBlock). */
  readonly forwardDepth = new Map<number, number>();
  /** Instruction index a forward branch goes to -> what the locals hold on each branch taken there (joinAt). */
  private readonly forwardStates = new Map<number, LocalState[]>();

  /** Starts a block function: no register or TLB set is in a local yet. */
  startFunction(): void {
    this.regLocal.fill(0);
    this.regValid.fill(0);
    this.dirty.fill(0);
    this.forwardDepth.clear();
    this.forwardStates.clear();
    this.regLocals = 0;
    this.haveDs = false;
    this.anchorBase.fill(-1);
    this.nextAnchor = 0;
    this.loopHeads.clear();
    this.depth = 0;
    this.cond = 0;
  }

  /** Records what the locals hold on a branch taken to instruction `target`. */
  branchState(target: number): void {
    let list = this.forwardStates.get(target);
    if (list === undefined) this.forwardStates.set(target, list = []);
    list.push({ regs: this.regValid.slice(), ds: this.haveDs, base: this.anchorBase.slice(), imm: this.anchorImm.slice(), size: this.anchorSize.slice(), write: this.anchorWrite.slice() });
  }

  /**
   * Where forward branches to instruction `target` join the fall-through path: a local counts as
   * holding its register, the TLB set or a translation only if it does on every path (a path
   * that skipped the instruction that first read it never set it).
   */
  joinAt(target: number): void {
    for (const b of this.forwardStates.get(target) ?? []) {
      for (let r = 0; r < 32; r++) this.regValid[r]! &= b.regs[r]!;
      this.haveDs &&= b.ds;
      for (let a = 0; a < ANCHORS; a++) {
        if (b.base[a] !== this.anchorBase[a] || b.imm[a] !== this.anchorImm[a] || b.size[a] !== this.anchorSize[a] || b.write[a] !== this.anchorWrite[a]) this.anchorBase[a] = -1;
      }
    }
  }

  /** Pushes the data TLB set's offset (read once per block function, at its first memory access). */
  ds(): this {
    if (this.haveDs) return this.get(L_DS);
    if (this.cond === 0) this.haveDs = true;
    this.get(P_ST).mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JIT_DS);
    return this.cond === 0 ? this.tee(L_DS) : this;
  }

  /** The anchor an access from `base` in this direction may reuse, or -1. */
  anchorFor(base: number, write: boolean): number {
    for (let a = 0; a < ANCHORS; a++) if (this.anchorBase[a] === base && this.anchorWrite[a] === (write ? 1 : 0)) return a;
    return -1;
  }

  /** Forgets every anchor: code from here on may run again after a register moved (a loop head). */
  dropAnchors(): void {
    this.anchorBase.fill(-1);
  }

  /** Takes an anchor (the oldest when all are taken) for an access from `base` about to be translated. */
  newAnchor(base: number, imm: number, size: number, write: boolean): number {
    const a = this.nextAnchor;
    this.nextAnchor = (a + 1) % ANCHORS;
    this.anchorBase[a] = base;
    this.anchorImm[a] = imm;
    this.anchorSize[a] = size;
    this.anchorWrite[a] = write ? 1 : 0;
    return a;
  }

  private localOf(r: number): number {
    let l = this.regLocal[r]!;
    if (l === 0) l = this.regLocal[r] = L_FIRST_REG + this.regLocals++;
    return l;
  }

  /**
   * Hands the instruction at page offset `po` to the interpreter after `retired` more: one shared
   * exit per block function (emitBlock), an i32 label each load and store reaches with one constant,
   * `po | retired << 12` (setting two locals made side exits a fifth of a block's bytes).
   */
  handBack(po: number, retired: number): this {
    this.storeDirty();
    return this.i32(po | (retired << 12)).op(OP.br).u(this.depth);
  }

  /** Pushes guest register r: from its local after the first use in the block function. */
  reg(r: number): this {
    if (r === 0) return this.i64(0);
    if (this.regValid[r] !== 0) return this.get(this.regLocal[r]!);
    this.get(P_ST).mem(OP.i64Load, 3, HL.HART_X + 8 * r);
    if (this.cond !== 0) return this;
    this.regValid[r] = 1;
    return this.tee(this.localOf(r));
  }

  /** Puts the i64 on the stack into rd's local; the state block gets it at the next flush or exit (dirty). */
  setReg(rd: number): this {
    if (rd === 0) return this.op(OP.drop);
    if (this.cond !== 0) throw new Error("compile_block: a register write inside a conditional construct would leave its local stale");
    for (let a = 0; a < ANCHORS; a++) if (this.anchorBase[a] === rd) this.anchorBase[a] = -1; // its address moved
    this.regValid[rd] = 1;
    this.dirty[rd] = 1;
    return this.set(this.localOf(rd));
  }

  /** Stores the dirty registers into the state block, where this point's code needs them all there (flush), or on an exit's path (they stay dirty for the code after it). */
  private storeDirty(): void {
    for (let r = 1; r < 32; r++) if (this.dirty[r] !== 0) this.get(P_ST).get(this.regLocal[r]!).mem(OP.i64Store, 3, HL.HART_X + 8 * r);
  }

  /** Writes the dirty registers back: before an instruction that may leave, trap or branch, a join and a loop head. */
  flush(): this {
    this.storeDirty();
    this.dirty.fill(0);
    return this;
  }

  /** Pushes the budget left after `retired` more instructions. */
  remAfter(k: number): this {
    this.get(P_REM);
    return k !== 0 ? this.i32(k).op(OP.i32Sub) : this;
  }

  /** Goes on at page offset `po` after `retired` more instructions: a tail call when that block is in this module, else through `go`. */
  jumpTo(po: number, retired: number): this {
    this.storeDirty();
    const head = this.loopHeads.get(po);
    if (head !== undefined) { // back to a loop head of this block: the budget restarts from the block's start as if entered there
      this.get(P_REM).i32(retired - head.index).op(OP.i32Sub).set(P_REM);
      return this.op(OP.br).u(this.depth - head.depth);
    }
    const fn = this.fnIndex.get(po);
    if (fn === undefined) return this.goTo(() => this.pcI64(po, 0), retired);
    this.get(P_VPAGE).get(P_ST).remAfter(retired).get(P_TOKEN);
    return this.op(OP.returnCall).u(fn);
  }

  /** Tail-calls `go` for the pc `pushPc` pushes (i64), after `retired` more instructions. */
  goTo(pushPc: () => void, retired: number): this {
    this.storeDirty();
    pushPc();
    this.get(P_ST).remAfter(retired).get(P_TOKEN);
    return this.op(OP.returnCall).u(this.goIndex);
  }

  /** pc of the instruction `delta` bytes into a block starting at `start`, as i64. */
  pcI64(start: number, delta: number): this {
    const d = start + delta;
    return d === 0 ? this.get(P_VPAGE) : this.get(P_VPAGE).i64(d).op(OP.i64Add);
  }
}

/** What a block function's locals hold at one point: registers, the data TLB set, the anchors. */
interface LocalState {
  regs: Uint8Array;
  ds: boolean;
  base: Int32Array;
  imm: Int32Array;
  size: Int32Array;
  write: Uint8Array;
}
