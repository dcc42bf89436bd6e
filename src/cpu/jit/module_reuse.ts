// Compiled modules kept for reuse by the compile thread (compile_worker.ts), each with a copy of
// the 4 KiB page it was compiled from. A later request for that RAM page — from another vCPU
// thread, whose harts run the same kernel, or after the page was written back with the same bytes
// — gets the kept module with blocks at the most of the entries asked for (at least one), when the
// page's bytes still match and the requester has blocks at every offset the module links to (a
// module of missed entries jumps straight to the page's earlier blocks). V8 shares compiled code
// between threads, so the second thread pays an instantiation, not a compile; entries the module
// lacks are missed entries there, compiled later as on any page. Any module compiled from the
// page's current bytes is correct code for it, and any block at an offset implements the code
// there (an instruction across the page end checks the next page's halfword as it runs, so the
// tail only breaks ties); the checks only make sure the bytes are the same. Against no reuse, a
// 2-vCPU boot made ~35% fewer compiles and reached /init ~10% sooner (docs/jit.md).
import type { ReplyPart } from "./compile_service.js";

/** Modules kept at most (each holds its machine code alive): the oldest go first. */
export const REUSE_MAX = 1024;
/** Modules kept per page at most (a first compile, then modules of missed entries). */
const PER_PAGE = 8;

interface Kept {
  /** The page's bytes when it was compiled (shared by a page's modules of the same bytes). */
  bytes: Int32Array;
  tail: number;
  starts: Set<number>;
  linked: number[];
  module: WebAssembly.Module;
  /** Every part of the module (a reply installs only the one asked for); `index` is the page's. */
  parts: ReplyPart[];
  index: number;
}

export class ModuleReuse {
  /** By page offset, newest last; the map's order is the pages' eviction order. */
  private readonly kept = new Map<number, Kept[]>();
  private count = 0;

  constructor(private readonly ram: Int32Array) {}

  /**
   * Keeps part `index` of `module` (`parts`: the reply's; ids and slots are dropped) as a module of
   * page `pageOff`, compiled from `bytes` (the page's copy, taken when no store could change it
   * until the compile ended) with next-page halfword `tail`.
   */
  keep(pageOff: number, bytes: Int32Array, tail: number, module: WebAssembly.Module, parts: ReplyPart[], index: number): void {
    let list = this.kept.get(pageOff);
    if (list !== undefined && !sameBytes(list[0]!.bytes, bytes, 0)) { this.count -= list.length; list = undefined; } // other code now: its modules are of no use
    if (list === undefined) list = [];
    else bytes = list[0]!.bytes;
    this.kept.delete(pageOff);
    this.kept.set(pageOff, list);
    const p = parts[index]!;
    list.push({ bytes, tail, starts: new Set(p.starts), linked: p.linked.slice(), module, parts: parts.map((q) => ({ ...q, id: -1, slot: -1 })), index });
    this.count++;
    if (list.length > PER_PAGE) { list.shift(); this.count--; }
    while (this.count > REUSE_MAX) {
      const [oldest, l] = this.kept.entries().next().value!;
      this.kept.delete(oldest);
      this.count -= l.length;
    }
  }

  /**
   * The kept module of page `pageOff` with blocks at the most of the entries `work` (at least one;
   * the newest with next-page halfword `tail` among equals) that links only to offsets in `have`,
   * with its parts (the page's with `id` and `slot`), when the page holds the bytes it was compiled
   * from; else null.
   */
  find(pageOff: number, tail: number, work: readonly number[], have: ReadonlySet<number>, id: number, slot: number): { module: WebAssembly.Module; parts: ReplyPart[] } | null {
    const list = this.kept.get(pageOff);
    if (list === undefined || !sameBytes(list[0]!.bytes, this.ram, pageOff >> 2)) return null;
    let best: Kept | null = null, bestCover = 0;
    for (let j = list.length - 1; j >= 0; j--) {
      const k = list[j]!;
      if (!k.linked.every((po) => have.has(po))) continue;
      let cover = 0;
      for (const po of work) if (k.starts.has(po)) cover++;
      if (k.tail === tail) cover += 0.5;
      if (cover > bestCover) { best = k; bestCover = cover; }
    }
    if (best === null || bestCover < 1) return null;
    const k = best;
    return { module: k.module, parts: k.parts.map((p, i) => (i === k.index ? { ...p, id, slot } : p)) };
  }

  /** A copy of page `pageOff`'s bytes now. */
  copy(pageOff: number): Int32Array {
    return this.ram.slice(pageOff >> 2, (pageOff >> 2) + 1024);
  }
}

/** True when the page copy `bytes` equals the 1,024 words of `ram` from word `at`. */
function sameBytes(bytes: Int32Array, ram: Int32Array, at: number): boolean {
  for (let i = 0; i < 1024; i++) if (ram[at + i] !== bytes[i]) return false;
  return true;
}
