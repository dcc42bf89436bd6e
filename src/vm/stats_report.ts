// Figures query-stats reports that need translating from the CPU's own form: trap causes by name,
// and the JIT's code cache.
import type { BlockCache } from "../cpu/jit/block_cache.js";
import type { JitStatsReport } from "./controller.js";

const EXCEPTION_NAMES = [
  "instruction-misaligned", "instruction-access-fault", "illegal-instruction", "breakpoint",
  "load-misaligned", "load-access-fault", "store-misaligned", "store-access-fault",
  "ecall-from-u", "ecall-from-s", "exception-10", "ecall-from-m",
  "instruction-page-fault", "load-page-fault", "exception-14", "store-page-fault",
];
const INTERRUPT_NAMES: Record<number, string> = {
  1: "supervisor-software", 3: "machine-software", 5: "supervisor-timer", 7: "machine-timer", 9: "supervisor-external", 11: "machine-external",
};

/** Turns the hart's "exception:13" / "interrupt:5" keys into the names the privileged spec uses. */
export function trapCauseName(key: string): string {
  const [kind, num] = key.split(":");
  const n = Number(num);
  if (kind === "exception") return EXCEPTION_NAMES[n] ?? key;
  if (kind === "interrupt") return INTERRUPT_NAMES[n] ? `${INTERRUPT_NAMES[n]}-interrupt` : key;
  return key;
}

/** The JIT cache's figures as query-stats reports them. */
export function jitReport(c: BlockCache, instructions: number): JitStatsReport {
  const s = c.stats;
  return {
    blocks: s.blocks, codeBytes: s.codeBytes, compiles: s.compiledTotal, compileMs: Math.round(s.compileMs),
    invalidations: s.invalidations, flushes: s.flushes, instructionsCompiled: s.instructionsCompiled,
    compiledShare: instructions > 0 ? Math.round((s.instructionsCompiled / instructions) * 1000) / 1000 : 0,
    maxBlocks: c.maxBlocks,
  };
}
