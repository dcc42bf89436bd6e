// L1 and L2 table entries as plain numbers (host offsets stay below 2^53).

export const ENTRY_COPIED_HI = 0x80000000; // bit 63: refcount is exactly 1, write in place
export const ENTRY_COMPRESSED_HI = 0x40000000; // bit 62
export const ENTRY_ZERO_LO = 1; // bit 0 (v3): reads as zeroes

export const enum ClusterKind {
  Unallocated,
  /** Reads as zero; may still own a preallocated host cluster. */
  Zero,
  Normal,
  Compressed,
}

export interface L2Entry {
  kind: ClusterKind;
  /** Host offset of the cluster (Normal, Zero with preallocation), or of the compressed bytes. */
  offset: number;
  copied: boolean;
  /** Compressed only: bytes to read at offset. */
  compressedLength: number;
}

/** Host offset bits 9..55 of a standard entry. */
export function entryOffset(t: Buffer, index: number): number {
  return (t.readUInt32BE(index * 8) & 0x00ffffff) * 2 ** 32 + (t.readUInt32BE(index * 8 + 4) & 0xfffffe00);
}

export function entryCopied(t: Buffer, index: number): boolean {
  return (t.readUInt32BE(index * 8) & ENTRY_COPIED_HI) !== 0;
}

export function setEntry(t: Buffer, index: number, hiFlags: number, offset: number, loFlags = 0): void {
  t.writeUInt32BE((hiFlags | Math.floor(offset / 2 ** 32)) >>> 0, index * 8);
  t.writeUInt32BE(((offset % 2 ** 32) | loFlags) >>> 0, index * 8 + 4);
}

export function decodeL2(t: Buffer, index: number, clusterBits: number, version: number): L2Entry {
  const hi = t.readUInt32BE(index * 8);
  const lo = t.readUInt32BE(index * 8 + 4);
  const copied = (hi & ENTRY_COPIED_HI) !== 0;
  if (hi & ENTRY_COMPRESSED_HI) {
    // Compressed descriptor: host offset in bits 0..x-1, extra 512-byte sectors in bits x..61.
    const v = ((BigInt(hi) << 32n) | BigInt(lo)) & ((1n << 62n) - 1n);
    const x = BigInt(62 - (clusterBits - 8));
    const offset = Number(v & ((1n << x) - 1n));
    const sectors = Number(v >> x) + 1;
    return { kind: ClusterKind.Compressed, offset, copied: false, compressedLength: sectors * 512 - (offset % 512) };
  }
  const offset = (hi & 0x00ffffff) * 2 ** 32 + (lo & 0xfffffe00);
  if (version >= 3 && lo & ENTRY_ZERO_LO) return { kind: ClusterKind.Zero, offset, copied, compressedLength: 0 };
  if (offset === 0) return { kind: ClusterKind.Unallocated, offset: 0, copied: false, compressedLength: 0 };
  return { kind: ClusterKind.Normal, offset, copied, compressedLength: 0 };
}

/** Host clusters a compressed run touches (each holds one reference). */
export function compressedClusters(e: L2Entry, clusterSize: number): number[] {
  const first = Math.floor(e.offset / clusterSize);
  const last = Math.floor((e.offset + e.compressedLength - 1) / clusterSize);
  const out: number[] = [];
  for (let c = first; c <= last; c++) out.push(c * clusterSize);
  return out;
}
