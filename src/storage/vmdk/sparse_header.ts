// The 512-byte header of a hosted sparse extent (VMware Virtual Disk Format 1.1, "KDMV").

import type { ImageFile } from "../read_only_image.js";

export const SECTOR = 512;
const KDMV_MAGIC = 0x564d444b;
/** gdOffset value meaning "the real header is in the footer at the end of the file" (streamOptimized). */
export const GD_AT_END = 0xffffffffffffffffn;
const FLAG_NEWLINE_TEST = 1 << 0;
const FLAG_ZEROED_GRAIN_GTE = 1 << 2;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const COMPRESSION_NONE = 0;
const COMPRESSION_DEFLATE = 1;
// Spec: 512 entries per grain table; QEMU refuses more.
const MAX_GTES_PER_GT = 512;
// Bounds decompression buffers; VMware uses 64 KiB grains.
const MAX_GRAIN_SECTORS = 0x20000;

export interface SparseHeader {
  version: number;
  capacitySectors: number;
  grainSectors: number;
  descriptorOffsetSectors: number;
  descriptorSectors: number;
  gtesPerGt: number;
  gdOffsetSectors: bigint;
  compressed: boolean;
  hasMarkers: boolean;
  /** GTE value 1 means "this grain reads as zeroes". */
  zeroedGrainGte: boolean;
}

export function hasSparseMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === KDMV_MAGIC;
}

function safeNumber(file: ImageFile, value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw file.error(`the sparse header's ${field} (${value}) is too large`);
  return Number(value);
}

/** Parses and validates a header sector; `where` says which copy ("header", "footer") for error messages. */
export function parseSparseHeader(file: ImageFile, bytes: Uint8Array, where: string): SparseHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, SECTOR);
  if (view.getUint32(0, true) !== KDMV_MAGIC) throw file.error(`the sparse extent ${where} does not start with the "KDMV" magic`);
  const version = view.getUint32(4, true);
  if (version < 1 || version > 3) throw file.error(`unsupported sparse extent version ${version} in the ${where}`);
  const flags = view.getUint32(8, true);
  const capacitySectors = safeNumber(file, view.getBigUint64(12, true), "capacity");
  const grainSectors = safeNumber(file, view.getBigUint64(20, true), "grain size");
  const descriptorOffsetSectors = safeNumber(file, view.getBigUint64(28, true), "descriptor offset");
  const descriptorSectors = safeNumber(file, view.getBigUint64(36, true), "descriptor size");
  const gtesPerGt = view.getUint32(44, true);
  const gdOffsetSectors = view.getBigUint64(56, true);
  const compressAlgorithm = view.getUint16(77, true);

  if (flags & FLAG_NEWLINE_TEST && !(bytes[73] === 0x0a && bytes[74] === 0x20 && bytes[75] === 0x0d && bytes[76] === 0x0a)) {
    throw file.error(`the ${where}'s line-ending check bytes are damaged (was the file copied in text mode?)`);
  }
  if (capacitySectors * SECTOR > Number.MAX_SAFE_INTEGER) throw file.error(`the disk capacity in the ${where} is too large`);
  if (grainSectors < 1 || grainSectors > MAX_GRAIN_SECTORS || (grainSectors & (grainSectors - 1)) !== 0) {
    throw file.error(`invalid grain size of ${grainSectors} sectors in the ${where} (must be a power of two up to ${MAX_GRAIN_SECTORS})`);
  }
  if (gtesPerGt < 1 || gtesPerGt > MAX_GTES_PER_GT) {
    throw file.error(`invalid number of grain table entries (${gtesPerGt}) in the ${where}; at most ${MAX_GTES_PER_GT} are allowed`);
  }
  const compressed = (flags & FLAG_COMPRESSED) !== 0;
  if (compressed && compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw file.error(`unsupported grain compression algorithm ${compressAlgorithm} in the ${where}`);
  }
  if (!compressed && compressAlgorithm !== COMPRESSION_NONE && compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw file.error(`unknown compression algorithm ${compressAlgorithm} in the ${where}`);
  }
  const hasMarkers = (flags & FLAG_MARKERS) !== 0;
  // Without a marker the compressed length of a grain is unknown; no known writer produces this.
  if (compressed && !hasMarkers) throw file.error(`compressed grains without grain markers are not supported`);
  return {
    version,
    capacitySectors,
    grainSectors,
    descriptorOffsetSectors,
    descriptorSectors,
    gtesPerGt,
    gdOffsetSectors,
    compressed,
    hasMarkers,
    zeroedGrainGte: (flags & FLAG_ZEROED_GRAIN_GTE) !== 0,
  };
}
