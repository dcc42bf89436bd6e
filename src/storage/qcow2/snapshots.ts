// Internal snapshots: create, list, apply (revert), delete. Each snapshot owns a copy of the
// L1 table; L2 tables and data clusters are shared and counted once per tree that reaches them,
// so the active image copies a shared cluster before writing (COPIED flag clear).

import { syncCopiedFlags } from "./copied_flags.js";
import { Qcow2Error } from "./errors.js";
import { MAX_SNAPSHOTS } from "./header.js";
import type { Qcow2Image } from "./image.js";
import { encodeSnapshotTable, type SnapshotEntry } from "./snapshot_table.js";
import { addTreeRefs, readL1 } from "./tree.js";

export interface SnapshotInfo {
  id: string;
  name: string;
  /** Seconds since the epoch when the snapshot was taken. */
  dateSec: number;
  vmStateSize: number;
  diskSize: number | null;
}

export function listSnapshots(img: Qcow2Image): SnapshotInfo[] {
  return img.snapshots.map((s) => ({ id: s.id, name: s.name, dateSec: s.dateSec, vmStateSize: s.vmStateSize, diskSize: s.diskSize }));
}

function find(img: Qcow2Image, nameOrId: string): SnapshotEntry {
  const s = img.snapshots.find((x) => x.name === nameOrId) ?? img.snapshots.find((x) => x.id === nameOrId);
  if (!s) throw new Qcow2Error(`Disk "${img.path}" has no snapshot named "${nameOrId}"`);
  return s;
}

function writable(img: Qcow2Image, verb: string): void {
  if (img.readOnly) throw new Qcow2Error(`Cannot ${verb} on disk "${img.path}": it is open read-only`);
}

/** Writes a new snapshot table, switches the header to it, then frees the old one. */
async function saveTable(img: Qcow2Image, entries: SnapshotEntry[]): Promise<void> {
  const cs = img.clusterSize;
  const bytes = encodeSnapshotTable(entries);
  const h = img.header;
  let offset = 0;
  if (bytes.length > 0) {
    offset = await img.refcounts.alloc(Math.ceil(bytes.length / cs));
    await img.file.write(offset, bytes);
    await img.file.sync();
  }
  const oldOffset = h.snapshotsOffset;
  const oldClusters = h.nbSnapshots > 0 ? Math.ceil(img.snapshotTableBytes / cs) : 0;
  h.snapshotsOffset = offset;
  h.nbSnapshots = entries.length;
  await img.writeHeader();
  await img.file.sync();
  img.snapshots = entries;
  img.snapshotTableBytes = bytes.length;
  for (let c = 0; c < oldClusters; c++) await img.refcounts.changeAt(oldOffset + c * cs, -1);
}

export async function createSnapshot(img: Qcow2Image, name: string): Promise<SnapshotInfo> {
  writable(img, "create a snapshot");
  if (name === "" || Buffer.byteLength(name) > 65535) throw new Qcow2Error(`Invalid snapshot name "${name}"`);
  return img.exclusive(async () => {
    if (img.snapshots.some((s) => s.name === name)) throw new Qcow2Error(`Disk "${img.path}" already has a snapshot named "${name}"`);
    if (img.snapshots.length >= MAX_SNAPSHOTS) throw new Qcow2Error(`Disk "${img.path}" has too many snapshots`);
    const cs = img.clusterSize;
    const l1Size = img.header.l1Size;
    // 1. The snapshot's own copy of the L1 table (COPIED flags mean nothing there).
    const copy = Buffer.from(img.l1.subarray(0, l1Size * 8));
    for (let i = 0; i < l1Size; i++) copy[i * 8] &= 0x7f;
    const l1Offset = l1Size > 0 ? await img.refcounts.alloc(Math.ceil((l1Size * 8) / cs)) : 0;
    if (l1Size > 0) await img.file.write(l1Offset, copy);
    // 2. One more reference to every L2 table and data cluster; 3. they are now shared.
    await addTreeRefs(img, img.l1, l1Size, +1);
    await img.file.sync();
    await syncCopiedFlags(img);
    const maxId = img.snapshots.reduce((m, s) => Math.max(m, Number.parseInt(s.id, 10) || 0), 0);
    const now = Date.now();
    const entry: SnapshotEntry = {
      l1TableOffset: l1Offset,
      l1Size,
      id: String(maxId + 1),
      name,
      dateSec: Math.floor(now / 1000),
      dateNsec: (now % 1000) * 1e6,
      vmClockNsec: 0,
      vmStateSize: 0,
      diskSize: img.header.size,
      extraTail: new Uint8Array(0),
    };
    // 4. Only now does the snapshot exist.
    await saveTable(img, [...img.snapshots, entry]);
    await img.file.sync();
    return { id: entry.id, name, dateSec: entry.dateSec, vmStateSize: 0, diskSize: entry.diskSize };
  });
}

/** Reverts the active image to a snapshot (the snapshot stays). */
export async function applySnapshot(img: Qcow2Image, nameOrId: string): Promise<void> {
  writable(img, "apply a snapshot");
  await img.exclusive(async () => {
    const sn = find(img, nameOrId);
    const snL1 = await readL1(img, sn.l1TableOffset, sn.l1Size);
    if (sn.l1Size > img.header.l1Size) await img.growL1(sn.l1Size);
    const l1Size = img.header.l1Size;
    const old = Buffer.from(img.l1.subarray(0, l1Size * 8));
    // References for the new active tree first, then switch, then drop the old tree's.
    await addTreeRefs(img, snL1, sn.l1Size, +1);
    await img.file.sync();
    const next = Buffer.alloc(l1Size * 8);
    snL1.copy(next);
    next.copy(img.l1, 0);
    await img.file.write(img.header.l1TableOffset, next);
    await img.file.sync();
    await addTreeRefs(img, old, l1Size, -1);
    await syncCopiedFlags(img);
    if (sn.diskSize !== null && sn.diskSize !== img.header.size && sn.diskSize > 0) {
      img.header.size = sn.diskSize;
      await img.writeHeader();
      img.size = sn.diskSize - (sn.diskSize % 512);
    }
    await img.file.sync();
  });
}

export async function deleteSnapshot(img: Qcow2Image, nameOrId: string): Promise<void> {
  writable(img, "delete a snapshot");
  await img.exclusive(async () => {
    const sn = find(img, nameOrId);
    // Forget the snapshot first: a crash after this only leaks its clusters.
    await saveTable(img, img.snapshots.filter((s) => s !== sn));
    const snL1 = await readL1(img, sn.l1TableOffset, sn.l1Size);
    await addTreeRefs(img, snL1, sn.l1Size, -1);
    const cs = img.clusterSize;
    for (let c = 0; c < Math.ceil((sn.l1Size * 8) / cs); c++) await img.refcounts.changeAt(sn.l1TableOffset + c * cs, -1);
    await syncCopiedFlags(img);
    await img.file.sync();
  });
}
