// Random starting points for the fast-path/slow-path equivalence test: guest RAM with random code,
// data and page tables (bare, Sv39 or Sv48; random R/W/X/U/A/D bits, unmapped pages, superpages,
// an MMIO page, a page with no device behind it), trap handlers that keep the program running,
// and a random privilege, mstatus (MPRV/SUM/MXR/FS), delegation, interrupt and register state.
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart, type HartState } from "../hart.js";
import { Asm } from "./asm.js";
import * as K from "../constants.js";
import { ALIGNED_POINTER_REGS, HANDLER_REG, LINK_REG, MSTATUS_MASK_REG, POINTER_REGS, SATP_REGS, randomCode } from "./random_insn.js";
import { makeRng, type Rng } from "./rng.js";

export const RAM_BASE = 0x8000_0000;
/** 2 MiB: exactly what one megapage at RAM_BASE maps. */
export const RAM_SIZE = 2 << 20;
/** A byte-addressable scratch MMIO device: loads and stores there always leave the fast path. */
export const SCRATCH_BASE = 0x1000_0000;
export const SCRATCH_SIZE = 0x1000;
/** Guest-physical page with no device: accesses raise access faults. */
export const NO_DEVICE_BASE = 0x2000_0000;

const PAGE = 4096;
// Physical RAM pages (index from RAM_BASE).
const M_HANDLER_PAGE = 0;
const S_HANDLER_PAGE = 1;
const CODE_PAGE0 = 2;
const CODE_PAGES = 8;
const PT_PAGE0 = 10;
const PT_PAGES = 30;
const DATA_PAGE0 = 40;
const DATA_PAGES = 64;
// The virtual window (pages from its base): code, data, MMIO, no device, S handler; unmapped after it.
const WIN_DATA = CODE_PAGES;
const WIN_DATA_PAGES = 24;
const WIN_MMIO = WIN_DATA + WIN_DATA_PAGES;
const WIN_NO_DEVICE = WIN_MMIO + 1;
const WIN_S_HANDLER = WIN_NO_DEVICE + 1;
const WIN_PAGES = WIN_S_HANDLER + 1;
const WIN_SPAN = BigInt(WIN_PAGES * PAGE);
// Superpages, placed where no window candidate can overlap them.
const MEGA_VA = 0x2020_0000n;
const GIGA_VA = 0x1_c000_0000n;

/** Window bases that put page and 32-bit boundaries (lo-word sign, hi-word carry, top of the canonical range) inside the window. */
const SV39_WINDOWS = [
  0x1000_0000n, 0x7fff_8000n, 0xffff_8000n, 0x40_0000_0000n - WIN_SPAN, 0xffff_ffc0_0000_0000n,
  0xffff_ffff_7fff_8000n, (1n << 64n) - WIN_SPAN,
];
const SV48_WINDOWS = [...SV39_WINDOWS, 0x8000_0000_0000n - WIN_SPAN, 0xffff_8000_0000_0000n, 0x7f_ffff_8000n];

const PTE_V = 1n, PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_U = 16n, PTE_G = 32n, PTE_A = 64n, PTE_D = 128n;

export interface Scenario {
  seed: number;
  /** One line: paging mode, privilege, window, mstatus bits: printed when a case fails. */
  summary: string;
  /** Initial guest RAM (RAM_SIZE bytes at RAM_BASE) and scratch device contents. */
  ram: Uint8Array;
  device: Uint8Array;
  state: HartState;
  /** The scratch device is served by the VMM through MMIO exits (else inside the vCPU, like the CLINT). */
  mmioExits: boolean;
  /** S-mode ecalls end run() with an SBI exit (Hart.sbiExits) instead of trapping. */
  sbiExits: boolean;
  /** run() budgets, in order: the comparison happens after each. */
  chunks: number[];
  /** Random TLB state: virtual addresses translated (filling the TLBs) before the first step... */
  tlbWarm: Array<{ lo: number; hi: number; access: number }>;
  /** ...then page-table words rewritten without sfence.vma, so some TLB entries are stale (RAM offset, int32 value). */
  staleWrites: Array<{ offset: number; value: number }>;
}

