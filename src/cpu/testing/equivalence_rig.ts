// Two harts on identical machines, one running execFast + execSlow as in production and one with
// execFast switched off, driven through the same run() budgets and compared after each; on a
// difference it replays the case to find the first step that differs and explains it.
import { Bus } from "../../machine/bus.js";
import { GuestRam } from "../../seams/guest_ram.js";
import { Hart, type HartState } from "../hart.js";
import { BlockCache } from "../jit/block_cache.js";
import { ACCESS_FETCH, walk } from "../mmu.js";
import { C64_COUNT } from "../csr.js";
import { EXIT_MMIO, EXIT_SBI } from "../exit.js";
import * as K from "../constants.js";
import { describeInsn } from "./describe_insn.js";
import { NO_DEVICE_BASE, RAM_BASE, RAM_SIZE, SCRATCH_BASE, SCRATCH_SIZE, ScratchDevice, buildScenario, type Scenario } from "./random_scenario.js";
import { makeRng } from "./rng.js";

interface Side {
  /** A fresh hart per case (restore() alone would keep a completed MMIO exit's pending replay). */
  hart: Hart;
  /** A new hart on this side's RAM and devices. */
  newHart(): Hart;
  ram: GuestRam;
  /** The board's bus: the scratch device is on it, served in the vCPU or through MMIO exits. */
  bus: Bus;
  device: ScratchDevice;
}

const C64_NAMES = ["mtvec", "stvec", "mepc", "sepc", "mscratch", "sscratch", "mtval", "stval", "mcause", "scause", "satp"];
if (C64_NAMES.length !== C64_COUNT) throw new Error("equivalence_rig: C64_NAMES is out of step with csr.ts C64_* slots");
const PRIV_NAMES = ["U", "S", "?", "M"];
const hex64 = (lo: number, hi: number): string => "0x" + ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16).padStart(16, "0");
const pcHex = (pc: number): string => "0x" + BigInt.asUintN(64, BigInt(pc)).toString(16);

/** How a side executes: the production interpreter (execFast + execSlow), execSlow alone, or the JIT tier compiling every block on first sight. */
export type SideKind = "fast" | "slow" | "jit";

function makeSide(kind: SideKind, mmioExits: boolean): Side {
  const ram = new GuestRam(RAM_BASE, RAM_SIZE);
  const bus = new Bus();
  const device = new ScratchDevice();
  bus.map(SCRATCH_BASE, SCRATCH_SIZE, device);
  void NO_DEVICE_BASE; // deliberately unmapped
  const vcpuDevices = mmioExits ? new Bus() : bus;
  const newHart = (): Hart => {
    const hart = new Hart({ hartId: 0, ram, vcpuDevices, time: { frequency: 10_000_000, now: () => 1_000_000 }, stateBlock: kind === "jit" });
    hart.slowPathOnly = kind === "slow";
    if (kind === "jit") {
      ram.codePages.fill(0); // a new case: no code compiled yet
      hart.useJit(new BlockCache(ram, { threshold: 1 }));
    }
    return hart;
  };
  const side: Side = { hart: newHart(), newHart, ram, bus, device };
  device.irqLine = (level) => side.hart.setInterruptPending(K.IRQ_S_EXT, level);
  return side;
}

/** Completes the exit run() ended with, as the VMM's vCPU loop does (MMIO on the bus; SBI answered "not supported"). */
function completeExit(side: Side): void {
  const h = side.hart, e = h.exit, bus = side.bus;
  if (e.reason === EXIT_MMIO) {
    if (e.mmioWrite) {
      bus.write(e.mmioAddr, e.mmioSize, e.mmioValueLo, e.mmioValueHi);
      h.completeMmio(0, 0, bus.fault);
    } else {
      const lo = bus.read(e.mmioAddr, e.mmioSize);
      h.completeMmio(lo, e.mmioSize === 8 ? bus.readHigh : 0, bus.fault);
    }
  } else if (e.reason === EXIT_SBI) {
    h.setX(10, -2n); // SBI_ERR_NOT_SUPPORTED
    h.setX(11, 0n);
    h.completeSbi();
  }
}

/** Puts the scenario's TLB state into a freshly restored hart: fills, then page-table writes that leave some entries stale. */
function warmTlb(side: Side, s: Scenario): void {
  const h = side.hart;
  for (const w of s.tlbWarm) {
    h["translate"](w.lo, w.hi, w.access); // a fault only raises: dropped below
    h["excPending"] = false;
  }
  const i32 = side.ram.i32;
  for (const w of s.staleWrites) i32[w.offset >>> 2] = w.value;
}

