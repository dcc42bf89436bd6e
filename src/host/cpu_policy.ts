// Shares → caps: when the VMs together want more CPU than the host gives them, each gets a part
// in proportion to its shares (weighted max-min fairness: a VM that wants less than its part
// keeps only what it wants, and the rest is shared among the others). The daemon runs this
// every second from measured demand and sends each VM its cap over the control socket.

export interface CpuDemand {
  name: string;
  vcpus: number;
  shares: number;
  /** The user's own cap, per cent of a core per vCPU; null: none. */
  userCap: number | null;
  /** Cores the VM wanted over the last interval: what it ran plus what its cap held back. */
  wantedCores: number;
}

/** Demand within this much of the capacity counts as contention (the measurement is noisy). */
const CONTENTION_MARGIN = 0.95;
/** A VM is never capped below this, so it can always make progress and show its demand. */
const MIN_CAP_PERCENT = 2;

/** Per-VM cap (per cent of a core per vCPU, or null for none) for `capacityCores` of host CPU. */
export function capsFromShares(capacityCores: number, vms: readonly CpuDemand[]): Map<string, number | null> {
  const caps = new Map<string, number | null>();
  const limitOf = (v: CpuDemand): number => (v.vcpus * (v.userCap ?? 100)) / 100;
  const total = vms.reduce((sum, v) => sum + Math.min(v.wantedCores, limitOf(v)), 0);
  if (total < capacityCores * CONTENTION_MARGIN) {
    for (const v of vms) caps.set(v.name, v.userCap);
    return caps;
  }
  // Water-filling: give each unsatisfied VM its share of what is left, until nothing is left.
  const grant = new Map<string, number>(vms.map((v) => [v.name, 0]));
  let open = vms.filter((v) => v.shares > 0);
  let left = capacityCores;
  while (open.length > 0 && left > 1e-9) {
    const shareSum = open.reduce((s, v) => s + v.shares, 0);
    const stillOpen: CpuDemand[] = [];
    let handed = 0;
    for (const v of open) {
      const want = Math.min(Math.max(v.wantedCores, 0), limitOf(v)) - grant.get(v.name)!;
      const part = (left * v.shares) / shareSum;
      const give = Math.min(part, want);
      grant.set(v.name, grant.get(v.name)! + give);
      handed += give;
      if (part < want) stillOpen.push(v);
    }
    left -= handed;
    if (stillOpen.length === open.length) break; // everyone took a full part: all is handed out
    open = stillOpen;
  }
  for (const v of vms) {
    const percent = (grant.get(v.name)! / v.vcpus) * 100;
    caps.set(v.name, Math.max(MIN_CAP_PERCENT, Math.min(v.userCap ?? 100, Math.round(percent))));
  }
  return caps;
}
