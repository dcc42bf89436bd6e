// The qcow2 header (versions 2 and 3) and its extensions, parsed from and encoded to bytes.
// Layout: QEMU docs/interop/qcow2.txt.

import { openError } from "./errors.js";

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 112;

export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_NAMES = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const INCOMPAT_DIRTY = 1;
export const INCOMPAT_CORRUPT = 2;
export const INCOMPAT_DATA_FILE = 4;
export const INCOMPAT_COMPRESSION = 8;
export const INCOMPAT_EXTL2 = 16;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
export const COMPAT_LAZY_REFCOUNTS = 1;

// QEMU's own limits, so an image we accept is one QEMU accepts too.
const MAX_L1_BYTES = 32 * 1024 * 1024;
const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
const MAX_BACKING_NAME = 1023;

export interface HeaderExtension {
  type: number;
  data: Uint8Array;
}

export interface FeatureName {
  kind: number; // 0 incompatible, 1 compatible, 2 autoclear
  bit: number;
  name: string;
}

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  /** Every extension as found, in order, so unknown ones survive a rewrite. */
  extensions: HeaderExtension[];
  backingFile: string | null;
  backingFormat: string | null;
  featureNames: FeatureName[];
}

function u64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 2 ** 32 + b.readUInt32BE(off + 4);
}

function u64checked(b: Buffer, off: number, path: string, field: string): number {
  const hi = b.readUInt32BE(off);
  if (hi >= 2 ** 21) throw openError(path, `header field ${field} is too large`);
  return hi * 2 ** 32 + b.readUInt32BE(off + 4);
}

function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), off);
  b.writeUInt32BE(v % 2 ** 32, off + 4);
}

/** Parses the header from the first bytes of the file (at least one cluster or the whole file) and validates it against the file size. */
export function parseHeader(b: Buffer, path: string, fileSize: number): Qcow2Header {
  if (b.length < V2_HEADER_LENGTH || b.readUInt32BE(0) !== QCOW2_MAGIC) throw openError(path, "not a qcow2 image (bad magic)");
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw openError(path, `unsupported qcow2 version ${version}`);
  const clusterBits = b.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) throw openError(path, `unsupported cluster size 2^${clusterBits} (must be 512 B to 2 MiB)`);
  const clusterSize = 2 ** clusterBits;
  const h: Qcow2Header = {
    version,
    backingFileOffset: u64checked(b, 8, path, "backing_file_offset"),
    backingFileSize: b.readUInt32BE(16),
    clusterBits,
    size: u64checked(b, 24, path, "size"),
    cryptMethod: b.readUInt32BE(32),
    l1Size: b.readUInt32BE(36),
    l1TableOffset: u64checked(b, 40, path, "l1_table_offset"),
    refcountTableOffset: u64checked(b, 48, path, "refcount_table_offset"),
    refcountTableClusters: b.readUInt32BE(56),
    nbSnapshots: b.readUInt32BE(60),
    snapshotsOffset: u64checked(b, 64, path, "snapshots_offset"),
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: 0,
    extensions: [],
    backingFile: null,
    backingFormat: null,
    featureNames: [],
  };
  if (version === 3) {
    if (b.length < 104) throw openError(path, "truncated version 3 header");
    h.incompatible = b.readBigUInt64BE(72);
    h.compatible = b.readBigUInt64BE(80);
    h.autoclear = b.readBigUInt64BE(88);
    h.refcountOrder = b.readUInt32BE(96);
    h.headerLength = b.readUInt32BE(100);
    if (h.headerLength < 104 || h.headerLength % 8 !== 0 || h.headerLength > Math.min(clusterSize, b.length)) {
      throw openError(path, `invalid header length ${h.headerLength}`);
    }
    if (h.headerLength > 104) h.compressionType = b[104];
  }
  const extEnd = Math.min(clusterSize, b.length);
  parseExtensions(b, h, path, extEnd);

  const unknown = h.incompatible & ~BigInt(INCOMPAT_KNOWN);
  if (unknown !== 0n) {
    for (let bit = 0; bit < 64; bit++) {
      if (unknown & (1n << BigInt(bit))) {
        const named = h.featureNames.find((f) => f.kind === 0 && f.bit === bit);
        const label = named ? ` (${named.name})` : "";
        throw openError(path, `unknown incompatible feature bit ${bit}${label}`);
      }
    }
  }
  if (h.incompatible & BigInt(INCOMPAT_COMPRESSION) && h.compressionType !== 0) {
    throw openError(path, `unsupported compression type ${h.compressionType} (only deflate is supported)`);
  }
  if (h.cryptMethod !== 0) throw openError(path, "encrypted qcow2 images are not supported");
  if (h.refcountOrder > 6) throw openError(path, `invalid refcount order ${h.refcountOrder}`);

  const aligned = (v: number): boolean => v % clusterSize === 0;
  if (!aligned(h.l1TableOffset) || !aligned(h.refcountTableOffset) || (h.nbSnapshots > 0 && !aligned(h.snapshotsOffset))) {
    throw openError(path, "a metadata table offset in the header is not cluster-aligned");
  }
  if (h.l1Size * 8 > MAX_L1_BYTES) throw openError(path, `L1 table of ${h.l1Size} entries is too large`);
  const l2Entries = clusterSize / 8;
  const neededL1 = Math.ceil(h.size / (clusterSize * l2Entries));
  if (h.l1Size < neededL1) throw openError(path, `L1 table of ${h.l1Size} entries is too small for a ${h.size}-byte disk`);
  if (h.l1Size > 0 && (h.l1TableOffset === 0 || h.l1TableOffset + h.l1Size * 8 > fileSize)) {
    throw openError(path, "L1 table lies outside the file");
  }
  if (h.refcountTableClusters === 0 || h.refcountTableClusters * clusterSize > MAX_REFTABLE_BYTES) {
    throw openError(path, `invalid refcount table size of ${h.refcountTableClusters} clusters`);
  }
  if (h.refcountTableOffset === 0 || h.refcountTableOffset + h.refcountTableClusters * clusterSize > fileSize) {
    throw openError(path, "refcount table lies outside the file");
  }
  if (h.nbSnapshots > MAX_SNAPSHOTS) throw openError(path, `too many snapshots (${h.nbSnapshots})`);
  if (h.nbSnapshots > 0 && h.snapshotsOffset >= fileSize) throw openError(path, "snapshot table lies outside the file");

  if (h.backingFileOffset !== 0) {
    if (h.backingFileSize > MAX_BACKING_NAME || h.backingFileOffset + h.backingFileSize > extEnd) {
      throw openError(path, "backing file name lies outside the first cluster");
    }
    h.backingFile = b.toString("utf8", h.backingFileOffset, h.backingFileOffset + h.backingFileSize);
  }
  return h;
}