/** Differences between two saved hart states, one line each (register and CSR names spelled out). */
function stateDifferences(a: HartState, b: HartState): string[] {
  const out: string[] = [];
  for (let r = 0; r < 32; r++) {
    if (a.x[2 * r] !== b.x[2 * r] || a.x[2 * r + 1] !== b.x[2 * r + 1]) {
      out.push(`x${r}: fast ${hex64(a.x[2 * r]!, a.x[2 * r + 1]!)}, slow ${hex64(b.x[2 * r]!, b.x[2 * r + 1]!)}`);
    }
    if (a.f[2 * r] !== b.f[2 * r] || a.f[2 * r + 1] !== b.f[2 * r + 1]) {
      out.push(`f${r}: fast ${hex64(a.f[2 * r]!, a.f[2 * r + 1]!)}, slow ${hex64(b.f[2 * r]!, b.f[2 * r + 1]!)}`);
    }
  }
  for (let i = 0; i < C64_COUNT; i++) {
    if (a.csr64[2 * i] !== b.csr64[2 * i] || a.csr64[2 * i + 1] !== b.csr64[2 * i + 1]) {
      out.push(`${C64_NAMES[i]}: fast ${hex64(a.csr64[2 * i]!, a.csr64[2 * i + 1]!)}, slow ${hex64(b.csr64[2 * i]!, b.csr64[2 * i + 1]!)}`);
    }
  }
  const scalar = (name: string, x: unknown, y: unknown, fmt = (v: unknown): string => String(v)): void => {
    if (x !== y) out.push(`${name}: fast ${fmt(x)}, slow ${fmt(y)}`);
  };
  const h = (v: unknown): string => (typeof v === "number" ? "0x" + (v >>> 0).toString(16) : String(v));
  scalar("pc", a.pc, b.pc, (v) => pcHex(v as number));
  scalar("privilege", a.privilege, b.privilege, (v) => PRIV_NAMES[v as number] ?? String(v));
  scalar("mstatus", a.mstatus, b.mstatus, h);
  scalar("instret", a.instret, b.instret);
  scalar("fflags", a.fflags, b.fflags, h);
  scalar("frm", a.frm, b.frm);
  scalar("mie", a.mie, b.mie, h);
  scalar("mip (software)", a.mipSoftware, b.mipSoftware, h);
  scalar("mip (devices)", a.mipDevice, b.mipDevice, h);
  scalar("waiting (WFI)", a.waiting, b.waiting);
  scalar("mcountinhibit", a.mcountinhibit, b.mcountinhibit, h);
  scalar("counter offsets (mcycle, -, minstret)", String(a.counterDelta), String(b.counterDelta));
  scalar("frozen counters (mcycle, -, minstret)", String(a.counterFrozen), String(b.counterFrozen));
  scalar("LR reservation valid", a.reservationValid, b.reservationValid);
  if (a.reservationValid && b.reservationValid) {
    scalar("LR reservation address", a.reservationAddr, b.reservationAddr, h);
    scalar("LR reservation size", a.reservationSize, b.reservationSize);
  }
  return out;
}

function bytesDifferences(what: string, base: number, a: Uint8Array, b: Uint8Array): string[] {
  if (Buffer.compare(a, b) === 0) return [];
  const out: string[] = [];
  for (let i = 0; i < a.length && out.length < 8; i++) {
    if (a[i] !== b[i]) out.push(`${what} byte at 0x${(base + i).toString(16)}: fast 0x${a[i]!.toString(16)}, slow 0x${b[i]!.toString(16)}`);
  }
  return out;
}

export interface TraceEntry {
  pc: number;
  priv: number;
  insn: string;
}

export class EquivalenceRig {
  /** `subject` is checked against `reference` ("fast" side and "slow" side in the reports). */
  constructor(subject: SideKind = "fast", reference: SideKind = "slow") {
    this.pairs = [
      { fast: makeSide(subject, false), slow: makeSide(reference, false) },
      { fast: makeSide(subject, true), slow: makeSide(reference, true) },
    ];
    this.fast = this.pairs[0]!.fast;
    this.slow = this.pairs[0]!.slow;
  }

  private readonly pairs: { fast: Side; slow: Side }[];
  private fast: Side;
  private slow: Side;
  /** Instructions retired by the reference (slow) hart, summed over every case run so far. */
  retired = 0;
  private readonly jitTotals = { compiled: 0, instructionsCompiled: 0, invalidations: 0 };
  private readonly jitCounted = new WeakSet<Hart>();

