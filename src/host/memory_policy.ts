// The memory policy: moves guest memory to where it is needed, from the guests' own figures (the
// balloon's statistics). A guest short of memory — little available, or faulting pages in — gets
// its balloon deflated first; when the host's free memory falls below the low watermark, the
// balloons of the guests with the most unused memory inflate until the high watermark is free
// again; when the host has plenty, guests the policy squeezed get their memory back. Every
// decision carries the figures that drove it (the daemon turns each into an event).

export interface MemoryPolicySettings {
  /** The whole policy, for the host (`nodevisor daemon --memory-policy off`). */
  enabled: boolean;
  /** Inflate when free host memory falls below this. */
  lowWatermarkBytes: number;
  /** ... until this much is free again. */
  highWatermarkBytes: number;
  /** The policy never leaves a guest less than this. */
  floorBytes: number;
}

/** One running VM as the policy sees it (sizes in bytes). */
export interface VmMemoryView {
  name: string;
  /** The per-VM switch (spec `memoryPolicy`). */
  policy: boolean;
  ramBytes: number;
  /** The size the user wants (spec `memoryTargetMiB`, else RAM): the policy gives back up to it, never beyond. */
  ceilingBytes: number;
  /** The guest size asked for now, and the size the guest has got to. */
  targetBytes: number;
  actualBytes: number;
  /** What the guest has free for new work (its MemAvailable); null before its first statistics. */
  availableBytes: number | null;
  /** Major faults since the previous sample: the guest re-reading what it had to drop. */
  majorFaultsDelta: number;
  /** How much its available memory fell over the last seconds: a guest taking memory now is busy, not idle. */
  availableDropBytes: number;
  /** Age of the guest's figures; stale figures are not acted on. */
  statsAgeMs: number | null;
}

export interface HostMemoryView {
  /** Host memory the daemon may give VMs (`--memory`). */
  limitBytes: number;
  /** Guest RAM the VMs have made resident, summed. */
  usedBytes: number;
  /** What the OS says is available; the tighter of the two figures counts. */
  osAvailableBytes: number;
}

export interface BalloonDecision {
  vm: string;
  kind: "inflate" | "deflate";
  fromBytes: number;
  toBytes: number;
  reason: string;
  figures: Record<string, number | null>;
}

const MiB = 2 ** 20;
/** A guest with less available than this share of its size (or 64 MiB) is short of memory. */
const PRESSURE_SHARE = 0.1;
const PRESSURE_MIN = 64 * MiB;
/** Major faults per sample that mean a guest is thrashing. */
const FAULT_PRESSURE = 50;
/** A guest whose available memory fell by more than this over the last seconds is growing: it is not squeezed. */
const GROWING = 32 * MiB;
/** What inflating leaves a guest on top of what it uses: this share of its size, or 128 MiB. */
const RESERVE_SHARE = 0.2;
const RESERVE_MIN = 128 * MiB;
/** A deflate gives back at least this, or a quarter of RAM. */
const STEP_MIN = 256 * MiB;
/** Moves smaller than this are not worth the guest's work. */
const MIN_MOVE = 16 * MiB;
/** Figures older than this are not acted on. */
const STALE_MS = 30_000;
/**
 * Only a guest whose figures are this recent is squeezed: a guest busy taking memory can be late
 * answering the statistics request (its balloon driver's work waits behind the busy process),
 * and its last figures would then show neither its growth nor its need.
 */
const INFLATE_FRESH_MS = 5_000;
/** A balloon within this of its target has arrived. */
const SETTLED = 4 * MiB;

const roundMiB = (b: number): number => Math.floor(b / MiB) * MiB;

export function freeHostBytes(h: HostMemoryView): number {
  return Math.min(h.limitBytes - h.usedBytes, h.osAvailableBytes);
}

