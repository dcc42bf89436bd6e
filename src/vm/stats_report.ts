// Figures query-stats reports that need translating from the CPU's and devices' own form: trap
// causes by name, each virtio device's counters, and the JIT's code cache.
import { DEFAULT_MAX_BLOCKS, type JitStats } from "../cpu/jit/block_cache.js";
import { VirtioBlk } from "../devices/virtio/block/device.js";
import type { VirtioDevice } from "../devices/virtio/device.js";
import type { VirtioMmio } from "../devices/virtio/mmio.js";
import type { DeviceStats, JitStatsReport } from "./controller.js";

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
export function jitReport(s: JitStats, instructions: number): JitStatsReport {
  return {
    blocks: s.blocks, codeBytes: s.codeBytes, compiles: s.compiledTotal, compileMs: Math.round(s.compileMs), staleCompiles: s.staleCompiles, reusedCompiles: s.reusedCompiles,
    invalidations: s.invalidations, flushes: s.flushes, instructionsCompiled: s.instructionsCompiled,
    compiledShare: instructions > 0 ? Math.round((s.instructionsCompiled / instructions) * 1000) / 1000 : 0,
    handBacks: s.handBacks, missedEntries: s.missedEntries, maxBlocks: DEFAULT_MAX_BLOCKS,
  };
}

/** Trap counts keyed by the spec's names (several CPU keys may share one). */
export function trapCountsByName(counts: Iterable<[string, number]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [cause, n] of counts) {
    const name = trapCauseName(cause);
    out[name] = (out[name] ?? 0) + n;
  }
  return out;
}

/** Each virtio device's figures, named as the user knows them (vda…, net0…). */
export function deviceStats(
  board: { virtio: readonly VirtioMmio[]; virtioDevices: readonly VirtioDevice[] },
  nics: ReadonlyArray<{ name: string; device: VirtioDevice }>,
  balloon: VirtioDevice,
): DeviceStats[] {
  let disk = 0;
  return board.virtio.map((mmio, i) => {
    const dev = board.virtioDevices[i]!;
    const st = dev.stats();
    const nic = nics.find((n) => n.device === dev);
    const blk = dev instanceof VirtioBlk ? dev : null;
    return {
      name: nic?.name ?? (blk ? `vd${String.fromCharCode(0x61 + disk++)}` : `virtio${i}`),
      kind: dev.name,
      requests: st.requests ?? 0,
      bytesRead: st.bytesRead ?? 0,
      bytesWritten: st.bytesWritten ?? 0,
      errors: (st.errors ?? 0) + mmio.stats().deviceFailures,
      ...(nic || dev === balloon ? { counters: { ...st } } : {}),
      ...(blk ? { queueDepth: { current: st.inFlight ?? 0, max: st.maxInFlight ?? 0 }, latency: blk.latency() } : {}),
    };
  });
}
