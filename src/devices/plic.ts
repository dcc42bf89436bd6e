// PLIC (platform-level interrupt controller) in the SiFive / QEMU virt layout.
// Level-triggered sources are gated to contexts (one per hart and privilege mode) that claim and complete them.

import type { MmioDevice } from "../seams/mmio.js";
import type { InterruptTarget, IrqLine } from "../seams/interrupts.js";

const PRIORITY_BASE = 0x0;
const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x200000;
const CONTEXT_STRIDE = 0x1000;
const CLAIM_OFFSET = 4;
/** Priorities and thresholds have 3 bits (7 levels above "never"), as in QEMU virt. */
export const PLIC_PRIORITY_MAX = 7;
/** The layout holds at most 1024 sources (0 reserved) and 15872 contexts. */
export const PLIC_MAX_SOURCES = 1024;
export const PLIC_MAX_CONTEXTS = 15872;

export interface PlicContext {
  hart: InterruptTarget;
  /** mip bit driven by this context: 11 MEIP or 9 SEIP. */
  bit: number;
}

export interface PlicOptions {
  /** Number of source ids including the reserved 0 (96 gives devices 1..95, riscv,ndev = 95). */
  sources: number;
  /** In QEMU virt order: context 2*h is hart h's M-mode (MEIP), 2*h+1 its S-mode (SEIP). */
  contexts: PlicContext[];
}

export interface PlicState {
  priority: number[];
  /** Bit arrays as 32-bit words, source n at word n>>5 bit n&31. */
  pending: number[];
  claimed: number[];
  level: number[];
  enable: number[][];
  threshold: number[];
}

/** What query-interrupts shows of the PLIC: every source enabled somewhere or with a bit set, and every context. */
export interface PlicView {
  sources: Array<{ id: number; priority: number; pending: boolean; claimed: boolean; level: boolean }>;
  contexts: Array<{ context: number; mipBit: number; threshold: number; enabled: number[]; output: boolean; best: number }>;
}

/** Size of the MMIO window for this many contexts (0x600000 for QEMU virt with two harts' worth of room). */
export function plicMmioSize(contexts: number): number {
  return CONTEXT_BASE + contexts * CONTEXT_STRIDE;
}

export class Plic implements MmioDevice {
  readonly name = "plic";
  readonly sources: number;
  /** Bytes this instance decodes; map at least this much. */
  readonly size: number;
  private readonly contexts: PlicContext[];
  private readonly words: number;
  private readonly priority: Uint8Array;
  private readonly pending: Uint32Array;
  private readonly claimed: Uint32Array; // claimed and not yet completed: the gateway holds further requests
  private readonly level: Uint32Array;
  private readonly enable: Uint32Array[];
  private readonly threshold: Uint8Array;
  private readonly output: boolean[];

  constructor(options: PlicOptions) {
    const { sources, contexts } = options;
    if (!Number.isInteger(sources) || sources < 2 || sources > PLIC_MAX_SOURCES) {
      throw new RangeError(`Cannot build a PLIC with ${sources} sources: it needs between 2 and ${PLIC_MAX_SOURCES}`);
    }
    if (contexts.length > PLIC_MAX_CONTEXTS) {
      throw new RangeError(`Cannot build a PLIC with ${contexts.length} contexts: the layout holds at most ${PLIC_MAX_CONTEXTS}`);
    }
    this.sources = sources;
    this.contexts = contexts;
    this.size = plicMmioSize(contexts.length);
    this.words = Math.ceil(sources / 32);
    this.priority = new Uint8Array(sources);
    this.pending = new Uint32Array(this.words);
    this.claimed = new Uint32Array(this.words);
    this.level = new Uint32Array(this.words);
    this.enable = contexts.map(() => new Uint32Array(this.words));
    this.threshold = new Uint8Array(contexts.length);
    this.output = contexts.map(() => false);
  }

