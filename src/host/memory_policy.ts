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
  /**
   * How far the guest's available memory fell over the last seconds; null when its figures leave a
   * gap: a guest busy taking memory can be late answering, and a gap is not idleness. A guest taking
   * memory is busy, not idle.
   */
  growthBytes: number | null;
  /** Host cores its vCPUs used over the last sample: a guest at work is squeezed only after the idle ones. */
  cpuCores: number;
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
/** A guest using more host cores than this is at work: idle guests lend memory first. */
const ACTIVE_CORES = 0.3;

const roundMiB = (b: number): number => Math.floor(b / MiB) * MiB;

/** A figure read at a time (ms). */
export interface Reading {
  at: number;
  bytes: number;
}

/**
 * How far a figure rose and fell, to its newest reading, over the `windowMs` before `now`; null when
 * the readings do not reach back over the window or leave a gap longer than `maxGapMs` (the newest
 * one included): what the guest did in a gap is unknown. `readings` are oldest first.
 */
export function changeOver(readings: readonly Reading[], now: number, windowMs: number, maxGapMs: number): { rise: number; fall: number } | null {
  const newest = readings[readings.length - 1];
  if (newest === undefined || readings[0]!.at > now - windowMs || now - newest.at > maxGapMs) return null;
  let low = newest.bytes;
  let high = newest.bytes;
  for (let i = readings.length - 1; i >= 0; i--) {
    const r = readings[i]!;
    if (i > 0 && r.at - readings[i - 1]!.at > maxGapMs && r.at > now - windowMs) return null;
    low = Math.min(low, r.bytes);
    high = Math.max(high, r.bytes);
    if (r.at <= now - windowMs) break;
  }
  return { rise: newest.bytes - low, fall: high - newest.bytes };
}

/** Drops readings the window no longer needs, keeping the newest one before it (the window's start). */
export function trimReadings(readings: Reading[], now: number, windowMs: number): Reading[] {
  let first = 0;
  while (first + 1 < readings.length && readings[first + 1]!.at <= now - windowMs) first++;
  return first === 0 ? readings : readings.slice(first);
}

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
    const settled = (v: VmMemoryView): boolean => Math.abs(v.actualBytes - v.targetBytes) <= SETTLED;
    const candidates = vms
      .filter((v) => fresh(v) && v.statsAgeMs! < INFLATE_FRESH_MS && !pressed.has(v.name) && v.growthBytes !== null && v.growthBytes <= GROWING && settled(v))
      .sort((a, b) => spare(b) - spare(a));
    const take = (v: VmMemoryView): void => {
      const bytes = roundMiB(Math.min(need, spare(v)));
      if (bytes < MIN_MOVE) return;
      out.push({
        vm: v.name, kind: "inflate", fromBytes: v.targetBytes, toBytes: v.targetBytes - bytes,
        reason: `the host has ${Math.round(free / MiB)} MiB free, below the ${Math.round(s.lowWatermarkBytes / MiB)} MiB watermark, and this guest has ${Math.round(v.availableBytes! / MiB)} MiB available`,
        figures: { hostFreeBytes: free, lowWatermarkBytes: s.lowWatermarkBytes, availableBytes: v.availableBytes, actualBytes: v.actualBytes, cpuCores: v.cpuCores },
      });
      need -= bytes;
    };
    for (const v of candidates.filter((x) => x.cpuCores < ACTIVE_CORES)) if (need >= MIN_MOVE) take(v);
    // A guest at work lends only when the idle ones have nothing left: every balloon has arrived and none moved this round.
    const inMotion = out.some((d) => d.kind === "inflate") || vms.some((v) => v.policy && !settled(v));
    if (!inMotion) for (const v of candidates.filter((x) => x.cpuCores >= ACTIVE_CORES)) if (need >= MIN_MOVE) take(v);
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
