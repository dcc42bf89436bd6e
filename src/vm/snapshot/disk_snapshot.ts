// Point-in-time disks for VM snapshots, as QEMU's external snapshots do it: at the snapshot the
// disk file is frozen and the running VM goes on writing to a new qcow2 overlay backed by it;
// a restore starts its own overlay on the same frozen file. Memory and disks agree, and the
// running VM, the snapshot and every restored copy never write to the same file.

import { existsSync } from "node:fs";
import { createQcow2 } from "../../storage/qcow2/create.js";
import { openDisk, probeFormat, type DiskFormat } from "../../storage/open.js";
import type { RateLimitedBackend } from "../../storage/ratelimit/rate_limited_backend.js";
import { ConfigError, type DiskConfig } from "../config.js";

/** One disk as a snapshot keeps it. */
export interface SnapshotDisk {
  /** The guest's name for it: vda, vdb, ... */
  device: string;
  /** The file as it was at the snapshot; nothing writes to it any more. */
  frozen: string;
  format: DiskFormat;
  readOnly: boolean;
}

export const diskDevice = (index: number): string => `vd${String.fromCharCode(0x61 + index)}`;

/**
 * Freezes a writable disk of a paused VM with nothing in flight: flushes it, creates `overlay`
 * backed by the current file, and moves the VM onto it. Returns the frozen file's description.
 */
export async function freezeDisk(disk: RateLimitedBackend, active: DiskConfig, index: number, overlay: string): Promise<SnapshotDisk> {
  const format = active.format ?? (await probeFormat(active.path));
  const device = diskDevice(index);
  if (active.readOnly) return { device, frozen: active.path, format, readOnly: true };
  if (existsSync(overlay)) throw new ConfigError(`Cannot snapshot ${device}: "${overlay}" exists already; choose another snapshot path.`);
  await disk.flush();
  await createQcow2(overlay, { size: disk.size, backingFile: active.path, backingFormat: format });
  const next = await openDisk(overlay, { format: "qcow2" });
  const old = disk.replaceInner(next);
  await old.close();
  return { device, frozen: active.path, format, readOnly: false };
}

/** A restored VM's disks: its own overlay on each frozen writable disk (refused if it exists). */
export async function restoredDisks(disks: SnapshotDisk[], configs: DiskConfig[], overlayFor: (d: SnapshotDisk) => string): Promise<DiskConfig[]> {
  const out: DiskConfig[] = [];
  for (let i = 0; i < disks.length; i++) {
    const d = disks[i]!;
    const c = configs[i]!;
    if (d.readOnly) {
      out.push({ ...c, path: d.frozen, format: d.format, readOnly: true });
      continue;
    }
    if (!existsSync(d.frozen)) throw new ConfigError(`Cannot restore: the snapshot's ${d.device} "${d.frozen}" is missing.`);
    const overlay = overlayFor(d);
    if (existsSync(overlay)) {
      throw new ConfigError(`Cannot restore: "${overlay}" exists already (a VM restored under this name before); remove it or give --name.`);
    }
    const size = await openDisk(d.frozen, { format: d.format, readOnly: true }).then(async (b) => {
      const n = b.size;
      await b.close();
      return n;
    });
    await createQcow2(overlay, { size, backingFile: d.frozen, backingFormat: d.format });
    out.push({ ...c, path: overlay, format: "qcow2", readOnly: false });
  }
  return out;
}