  private addJitStats(h: Hart): void {
    const c = h.jitCache;
    if (c === null || this.jitCounted.has(h)) return;
    this.jitCounted.add(h);
    this.jitTotals.compiled += c.stats.compiledTotal;
    this.jitTotals.instructionsCompiled += c.stats.instructionsCompiled;
    this.jitTotals.invalidations += c.stats.invalidations;
  }

  /** What the subject's JIT did over every case so far (for the test's diagnostics). */
  subjectJitStats(): string {
    this.addJitStats(this.fast.hart);
    const t = this.jitTotals;
    return `JIT: ${t.compiled} page compiles, ${t.instructionsCompiled} instructions run compiled, ${t.invalidations} pages invalidated`;
  }

  /** Trap counts at the start of the case (the harts' statistics are cumulative). */
  private fastTrapsBefore = new Map<string, number>();
  private slowTrapsBefore = new Map<string, number>();

  load(s: Scenario): void {
    const pair = this.pairs[s.mmioExits ? 1 : 0]!;
    this.fast = pair.fast;
    this.slow = pair.slow;
    this.addJitStats(this.fast.hart);
    for (const side of [this.fast, this.slow]) {
      side.ram.u8.set(s.ram);
      side.device.bytes.set(s.device);
      side.hart = side.newHart();
      side.hart.restore(s.state);
      side.hart.sbiExits = s.sbiExits;
      warmTlb(side, s);
    }
    this.exitMismatch = null;
    this.fastTrapsBefore = this.fast.hart.stats.trapsByCause;
    this.slowTrapsBefore = this.slow.hart.stats.trapsByCause;
  }

  /** One run(budget) on both harts, each followed by completing its exit. */
  private step(budget: number): void {
    this.fast.hart.run(budget);
    this.retired += this.slow.hart.run(budget);
    const a = this.fast.hart.exit, b = this.slow.hart.exit;
    if (this.exitMismatch === null && (a.reason !== b.reason || a.retired !== b.retired || a.mmioAddr !== b.mmioAddr ||
      a.mmioSize !== b.mmioSize || a.mmioWrite !== b.mmioWrite || a.mmioValueLo !== b.mmioValueLo || a.mmioValueHi !== b.mmioValueHi)) {
      this.exitMismatch = `run() exit: fast ${JSON.stringify(a)}, slow ${JSON.stringify(b)}`;
    }
    completeExit(this.fast);
    completeExit(this.slow);
  }

  /** The first run() whose exits differed in this case, described; null while they agree. */
  private exitMismatch: string | null = null;

  private exitsDiffer(): boolean {
    return this.exitMismatch !== null;
  }

  /** Cheap check of what changes on almost every step: registers, pc, privilege, the CSRs traps write, counters. */
  private registersDiffer(): boolean {
    const a = this.fast.hart, b = this.slow.hart;
    if (this.exitsDiffer() || a.pc !== b.pc || a.priv !== b.priv || a.mstatus !== b.mstatus || a.instret !== b.instret ||
      a.fp.fflags !== b.fp.fflags || a.fp.frm !== b.fp.frm || a.waiting !== b.waiting) return true;
    for (let i = 0; i < 64; i++) if (a.x[i] !== b.x[i] || a.f[i] !== b.f[i]) return true;
    for (let i = 0; i < a.c64.length; i++) if (a.c64[i] !== b.c64[i]) return true;
    return false;
  }

  /** Everything: full saved state, guest RAM, the MMIO device, and the count of traps by cause. */
  differences(): string[] {
    const out = stateDifferences(this.fast.hart.save(), this.slow.hart.save());
    if (this.exitMismatch !== null) out.push(this.exitMismatch);
    out.push(...bytesDifferences("RAM", RAM_BASE, this.fast.ram.u8.subarray(0, RAM_SIZE), this.slow.ram.u8.subarray(0, RAM_SIZE)));
    out.push(...bytesDifferences("scratch device", SCRATCH_BASE, this.fast.device.bytes, this.slow.device.bytes));
    const fastTraps = this.fast.hart.stats.trapsByCause, slowTraps = this.slow.hart.stats.trapsByCause;
    for (const cause of new Set([...fastTraps.keys(), ...slowTraps.keys()])) {
      const a = (fastTraps.get(cause) ?? 0) - (this.fastTrapsBefore.get(cause) ?? 0);
      const b = (slowTraps.get(cause) ?? 0) - (this.slowTrapsBefore.get(cause) ?? 0);
      if (a !== b) out.push(`traps taken (${cause}) in this case: fast ${a}, slow ${b}`);
    }
    return out;
  }

