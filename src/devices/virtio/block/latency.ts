// Request latency of one disk as a histogram with fixed bounds (Prometheus style): the daemon
// exports it as nodevisor_vm_disk_request_duration_seconds. Fixed bounds keep it a few numbers,
// whatever the request count, and let histograms of different VMs be summed.

/** Upper bounds in seconds, from 50 µs (a page-cache hit) to 5 s (a throttled or failing disk). */
export const DISK_LATENCY_BOUNDS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

export interface LatencySnapshot {
  /** Upper bounds in seconds; a last, implicit bucket holds everything above the largest. */
  boundsSeconds: number[];
  /** Requests at or below each bound (cumulative, as Prometheus `le` buckets). */
  cumulativeCounts: number[];
  count: number;
  sumSeconds: number;
}

export class LatencyHistogram {
  private readonly counts = new Array<number>(DISK_LATENCY_BOUNDS_SECONDS.length + 1).fill(0);
  private count = 0;
  private sumSeconds = 0;

  observe(seconds: number): void {
    if (!(seconds >= 0)) seconds = 0; // a clock that stepped back never yields a negative latency
    let i = 0;
    while (i < DISK_LATENCY_BOUNDS_SECONDS.length && seconds > DISK_LATENCY_BOUNDS_SECONDS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumSeconds += seconds;
  }

  snapshot(): LatencySnapshot {
    const cumulativeCounts: number[] = [];
    let running = 0;
    for (let i = 0; i < DISK_LATENCY_BOUNDS_SECONDS.length; i++) cumulativeCounts.push((running += this.counts[i]!));
    return { boundsSeconds: [...DISK_LATENCY_BOUNDS_SECONDS], cumulativeCounts, count: this.count, sumSeconds: this.sumSeconds };
  }
}

/** The smallest bound at or below which at least `q` (0..1) of the requests fell; Infinity if above every bound, null if none. */
export function latencyQuantileBound(s: LatencySnapshot, q: number): number | null {
  if (s.count === 0) return null;
  const want = q * s.count;
  for (let i = 0; i < s.boundsSeconds.length; i++) if (s.cumulativeCounts[i]! >= want) return s.boundsSeconds[i]!;
  return Infinity;
}
