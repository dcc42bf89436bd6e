// What a whole-VM snapshot holds besides RAM, as named plain types (never positional arrays),
// and the checks a restore makes before anything runs.

import type { HartState } from "../../cpu/hart.js";
import type { BoardState } from "../../machine/board.js";
import type { VmConfig } from "../config.js";
import { SnapshotError, type SnapshotFileInfo } from "./snapshot_file.js";
import type { SnapshotDisk } from "./disk_snapshot.js";

export const SNAPSHOT_KIND = "nodevisor-vm-snapshot";

/** The VM's own bookkeeping that the guest's state depends on. */
export interface VmRuntimeState {
  /** The command's exit status, once /init reported it. */
  commandStatus: number | null;
  /** /init listens on the status console (resize and power-down requests reach it). */
  guestListening: boolean;
  consoleSize: { rows: number; cols: number } | null;
}

export interface VmSnapshotHeader {
  kind: typeof SNAPSHOT_KIND;
  savedAt: string;
  /** The VM's shape; a restore builds the same machine from it. */
  config: VmConfig;
  clock: { ticks: number };
  harts: HartState[];
  board: BoardState;
  vm: VmRuntimeState;
  /** Each disk's frozen file, in config.disks order. */
  disks: SnapshotDisk[];
}

export interface SnapshotResult {
  path: string;
  bytes: number;
  /** Non-zero RAM pages written (4 KiB each). */
  ramPages: number;
  /** How long the guest was stopped for the snapshot, in ms. */
  pausedMs: number;
  /** Rounds of pages written while the guest ran (0 for a paused VM). */
  rounds: number;
  /** Where each writable disk now continues (an overlay on the frozen file the snapshot keeps). */
  disks: Array<{ device: string; frozen: string; active: string }>;
}

export type VmSnapshotInfo = SnapshotFileInfo<VmSnapshotHeader>;

/** What a snapshot cannot yet carry; null when the VM can be saved. */
export function snapshotUnsupported(c: VmConfig): string | null {
  if (c.firmware) return "it boots through guest firmware (--firmware), whose M-mode state is not saved yet";
  return null;
}

/** Checks a snapshot header's shape before anything is built from it. */
export function checkSnapshotHeader(path: string, h: VmSnapshotHeader): void {
  const bad = (why: string) => new SnapshotError(`"${path}" is not a usable nodevisor snapshot: ${why}.`);
  if (h?.kind !== SNAPSHOT_KIND) throw bad("its header is not a VM snapshot's");
  const c = h.config;
  if (typeof c?.memoryBytes !== "number" || typeof c.cpus !== "number" || !Array.isArray(c.disks)) throw bad("its VM configuration is incomplete");
  if (!Array.isArray(h.harts) || h.harts.length !== c.cpus) throw bad(`it holds ${h.harts?.length} harts for ${c.cpus} vCPUs`);
  if (typeof h.clock?.ticks !== "number" || !Number.isFinite(h.clock.ticks)) throw bad("its clock is missing");
  if (typeof h.board !== "object" || h.board === null || !Array.isArray(h.board.virtio)) throw bad("its device state is missing");
  if (!Array.isArray(h.disks) || h.disks.length !== c.disks.length) throw bad("its disk list does not match its configuration");
}