/** Writes at or above this offset of the scratch device drive an interrupt line with bit 0 of the value (MMIO raising an interrupt mid-slice). */
export const SCRATCH_IRQ_OFFSET = 0x800;

/** Scratch device: plain little-endian bytes; a write at SCRATCH_IRQ_OFFSET or above also sets `irqLine` to bit 0 of the value. */
export class ScratchDevice {
  readonly name = "scratch";
  readonly bytes = new Uint8Array(SCRATCH_SIZE);
  irqLine: (level: boolean) => void = () => {};
  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.bytes[offset + i]!;
    return v;
  }
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.bytes[offset + i] = (value >>> (8 * i)) & 0xff;
    if (offset >= SCRATCH_IRQ_OFFSET) this.irqLine((value & 1) !== 0);
  }
}

const pa = (page: number): number => RAM_BASE + page * PAGE;
const signed = (v: bigint): number => Number(BigInt.asIntN(64, v));

class PageTables {
  private next = PT_PAGE0;
  readonly root: number;
  constructor(private readonly view: DataView, private readonly levels: number) {
    this.root = this.alloc();
  }

  private alloc(): number {
    if (this.next >= PT_PAGE0 + PT_PAGES) throw new Error("random_scenario: page-table pool exhausted");
    return pa(this.next++);
  }

  /** Writes the leaf PTE for `va` at `level` (0 = 4 KiB), creating the tables above it. */
  map(va: bigint, level: number, pte: bigint): void {
    let table = this.root;
    for (let l = this.levels - 1; l > level; l--) {
      const off = table - RAM_BASE + Number((va >> BigInt(12 + 9 * l)) & 0x1ffn) * 8;
      let e = this.view.getBigUint64(off, true);
      if (e === 0n) {
        e = ((BigInt(this.alloc()) >> 12n) << 10n) | PTE_V;
        this.view.setBigUint64(off, e, true);
      } else if ((e & (PTE_R | PTE_W | PTE_X)) !== 0n) {
        throw new Error(`random_scenario: VA 0x${va.toString(16)} runs into a leaf at level ${l}`);
      }
      table = Number((e >> 10n) << 12n);
    }
    this.view.setBigUint64(table - RAM_BASE + Number((va >> BigInt(12 + 9 * level)) & 0x1ffn) * 8, pte, true);
  }
}