  /** The input wire of one source (1 .. sources-1); wiring source 0 or an id out of range is a board bug and throws. */
  irqLine(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source >= this.sources) {
      throw new RangeError(`Cannot wire PLIC source ${source}: valid sources are 1 to ${this.sources - 1}`);
    }
    return { set: (level: boolean) => this.setLevel(source, level) };
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || offset % 4 !== 0 || offset < 0) return 0; // registers are 32-bit words
    if (offset < PENDING_BASE) {
      const src = offset / 4;
      return src < this.sources ? this.priority[src] : 0;
    }
    if (offset < ENABLE_BASE) {
      const w = (offset - PENDING_BASE) / 4;
      return w < this.words ? this.pending[w] : 0;
    }
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) % ENABLE_STRIDE) / 4;
      return ctx < this.contexts.length && w < this.words ? this.enable[ctx][w] : 0;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= this.contexts.length) return 0;
    const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
    if (reg === 0) return this.threshold[ctx];
    if (reg === CLAIM_OFFSET) return this.claim(ctx);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || offset % 4 !== 0 || offset < 0) return;
    if (offset < PENDING_BASE) {
      const src = offset / 4;
      if (src === 0 || src >= this.sources) return;
      this.priority[src] = Math.min(value >>> 0, PLIC_PRIORITY_MAX);
      this.updateOutputs();
      return;
    }
    if (offset < ENABLE_BASE) return; // pending bits are read-only
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) % ENABLE_STRIDE) / 4;
      if (ctx >= this.contexts.length || w >= this.words) return;
      this.enable[ctx][w] = (value & this.validMask(w)) >>> 0;
      this.updateOutputs();
      return;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= this.contexts.length) return;
    const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
    if (reg === 0) {
      this.threshold[ctx] = Math.min(value >>> 0, PLIC_PRIORITY_MAX);
      this.updateOutputs();
    } else if (reg === CLAIM_OFFSET) {
      this.complete(ctx, value >>> 0);
    }
  }

  save(): PlicState {
    return {
      priority: Array.from(this.priority),
      pending: Array.from(this.pending),
      claimed: Array.from(this.claimed),
      level: Array.from(this.level),
      enable: this.enable.map((e) => Array.from(e)),
      threshold: Array.from(this.threshold),
    };
  }

  restore(state: PlicState): void {
    for (let s = 0; s < this.sources; s++) this.priority[s] = s === 0 ? 0 : Math.min((state.priority[s] ?? 0) >>> 0, PLIC_PRIORITY_MAX);
    for (let w = 0; w < this.words; w++) {
      const mask = this.validMask(w);
      this.pending[w] = ((state.pending[w] ?? 0) & mask) >>> 0;
      this.claimed[w] = ((state.claimed[w] ?? 0) & mask) >>> 0;
      this.level[w] = ((state.level[w] ?? 0) & mask) >>> 0;
    }
    this.enable.forEach((e, c) => {
      for (let w = 0; w < this.words; w++) e[w] = ((state.enable[c]?.[w] ?? 0) & this.validMask(w)) >>> 0;
    });
    this.threshold.forEach((_, c) => (this.threshold[c] = Math.min((state.threshold[c] ?? 0) >>> 0, PLIC_PRIORITY_MAX)));
    this.updateOutputs(true);
  }

  /** The gateways and contexts as they are now, for diagnosing a guest that waits for an interrupt. */
  describe(): PlicView {
    const bit = (a: Uint32Array, s: number): boolean => (a[s >>> 5]! & (1 << (s & 31))) !== 0;
    const contexts = this.contexts.map((c, i) => {
      const enabled: number[] = [];
      for (let s = 1; s < this.sources; s++) if (bit(this.enable[i]!, s)) enabled.push(s);
      return { context: i, mipBit: c.bit, threshold: this.threshold[i]!, enabled, output: this.output[i]!, best: this.best(i) };
    });
    const sources: PlicView["sources"] = [];
    for (let s = 1; s < this.sources; s++) {
      const v = { id: s, priority: this.priority[s]!, pending: bit(this.pending, s), claimed: bit(this.claimed, s), level: bit(this.level, s) };
      if (v.pending || v.claimed || v.level || contexts.some((c) => c.enabled.includes(s))) sources.push(v);
    }
    return { sources, contexts };
  }

  // A low line withdraws its request: a device that was serviced by polling leaves no stale claim behind.
  private setLevel(source: number, high: boolean): void {
    const w = source >>> 5;
    const bit = 1 << (source & 31);
    this.level[w] = high ? this.level[w] | bit : this.level[w] & ~bit;
    if (high && (this.claimed[w] & bit) === 0) this.pending[w] |= bit;
    else if (!high) this.pending[w] &= ~bit;
    this.updateOutputs();
  }

  private claim(ctx: number): number {
    const src = this.best(ctx);
    if (src !== 0) {
      const w = src >>> 5;
      const bit = 1 << (src & 31);
      this.pending[w] &= ~bit;
      this.claimed[w] |= bit;
      this.updateOutputs();
    }
    return src;
  }

  private complete(ctx: number, src: number): void {
    if (src === 0 || src >= this.sources) return;
    const w = src >>> 5;
    const bit = 1 << (src & 31);
    // The specification ignores completions for sources not enabled in this context.
    if ((this.enable[ctx][w] & bit) === 0 || (this.claimed[w] & bit) === 0) return;
    this.claimed[w] &= ~bit;
    if (this.level[w] & bit) this.pending[w] |= bit;
    this.updateOutputs();
  }

  // Highest-priority pending, enabled source above the context's threshold; ties go to the lowest id.
  private best(ctx: number): number {
    const en = this.enable[ctx];
    let bestSrc = 0;
    let bestPrio = this.threshold[ctx];
    for (let w = 0; w < this.words; w++) {
      let bits = this.pending[w] & en[w];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const src = (w << 5) | b;
        if (this.priority[src] > bestPrio) {
          bestPrio = this.priority[src];
          bestSrc = src;
        }
      }
    }
    return bestSrc;
  }

  private updateOutputs(force = false): void {
    for (let c = 0; c < this.contexts.length; c++) {
      const level = this.best(c) !== 0;
      if (level === this.output[c] && !force) continue;
      this.output[c] = level;
      this.contexts[c].hart.setInterruptPending(this.contexts[c].bit, level);
    }
  }

  // Source 0 and ids at or beyond `sources` do not exist.
  private validMask(w: number): number {
    let mask = 0xffffffff;
    if (w === 0) mask &= ~1;
    const extra = (w + 1) * 32 - this.sources;
    if (extra > 0) mask = extra >= 32 ? 0 : mask & (0xffffffff >>> extra);
    return mask >>> 0;
  }
}
