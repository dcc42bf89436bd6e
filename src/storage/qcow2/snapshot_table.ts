// The internal snapshot table: one variable-length entry per snapshot, 8-byte aligned.

import { openError } from "./errors.js";
import { readU64, writeU64 } from "./header.js";

export interface SnapshotEntry {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  /** Virtual disk size when taken (v3 extra data), or null if the entry does not record it. */
  diskSize: number | null;
  /** Extra data bytes past the fields we know, kept as found. */
  extraTail: Uint8Array;
}

const MAX_TABLE_BYTES = 64 * 1024 * 1024;

export function parseSnapshotTable(b: Buffer, count: number, path: string, clusterSize: number, version: number): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 40 > b.length) throw openError(path, "snapshot table is truncated");
    const extraSize = b.readUInt32BE(off + 36);
    const idSize = b.readUInt16BE(off + 12);
    const nameSize = b.readUInt16BE(off + 14);
    const total = 40 + extraSize + idSize + nameSize;
    if (extraSize > 1024 || off + total > b.length) throw openError(path, `snapshot entry ${i} is malformed`);
    const e: SnapshotEntry = {
      l1TableOffset: readU64(b, off),
      l1Size: b.readUInt32BE(off + 8),
      id: b.toString("utf8", off + 40 + extraSize, off + 40 + extraSize + idSize),
      name: b.toString("utf8", off + 40 + extraSize + idSize, off + total),
      dateSec: b.readUInt32BE(off + 16),
      dateNsec: b.readUInt32BE(off + 20),
      vmClockNsec: readU64(b, off + 24),
      vmStateSize: b.readUInt32BE(off + 32),
      diskSize: null,
      extraTail: new Uint8Array(0),
    };
    if (extraSize >= 8) {
      const large = readU64(b, off + 40);
      if (large > 0) e.vmStateSize = large;
    }
    if (extraSize >= 16) e.diskSize = readU64(b, off + 48);
    if (extraSize > 16) e.extraTail = Uint8Array.prototype.slice.call(b, off + 56, off + 40 + extraSize);
    if (version >= 3 && extraSize < 16) throw openError(path, `snapshot entry ${i} lacks the extra data version 3 requires`);
    if (e.l1TableOffset % clusterSize !== 0 || e.l1Size * 8 > 32 * 1024 * 1024) {
      throw openError(path, `snapshot "${e.name}" has an invalid L1 table`);
    }
    if (e.diskSize !== null && e.diskSize > Number.MAX_SAFE_INTEGER) throw openError(path, `snapshot "${e.name}" has an invalid disk size`);
    out.push(e);
    off += Math.ceil(total / 8) * 8;
  }
  return out;
}

export function encodeSnapshotTable(entries: SnapshotEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const id = Buffer.from(e.id, "utf8");
    const name = Buffer.from(e.name, "utf8");
    const extraSize = 16 + e.extraTail.length;
    const total = 40 + extraSize + id.length + name.length;
    const b = Buffer.alloc(Math.ceil(total / 8) * 8);
    writeU64(b, 0, e.l1TableOffset);
    b.writeUInt32BE(e.l1Size, 8);
    b.writeUInt16BE(id.length, 12);
    b.writeUInt16BE(name.length, 14);
    b.writeUInt32BE(e.dateSec, 16);
    b.writeUInt32BE(e.dateNsec, 20);
    writeU64(b, 24, e.vmClockNsec);
    b.writeUInt32BE(e.vmStateSize > 0xffffffff ? 0 : e.vmStateSize, 32);
    b.writeUInt32BE(extraSize, 36);
    writeU64(b, 40, e.vmStateSize);
    writeU64(b, 48, e.diskSize ?? 0);
    b.set(e.extraTail, 56);
    id.copy(b, 40 + extraSize);
    name.copy(b, 40 + extraSize + id.length);
    parts.push(b);
  }
  const out = Buffer.concat(parts);
  if (out.length > MAX_TABLE_BYTES) throw new RangeError("snapshot table would exceed 64 MiB");
  return out;
}

/** Bytes the table at the given count occupies, found by walking it (entries vary in size). */
export function snapshotTableLength(b: Buffer, count: number): number {
  let off = 0;
  for (let i = 0; i < count; i++) {
    const total = 40 + b.readUInt32BE(off + 36) + b.readUInt16BE(off + 12) + b.readUInt16BE(off + 14);
    off += Math.ceil(total / 8) * 8;
  }
  return off;
}
