// Admission control: a VM may start only if what running VMs were promised, plus what it asks
// for, fits the host's capacity times the overcommit ratios.

import { formatSize } from "../storage/sizes.js";
import { noCapacity } from "./errors.js";

export interface HostCapacity {
  cores: number;
  memoryBytes: number;
  /** vCPUs promised per host core. */
  cpuOvercommit: number;
  /** Guest RAM promised per byte of host memory. */
  memoryOvercommit: number;
}


export interface Allocation {
  vcpus: number;
  memoryBytes: number;
}

/** What is promised to the VMs listed (running, paused or starting). */
export function promised(vms: Iterable<Allocation>): Allocation {
  let vcpus = 0;
  let memoryBytes = 0;
  for (const v of vms) {
    vcpus += v.vcpus;
    memoryBytes += v.memoryBytes;
  }
  return { vcpus, memoryBytes };
}

/** Throws a 409 ApiError saying what was asked and what is free, when `ask` does not fit. */
export function admit(capacity: HostCapacity, already: Allocation, ask: Allocation): void {
  const memoryLimit = capacity.memoryBytes * capacity.memoryOvercommit;
  const memoryFree = Math.max(0, memoryLimit - already.memoryBytes);
  if (ask.memoryBytes > memoryFree) {
    throw noCapacity(
      `not enough memory: asked ${formatSize(ask.memoryBytes)}, ${formatSize(memoryFree)} free under overcommit ratio ${capacity.memoryOvercommit}`,
    );
  }
  const cpuLimit = Math.floor(capacity.cores * capacity.cpuOvercommit);
  const cpuFree = Math.max(0, cpuLimit - already.vcpus);
  if (ask.vcpus > cpuFree) {
    throw noCapacity(`not enough CPU: asked ${ask.vcpus} vCPUs, ${cpuFree} free under overcommit ratio ${capacity.cpuOvercommit}`);
  }
}