function interesting64(rng: Rng): bigint {
  switch (rng.below(8)) {
    case 0: return BigInt(rng.pick([0, 1, -1, 2, -2, 0x7fffffff, -0x80000000, 0x80000000, 0xffffffff, 0x100000000]));
    case 1: return rng.pick([(1n << 63n) - 1n, -(1n << 63n), -(1n << 63n) + 1n, 0xffff_ffff_0000_0000n, 0x8000_0000_0000_0000n]);
    case 2: return BigInt(rng.between(-20, 20));
    case 3: return BigInt(rng.u32() | 0); // sign-extended 32-bit
    case 4: return BigInt(rng.u32()); // zero-extended 32-bit
    default: return (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
  }
}

function pteFlags(rng: Rng, user: boolean): bigint {
  if (rng.chance(0.75)) return PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | (user ? PTE_U : 0n) | (rng.chance(0.2) ? PTE_X : 0n);
  let f = 0n;
  // Mostly usable pages (so programs run rather than fault), each permission sometimes missing.
  if (rng.chance(0.96)) f |= PTE_V;
  if (rng.chance(0.9)) f |= PTE_R;
  if (rng.chance(0.75)) f |= PTE_W;
  if (rng.chance(0.2)) f |= PTE_X;
  if (rng.chance(0.92) === user) f |= PTE_U;
  if (rng.chance(0.9)) f |= PTE_A;
  if (rng.chance(0.8)) f |= PTE_D;
  if (rng.chance(0.3)) f |= PTE_G;
  if (rng.chance(0.02)) f |= 1n << BigInt(rng.between(54, 63)); // reserved / Svpbmt / Svnapot bits: page fault
  return f;
}

const pte = (paddr: number, flags: bigint): bigint => ((BigInt(paddr) >> 12n) << 10n) | flags;

function mHandler(entry: bigint, mpp: number): Uint8Array {
  const t = HANDLER_REG;
  const a = new Asm(pa(M_HANDLER_PAGE));
  // Interrupts: disable them all (the pending bits stay) and resume. Fetch faults and running into
  // zeroed memory: restart at the entry in the starting privilege. Anything else: resume at the next 4-byte code slot.
  a.csrrs(t, K.CSR_MCAUSE, 0).blt(t, 0, "irq")
    .addi(t, t, -K.CAUSE_FETCH_PAGE_FAULT).beq(t, 0, "refetch")
    .addi(t, t, K.CAUSE_FETCH_PAGE_FAULT - K.CAUSE_FETCH_ACCESS).beq(t, 0, "refetch")
    .addi(t, t, K.CAUSE_FETCH_ACCESS - K.CAUSE_ILLEGAL_INSTRUCTION).bne(t, 0, "skip")
    .csrrs(t, K.CSR_MTVAL, 0).beq(t, 0, "refetch") // an all-zero halfword: ran off the code into empty memory
    .label("skip").csrrs(t, K.CSR_MEPC, 0).addi(t, t, 4).andi(t, t, -4).csrrw(0, K.CSR_MEPC, t).mret()
    .label("refetch").li(t, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, t).li(t, mpp << K.MSTATUS_MPP_SHIFT).csrrs(0, K.CSR_MSTATUS, t)
    .li(t, entry).csrrw(0, K.CSR_MEPC, t).mret()
    .label("irq").csrrw(0, K.CSR_MIE, 0).mret();
  return a.bytesOut();
}

function sHandler(origin: number, entry: bigint, spp: number): Uint8Array {
  const t = HANDLER_REG;
  const a = new Asm(origin);
  a.csrrs(t, K.CSR_SCAUSE, 0).blt(t, 0, "irq")
    .addi(t, t, -K.CAUSE_FETCH_PAGE_FAULT).beq(t, 0, "refetch")
    .addi(t, t, K.CAUSE_FETCH_PAGE_FAULT - K.CAUSE_FETCH_ACCESS).beq(t, 0, "refetch")
    .addi(t, t, K.CAUSE_FETCH_ACCESS - K.CAUSE_ILLEGAL_INSTRUCTION).bne(t, 0, "skip")
    .csrrs(t, K.CSR_STVAL, 0).beq(t, 0, "refetch") // an all-zero halfword: ran off the code into empty memory
    .label("skip").csrrs(t, K.CSR_SEPC, 0).addi(t, t, 4).andi(t, t, -4).csrrw(0, K.CSR_SEPC, t).sret()
    .label("refetch").li(t, K.MSTATUS_SPP).csrrc(0, K.CSR_SSTATUS, t).li(t, spp === K.PRV_S ? K.MSTATUS_SPP : 0).csrrs(0, K.CSR_SSTATUS, t)
    .li(t, entry).csrrw(0, K.CSR_SEPC, t).sret()
    .label("irq").csrrw(0, K.CSR_SIE, 0).sret();
  return a.bytesOut();
}

let template: { hart: Hart; blank: HartState } | null = null;

/** A hart used only to turn register and CSR choices into a HartState (through the hart's own WARL rules). */
function templateHart(): { hart: Hart; blank: HartState } {
  if (template === null) {
    const hart = new Hart({ hartId: 0, ram: new GuestRam(RAM_BASE, PAGE), vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 } });
    template = { hart, blank: hart.save() };
  }
  return template;
}