function parseExtensions(b: Buffer, h: Qcow2Header, path: string, end: number): void {
  let off = h.headerLength;
  for (let count = 0; off + 8 <= end; count++) {
    const type = b.readUInt32BE(off);
    const len = b.readUInt32BE(off + 4);
    if (type === EXT_END) return;
    if (off + 8 + len > end || count > 1000) throw openError(path, `header extension 0x${type.toString(16)} runs past the first cluster`);
    const data = Uint8Array.prototype.slice.call(b, off + 8, off + 8 + len);
    h.extensions.push({ type, data });
    if (type === EXT_BACKING_FORMAT) h.backingFormat = Buffer.from(data).toString("utf8");
    if (type === EXT_FEATURE_NAMES) {
      for (let i = 0; i + 48 <= len; i += 48) {
        const raw = Buffer.from(data.subarray(i + 2, i + 48)).toString("utf8");
        h.featureNames.push({ kind: data[i], bit: data[i + 1], name: raw.replace(/\0.*$/s, "") });
      }
    }
    if (type === EXT_DATA_FILE) throw openError(path, "images with an external data file are not supported");
    off += 8 + Math.ceil(len / 8) * 8;
  }
}

/** The fixed header fields (not the extensions); written in place in one sector-sized write. */
export function encodeHeaderFields(h: Qcow2Header, base?: Uint8Array): Buffer {
  const len = h.version === 3 ? h.headerLength : V2_HEADER_LENGTH;
  // Start from the bytes on disk so header fields newer than this code survive.
  const b = base ? Buffer.from(base.subarray(0, len)) : Buffer.alloc(len);
  b.writeUInt32BE(QCOW2_MAGIC, 0);
  b.writeUInt32BE(h.version, 4);
  writeU64(b, 8, h.backingFileOffset);
  b.writeUInt32BE(h.backingFileSize, 16);
  b.writeUInt32BE(h.clusterBits, 20);
  writeU64(b, 24, h.size);
  b.writeUInt32BE(h.cryptMethod, 32);
  b.writeUInt32BE(h.l1Size, 36);
  writeU64(b, 40, h.l1TableOffset);
  writeU64(b, 48, h.refcountTableOffset);
  b.writeUInt32BE(h.refcountTableClusters, 56);
  b.writeUInt32BE(h.nbSnapshots, 60);
  writeU64(b, 64, h.snapshotsOffset);
  if (h.version === 3) {
    b.writeBigUInt64BE(h.incompatible, 72);
    b.writeBigUInt64BE(h.compatible, 80);
    b.writeBigUInt64BE(h.autoclear, 88);
    b.writeUInt32BE(h.refcountOrder, 96);
    b.writeUInt32BE(h.headerLength, 100);
    if (h.headerLength > 104) b[104] = h.compressionType;
  }
  return b;
}

/** Extensions followed by the end marker, then the backing file name; returns the bytes after the fixed fields and where the name starts. */
export function encodeTail(h: Qcow2Header, start: number): { bytes: Buffer; backingOffset: number } {
  const parts: Buffer[] = [];
  let off = start;
  for (const e of h.extensions) {
    const padded = Math.ceil(e.data.length / 8) * 8;
    const b = Buffer.alloc(8 + padded);
    b.writeUInt32BE(e.type, 0);
    b.writeUInt32BE(e.data.length, 4);
    b.set(e.data, 8);
    parts.push(b);
    off += b.length;
  }
  parts.push(Buffer.alloc(8));
  off += 8;
  const name = Buffer.from(h.backingFile ?? "", "utf8");
  parts.push(name);
  return { bytes: Buffer.concat(parts), backingOffset: h.backingFile ? off : 0 };
}

/** The feature name table QEMU writes, so tools can name the bits. */
export function featureNameTable(): Uint8Array {
  const names: Array<[number, number, string]> = [
    [0, 0, "dirty bit"],
    [0, 1, "corrupt bit"],
    [0, 2, "external data file"],
    [0, 3, "compression type"],
    [0, 4, "extended L2 entries"],
    [1, 0, "lazy refcounts"],
    [2, 0, "bitmaps"],
    [2, 1, "raw external data"],
  ];
  const b = Buffer.alloc(names.length * 48);
  names.forEach(([kind, bit, name], i) => {
    b[i * 48] = kind;
    b[i * 48 + 1] = bit;
    b.write(name, i * 48 + 2, 46, "utf8");
  });
  return b;
}

export { u64 as readU64, writeU64 };
