// A record of the compile thread's work, for measuring the emitter and V8's compile of its output
// without a guest (bench_compile.ts): with NODEVISOR_JIT_DUMP=FILE the compile thread appends each
// module's requests to FILE as a JSON line, with the code pages' bytes as they were then.
import { appendFileSync, readFileSync } from "node:fs";
import type { PageRequest } from "./compile_block.js";

/** One module's requests as recorded: the pages' 4 KiB of code in base64. */
interface DumpLine {
  maxBlocks: number;
  pages: number;
  reqs: Array<{ pageOff: number; work: number[]; have: number[] | null; tail: number; maxBlocks?: number; seeds?: number; marks?: number; code: string }>;
}

/** Appends the requests of one module (before compileModules takes them: it extends `work`). */
export function dumpRequests(file: string, u16: Uint16Array, reqs: readonly PageRequest[], maxBlocks: number, pages: number): void {
  const line: DumpLine = { maxBlocks, pages, reqs: [] };
  for (const r of reqs) {
    const have: number[] = [];
    if (r.have !== null) for (let po = 0; po < 4096; po += 2) if (r.have.has(po)) have.push(po);
    const code = Buffer.from(u16.buffer, u16.byteOffset + r.pageOff, 4096).toString("base64");
    line.reqs.push({ pageOff: r.pageOff, work: [...r.work], have: r.have === null ? null : have, tail: r.tail, maxBlocks: r.maxBlocks, seeds: r.seeds, marks: r.marks, code });
  }
  appendFileSync(file, `${JSON.stringify(line)}\n`);
}

/** A recorded module: its requests against `u16`, a RAM image holding only the recorded pages (written by `load`). */
export interface RecordedModule {
  maxBlocks: number;
  pages: number;
  /** Writes this module's pages into `u16` (the same RAM offsets as recorded) and returns fresh requests for them. */
  load(u16: Uint16Array): PageRequest[];
}

/** Reads a NODEVISOR_JIT_DUMP file. */
export function readDump(file: string): RecordedModule[] {
  const out: RecordedModule[] = [];
  for (const text of readFileSync(file, "utf8").split("\n")) {
    if (text.trim() === "") continue;
    const line = JSON.parse(text) as DumpLine;
    const pages = line.reqs.map((r) => {
      const b = Buffer.from(r.code, "base64");
      return { ...r, bytes: new Uint16Array(b.buffer, b.byteOffset, 2048) };
    });
    out.push({
      maxBlocks: line.maxBlocks,
      pages: line.pages,
      load(u16) {
        return pages.map((r) => {
          u16.set(r.bytes, r.pageOff >>> 1);
          return { pageOff: r.pageOff, work: [...r.work], have: r.have === null ? null : new Set(r.have), tail: r.tail, maxBlocks: r.maxBlocks, seeds: r.seeds, marks: r.marks };
        });
      },
    });
  }
  return out;
}