/** Builds the random case for `seed`; `budget` is the number of run() steps it asks for in total. */
export function buildScenario(seed: number, budget: number): Scenario {
  const rng = makeRng(seed);
  const mode = rng.weighted([25, 40, 35]); // bare, Sv39, Sv48
  const paged = mode !== 0;
  const startPriv = rng.pick([K.PRV_M, K.PRV_S, K.PRV_U]);
  const mprv = startPriv === K.PRV_M && rng.chance(0.5);
  const mpp = rng.pick([K.PRV_U, K.PRV_S, K.PRV_M]);
  const dataPriv = mprv ? mpp : startPriv;
  const fetchTranslated = paged && startPriv !== K.PRV_M;
  const dataTranslated = paged && dataPriv !== K.PRV_M;
  const userCode = startPriv === K.PRV_U;
  const userData = dataPriv === K.PRV_U;

  const ram = new Uint8Array(RAM_SIZE);
  const view = new DataView(ram.buffer);
  const window = paged ? rng.pick(mode === 1 ? SV39_WINDOWS : SV48_WINDOWS) : BigInt(pa(CODE_PAGE0));
  const wrap = (v: bigint): bigint => BigInt.asUintN(64, v);
  const winPage = (i: number): bigint => wrap(window + BigInt(i * PAGE));

  // Code: random instructions over all code pages, entered at a slot near the start.
  ram.set(randomCode(rng, CODE_PAGES * PAGE, PAGE), pa(CODE_PAGE0) - RAM_BASE);
  const entryOff = 4 * rng.below(128);
  const codeVa = paged ? window : BigInt(pa(CODE_PAGE0));
  const entry = (fetchTranslated ? codeVa : BigInt(pa(CODE_PAGE0))) + BigInt(entryOff);
  const sEntry = codeVa + BigInt(entryOff);

  // Data addresses, as the starting data privilege sees them (plus some that fault).
  const inPage = (): bigint => BigInt(rng.chance(0.6) ? 8 * rng.below(512) : rng.chance(0.4) ? PAGE - 8 * rng.between(1, 4) : rng.below(PAGE));
  const pointer = (): bigint => {
    const k = rng.weighted([85, 4, 2, 6, 2, 1, 1, 1]);
    switch (k) {
      case 0: return dataTranslated ? winPage(WIN_DATA + rng.below(WIN_DATA_PAGES)) + inPage() : BigInt(pa(DATA_PAGE0 + rng.below(DATA_PAGES))) + inPage();
      case 1: return (dataTranslated ? winPage(WIN_MMIO) : BigInt(SCRATCH_BASE)) + inPage();
      case 2: return (dataTranslated ? winPage(WIN_NO_DEVICE) : BigInt(NO_DEVICE_BASE)) + inPage();
      case 3: {
        if (!dataTranslated) return BigInt(pa(rng.below(RAM_SIZE / PAGE))) + inPage();
        return rng.chance(0.5) ? MEGA_VA + BigInt(rng.below(RAM_SIZE)) : GIGA_VA + BigInt(rng.below(RAM_SIZE + 2 * PAGE));
      }
      case 4: return (dataTranslated ? winPage(rng.below(CODE_PAGES)) : BigInt(pa(CODE_PAGE0 + rng.below(CODE_PAGES)))) + inPage();
      case 5: return dataTranslated ? winPage(WIN_PAGES + rng.below(4)) + inPage() : BigInt(RAM_BASE + RAM_SIZE) + inPage();
      case 6: return wrap(interesting64(rng));
      default: return dataTranslated ? BigInt(pa(DATA_PAGE0 + rng.below(DATA_PAGES))) + inPage() : winPage(WIN_DATA) + inPage();
    }
  };

  // Data pages: random bytes, some doublewords holding addresses (so loaded values make usable bases).
  const dataWords = new Uint32Array(ram.buffer, pa(DATA_PAGE0) - RAM_BASE, (DATA_PAGES * PAGE) / 4);
  for (let i = 0; i < dataWords.length; i++) dataWords[i] = rng.u32();
  for (let n = 0; n < DATA_PAGES * 16; n++) view.setBigUint64(pa(DATA_PAGE0) - RAM_BASE + 8 * rng.below((DATA_PAGES * PAGE) / 8), wrap(pointer()), true);
  const device = new Uint8Array(SCRATCH_SIZE);
  const deviceWords = new Uint32Array(device.buffer);
  for (let i = 0; i < deviceWords.length; i++) deviceWords[i] = rng.u32();

  // Page tables.
  let satp = 0n;
  let satps = [0n, 0n];
  const notes: string[] = [];
  if (paged) {
    const pt = new PageTables(view, mode === 1 ? 3 : 4);
    // Two address spaces over these tables: ASID = the root's page number's low 16 bits (so `sfence.vma x0, SATP_REGS[i]` names it), and another.
    const ppn = BigInt(pt.root >>> 12), asid = ppn & 0xffffn, other = (asid + 1n + BigInt(rng.below(0xfffe))) & 0xffffn;
    satps = [asid, other].map((a) => (BigInt(mode === 1 ? K.SATP_SV39 : K.SATP_SV48) << 60n) | (a << 44n) | ppn);
    satp = satps[rng.below(2)]!;
    const codeFlags = PTE_V | PTE_R | PTE_X | PTE_A | (userCode ? PTE_U : 0n);
    for (let i = 0; i < CODE_PAGES; i++) {
      // The entry page is always executable; others sometimes get random permissions (fetch faults, stores into code).
      const flags = i === entryOff >> 12 || rng.chance(0.8) ? codeFlags | (rng.chance(0.3) ? PTE_W | PTE_D : 0n) : pteFlags(rng, userCode);
      pt.map(winPage(i), 0, pte(pa(CODE_PAGE0 + i), flags));
    }
    for (let i = 0; i < WIN_DATA_PAGES; i++) {
      const target = rng.chance(0.9) ? DATA_PAGE0 + rng.below(DATA_PAGES) : rng.chance(0.5) ? CODE_PAGE0 + rng.below(CODE_PAGES) : PT_PAGE0 + rng.below(4);
      pt.map(winPage(WIN_DATA + i), 0, pte(pa(target), pteFlags(rng, userData)));
    }
    pt.map(winPage(WIN_MMIO), 0, pte(SCRATCH_BASE, pteFlags(rng, userData) | PTE_V));
    pt.map(winPage(WIN_NO_DEVICE), 0, pte(NO_DEVICE_BASE, pteFlags(rng, userData) | PTE_V));
    pt.map(winPage(WIN_S_HANDLER), 0, pte(pa(S_HANDLER_PAGE), PTE_V | PTE_R | PTE_X | PTE_A | PTE_G));
    // A megapage over all of RAM (sometimes misaligned: page fault) and a gigapage from RAM_BASE (its tail has no RAM).
    const megaTarget = rng.chance(0.85) ? RAM_BASE : RAM_BASE + PAGE;
    pt.map(MEGA_VA, 1, pte(megaTarget, pteFlags(rng, userData) | PTE_V));
    pt.map(GIGA_VA, 2, pte(RAM_BASE, pteFlags(rng, userData) | PTE_V));
    notes.push(`window 0x${window.toString(16)}`);
  }

  // Trap handlers: M at a physical address (M-mode fetches are never translated), S in the window when paged.
  const stvec = paged ? winPage(WIN_S_HANDLER) : BigInt(pa(S_HANDLER_PAGE));
  ram.set(mHandler(entry, startPriv), pa(M_HANDLER_PAGE) - RAM_BASE);
  ram.set(sHandler(signed(stvec), sEntry, startPriv === K.PRV_U ? K.PRV_U : K.PRV_S), pa(S_HANDLER_PAGE) - RAM_BASE);

  // Hart state, through the hart's own CSR write rules.
  const { hart, blank } = templateHart();
  hart.restore(blank);
  for (let r = 1; r < 32; r++) hart.setX(r, interesting64(rng));
  for (const r of POINTER_REGS) if (rng.chance(0.9)) hart.setX(r, pointer());
  // Sometimes x22 points into the device's interrupt half: stores there raise or drop SEIP in the middle of a slice.
  if (rng.chance(0.3)) hart.setX(22, (dataTranslated ? winPage(WIN_MMIO) : BigInt(SCRATCH_BASE)) + BigInt(SCRATCH_IRQ_OFFSET + 8 * rng.below(200)));
  for (const r of ALIGNED_POINTER_REGS) {
    if (!rng.chance(0.9)) continue;
    hart.setX(r, (dataTranslated ? winPage(WIN_DATA + rng.below(WIN_DATA_PAGES)) : BigInt(pa(DATA_PAGE0 + rng.below(DATA_PAGES)))) + BigInt(8 * rng.below(512)));
  }
  for (let i = 0; i < SATP_REGS.length; i++) hart.setX(SATP_REGS[i]!, satps[i]!);
  hart.setX(LINK_REG, entry + BigInt(4 * rng.below(CODE_PAGES * PAGE / 4)) - BigInt(entryOff));
  const toggles = [K.MSTATUS_SUM, K.MSTATUS_MXR, K.MSTATUS_MPRV, K.MSTATUS_FS, 1 << K.MSTATUS_FS_SHIFT];
  hart.setX(MSTATUS_MASK_REG, BigInt(toggles.filter(() => rng.chance(0.4)).reduce((m, b) => m | b, 0)));
  for (let i = 0; i < 64; i += 2) {
    hart.f[i] = rng.u32() | 0;
    hart.f[i + 1] = rng.chance(0.3) ? -1 : rng.u32() | 0;
  }
  hart.fp.frm = rng.chance(0.85) ? rng.below(5) : rng.below(8);
  hart.fp.fflags = rng.below(32);

  let mstatus = (rng.weighted([10, 20, 30, 40]) << K.MSTATUS_FS_SHIFT) | (mpp << K.MSTATUS_MPP_SHIFT);
  if (rng.chance(0.5)) mstatus |= K.MSTATUS_SUM;
  if (rng.chance(0.3)) mstatus |= K.MSTATUS_MXR;
  if (mprv) mstatus |= K.MSTATUS_MPRV;
  for (const bit of [K.MSTATUS_SIE, K.MSTATUS_MIE, K.MSTATUS_SPIE, K.MSTATUS_MPIE, K.MSTATUS_SPP]) if (rng.chance(0.5)) mstatus |= bit;
  hart.writeCsr(K.CSR_MSTATUS, BigInt(mstatus));
  const openSbi = 0xb1ff; // everything but ecalls from S and M (what OpenSBI delegates, plus illegal instruction)
  hart.writeCsr(K.CSR_MEDELEG, BigInt(rng.pick([openSbi, openSbi, rng.u32() & K.MEDELEG_WRITABLE, 0])));
  hart.writeCsr(K.CSR_MIDELEG, BigInt(rng.u32() & K.S_INTERRUPTS));
  hart.writeCsr(K.CSR_MCOUNTEREN, BigInt(rng.pick([0, 7, 0xffffffff, rng.u32()])));
  hart.writeCsr(K.CSR_SCOUNTEREN, BigInt(rng.pick([0, 7, 0xffffffff, rng.u32()])));
  hart.writeCsr(K.CSR_MTVEC, BigInt(pa(M_HANDLER_PAGE)));
  hart.writeCsr(K.CSR_STVEC, stvec);
  hart.writeCsr(K.CSR_MSCRATCH, interesting64(rng));
  hart.writeCsr(K.CSR_SSCRATCH, interesting64(rng));
  hart.writeCsr(K.CSR_MEPC, entry + BigInt(2 * rng.below(256)));
  hart.writeCsr(K.CSR_SEPC, sEntry + BigInt(2 * rng.below(256)));
  hart.writeCsr(K.CSR_MINSTRET, BigInt(rng.below(1 << 30)));
  hart.writeCsr(K.CSR_SATP, satp);
  // Enabled interrupts in half the cases (the scratch device can raise SEIP mid-slice), pending ones in some.
  if (rng.chance(0.5)) hart.writeCsr(K.CSR_MIE, BigInt((rng.u32() & K.ALL_INTERRUPTS) | (rng.chance(0.7) ? K.MIP_SEIP : 0)));
  const interrupts = rng.chance(0.15);
  if (interrupts) hart.writeCsr(K.CSR_MIP, BigInt(rng.u32() & K.S_INTERRUPTS));
  hart.privilege = startPriv as 0 | 1 | 3;
  hart.setPc(signed(entry));
  const state = hart.save();

  const mmioExits = rng.chance(0.5);
  const sbiExits = rng.chance(0.3);
  const chunks: number[] = [];
  for (let left = budget; left > 0;) {
    const k = rng.weighted([2, 4, 4]);
    const n = Math.min(left, k === 0 ? rng.between(1, 8) : k === 1 ? rng.between(9, 64) : rng.between(65, 512));
    chunks.push(n);
    left -= n;
  }
  // Random TLB state (the rig applies it after restore()): warm entries for code and data pages,
  // then flip permission bits of some leaf PTEs behind the TLB's back.
  const tlbWarm: Scenario["tlbWarm"] = [];
  const warm = rng.chance(0.25) ? 0 : rng.between(1, 64);
  for (let i = 0; i < warm; i++) {
    const access = rng.below(3); // ACCESS_READ, ACCESS_WRITE, ACCESS_FETCH
    const va = access === 2 ? entry + BigInt(PAGE * rng.below(CODE_PAGES)) - BigInt(entryOff) : pointer();
    tlbWarm.push({ lo: Number(BigInt.asIntN(32, va)), hi: Number(BigInt.asIntN(32, va >> 32n)), access });
  }
  const staleWrites: Scenario["staleWrites"] = [];
  if (paged && warm > 0 && rng.chance(0.5)) {
    const ptBase = pa(PT_PAGE0) - RAM_BASE;
    for (let n = 0; n < 8; n++) {
      const off = ptBase + 8 * rng.below((PT_PAGES * PAGE) / 8);
      const lo = view.getInt32(off, true);
      if ((lo & 0xf) <= 1) continue; // not a leaf
      staleWrites.push({ offset: off, value: lo ^ (2 * rng.between(1, 127)) });
    }
  }
  const privName = ["U", "S", "?", "M"][startPriv];
  const summary = [
    paged ? (mode === 1 ? "Sv39" : "Sv48") : "bare", `start ${privName}-mode at 0x${BigInt.asUintN(64, entry).toString(16)}`,
    ...notes, `mstatus 0x${hart.mstatus.toString(16)}`, mprv ? `MPRV with MPP=${["U", "S", "?", "M"][mpp]}` : "",
    interrupts ? "interrupts pending" : "", mmioExits ? "MMIO exits" : "MMIO in the vCPU", sbiExits ? "SBI exits" : "",
    tlbWarm.length > 0 ? `${tlbWarm.length} TLB fills` : "", staleWrites.length > 0 ? `${staleWrites.length} stale PTEs` : "",
  ].filter((s) => s !== "").join(", ");
  return { seed, summary, ram, device, state, chunks, mmioExits, sbiExits, tlbWarm, staleWrites };
}