export function planBalloons(host: HostMemoryView, vms: readonly VmMemoryView[], s: MemoryPolicySettings): BalloonDecision[] {
  if (!s.enabled) return [];
  const out: BalloonDecision[] = [];
  const free = freeHostBytes(host);
  const fresh = (v: VmMemoryView): boolean => v.policy && v.statsAgeMs !== null && v.statsAgeMs < STALE_MS && v.availableBytes !== null;
  const step = (v: VmMemoryView): number => Math.max(STEP_MIN, v.ramBytes / 4);
  const pressed = new Set<string>();
  // Deflate first: a guest short of memory gets it back before anyone else is squeezed.
  for (const v of vms) {
    if (!fresh(v)) continue;
    const short = v.availableBytes! < Math.max(PRESSURE_MIN, v.actualBytes * PRESSURE_SHARE);
    const faulting = v.majorFaultsDelta > FAULT_PRESSURE;
    if (!short && !faulting) continue;
    pressed.add(v.name);
    if (v.targetBytes >= v.ceilingBytes) continue;
    const to = Math.min(v.ceilingBytes, v.targetBytes + step(v));
    out.push({
      vm: v.name, kind: "deflate", fromBytes: v.targetBytes, toBytes: to,
      reason: faulting ? `the guest took ${v.majorFaultsDelta} major faults since the last sample` : `the guest has only ${Math.round(v.availableBytes! / MiB)} MiB available`,
      figures: { availableBytes: v.availableBytes, actualBytes: v.actualBytes, majorFaults: v.majorFaultsDelta, hostFreeBytes: free },
    });
  }
  if (free < s.lowWatermarkBytes) {
    // Balloons still on their way down will free memory already: count it.
    const coming = vms.reduce((sum, v) => sum + Math.max(0, v.actualBytes - v.targetBytes), 0);
    let need = s.highWatermarkBytes - free - coming;
    const spare = (v: VmMemoryView): number => {
      const reserve = Math.max(RESERVE_MIN, v.actualBytes * RESERVE_SHARE);
      return Math.max(0, Math.min(v.availableBytes! - reserve, v.targetBytes - Math.max(s.floorBytes, 0)));
    };
    const candidates = vms
      .filter((v) => fresh(v) && v.statsAgeMs! < INFLATE_FRESH_MS && !pressed.has(v.name) && v.availableDropBytes <= GROWING && Math.abs(v.actualBytes - v.targetBytes) <= SETTLED)
      .sort((a, b) => spare(b) - spare(a));
    for (const v of candidates) {
      if (need < MIN_MOVE) break;
      const take = roundMiB(Math.min(need, spare(v)));
      if (take < MIN_MOVE) continue;
      out.push({
        vm: v.name, kind: "inflate", fromBytes: v.targetBytes, toBytes: v.targetBytes - take,
        reason: `the host has ${Math.round(free / MiB)} MiB free, below the ${Math.round(s.lowWatermarkBytes / MiB)} MiB watermark, and this guest has ${Math.round(v.availableBytes! / MiB)} MiB available`,
        figures: { hostFreeBytes: free, lowWatermarkBytes: s.lowWatermarkBytes, availableBytes: v.availableBytes, actualBytes: v.actualBytes },
      });
      need -= take;
    }
  } else if (free > 2 * s.highWatermarkBytes) {
    // Plenty free: give one squeezed guest a step back per round, within what stays above the high watermark.
    const v = vms.find((x) => fresh(x) && !pressed.has(x.name) && x.targetBytes < x.ceilingBytes);
    if (v !== undefined) {
      const to = Math.min(v.ceilingBytes, v.targetBytes + Math.min(step(v), free - 2 * s.highWatermarkBytes));
      if (to - v.targetBytes >= MIN_MOVE) {
        out.push({
          vm: v.name, kind: "deflate", fromBytes: v.targetBytes, toBytes: roundMiB(to),
          reason: `the host has ${Math.round(free / MiB)} MiB free again`,
          figures: { hostFreeBytes: free, highWatermarkBytes: s.highWatermarkBytes, availableBytes: v.availableBytes, actualBytes: v.actualBytes },
        });
      }
    }
  }
  return out;
}