  /** Runs the case; null when both harts agree after every chunk, else a report of the first difference. */
  check(s: Scenario): string | null {
    this.load(s);
    for (let c = 0; c < s.chunks.length; c++) {
      this.step(s.chunks[c]!);
      if (this.registersDiffer()) return this.explain(s);
    }
    return this.differences().length === 0 ? null : this.explain(s);
  }

  /** Replays `s` through the first `chunks` budgets and then `extra` more steps. */
  private replay(s: Scenario, chunks: number, extra: number): void {
    this.load(s);
    for (let c = 0; c < chunks; c++) this.step(s.chunks[c]!);
    if (extra > 0) this.step(extra);
  }

  /** The raw instruction at the reference hart's pc (read through its page tables), described. */
  private currentInsn(): string {
    const h = this.slow.hart;
    const lo = h.pc | 0, hi = Math.floor(h.pc / 4294967296) | 0;
    const addr = h.priv === K.PRV_M || h.satpMode === K.SATP_BARE
      ? (hi === 0 ? lo >>> 0 : -1)
      : walk(this.slow.ram, h.satpMode, h.satpPpn, lo, hi, ACCESS_FETCH, h.priv, h.mstatus);
    if (addr < RAM_BASE || addr + 2 > RAM_BASE + RAM_SIZE) return "(pc does not fetch from RAM: the step takes a fetch fault)";
    const u8 = this.slow.ram.u8, o = addr - RAM_BASE;
    const half = u8[o]! | (u8[o + 1]! << 8);
    if ((half & 3) !== 3) return describeInsn(half, 2);
    if (o + 4 > RAM_SIZE) return "(32-bit instruction runs past RAM)";
    return describeInsn(half | (u8[o + 2]! << 16) | (u8[o + 3]! << 24), 4);
  }

  /** Finds the first chunk and the smallest run() budget inside it where the harts differ, and reports it. */
  explain(s: Scenario): string {
    this.load(s);
    let chunk = -1;
    for (let c = 0; c < s.chunks.length && chunk < 0; c++) {
      this.step(s.chunks[c]!);
      if (this.differences().length > 0) chunk = c;
    }
    if (chunk < 0) return `case seed ${s.seed} (${s.summary}): the harts differed once but not on replay (nondeterminism in the rig?)`;
    let k = 1;
    for (; k < s.chunks[chunk]!; k++) {
      this.replay(s, chunk, k);
      if (this.differences().length > 0) break;
    }
    this.replay(s, chunk, k);
    const diffs = this.differences();
    // Trace the reference hart one step at a time up to the differing step.
    this.replay(s, chunk, 0);
    const trace: TraceEntry[] = [];
    for (let i = 0; i < k; i++) {
      trace.push({ pc: this.slow.hart.pc, priv: this.slow.hart.priv, insn: this.currentInsn() });
      this.slow.hart.run(1);
      completeExit(this.slow);
    }
    const stepsBefore = s.chunks.slice(0, chunk).reduce((a, b) => a + b, 0);
    const last = trace[trace.length - 1]!;
    return [
      `execFast and execSlow disagree: case seed ${s.seed} (${s.summary})`,
      `first difference after step ${stepsBefore + k} (run budgets ${s.chunks.slice(0, chunk).join(",") || "none"}, then ${k})`,
      `first differing instruction: ${last.insn} at pc ${pcHex(last.pc)} in ${PRIV_NAMES[last.priv]}-mode`,
      "differences (fast vs slow):",
      ...diffs.slice(0, 24).map((d) => "  " + d),
      "reference trace before it (oldest first):",
      ...trace.slice(-12).map((t) => `  ${pcHex(t.pc)} ${PRIV_NAMES[t.priv]}: ${t.insn}`),
    ].join("\n");
  }
}

/** Runs random cases (buildScenario) through `rig` until `total` steps; returns a failure report (with how to replay it) or the counts. */
export function runRandomCases(rig: EquivalenceRig, o: { total: number; seed: number; oneCase?: string; replay: (caseSeed: number, budget: number) => string }): { failure: string | null; cases: number; steps: number } {
  const seeds = makeRng(o.seed);
  let steps = 0;
  let cases = 0;
  while (steps < o.total) {
    const caseSeed = o.oneCase !== undefined ? Number(o.oneCase) >>> 0 : seeds.u32();
    const budget = o.oneCase !== undefined ? o.total : 2000 + seeds.below(6000);
    const failure = rig.check(buildScenario(caseSeed, budget));
    if (failure !== null) return { failure: `${failure}\nreplay this case alone: ${o.replay(caseSeed, budget)} (run seed ${o.seed}, case ${cases})`, cases, steps };
    steps += budget;
    cases++;
    if (o.oneCase !== undefined) break;
  }
  return { failure: null, cases, steps };
}
