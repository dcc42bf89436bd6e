// The inventory seam: what the daemon keeps about VMs, disks and events. Narrow on purpose:
// whole records by key plus an append-only event log, so a cluster mode can keep the same
// records in etcd (keys /vms/NAME, /disks/PATH, a revisioned event prefix).

import type { VmSpec } from "./spec.js";

/** What the user asked for. */
export type DesiredState = "running" | "paused" | "stopped";

/** What the daemon last saw. */
export type ObservedState = "stopped" | "starting" | "running" | "paused" | "stopping" | "crashed" | "failed" | "incoming";

export interface VmRecord {
  spec: VmSpec;
  desired: DesiredState;
  observed: ObservedState;
  /** The VM process while one runs (or ran last). */
  pid: number | null;
  /** Times the daemon restarted the VM under its restart policy. */
  restarts: number;
  /** Why the VM process last ended, as a sentence; null if it never ended. */
  lastExit: string | null;
  /** Set when the VM left this host by live migration (the URI it went to); a start is refused while set. */
  migratedTo?: string | null;
  /** The snapshot the VM was restored from, once that restore ran. */
  restoredFrom?: string;
  createdAt: string;
  updatedAt: string;
}

export interface EventRecord {
  seq: number;
  time: string;
  vm: string | null;
  type: string;
  message: string;
  data: Record<string, unknown>;
}

export interface DiskRecord {
  path: string;
  format: string;
  virtualSize: number;
  createdAt: string;
  /** What made it: "create", "clone of X". */
  origin: string;
}

export interface InventoryStore {
  getVm(name: string): VmRecord | null;
  listVms(): VmRecord[];
  /** Creates or replaces the record under spec.name. */
  putVm(record: VmRecord): void;
  deleteVm(name: string): boolean;
  appendEvent(event: Omit<EventRecord, "seq" | "time">): EventRecord;
  /** Events after `afterSeq`, oldest first, at most `limit`. */
  listEvents(afterSeq: number, limit: number, vm?: string): EventRecord[];
  putDisk(record: DiskRecord): void;
  listDisks(): DiskRecord[];
  close(): void;
}
