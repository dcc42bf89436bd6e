// The VHD footer and dynamic disk header (Microsoft Virtual Hard Disk Image Format Specification), big-endian.

import type { ImageFile } from "../read_only_image.js";

export const SECTOR = 512;
export const FOOTER_BYTES = 512;
export const DYNAMIC_HEADER_BYTES = 1024;
const FOOTER_COOKIE = "conectix";
const DYNAMIC_COOKIE = "cxsparse";
const FOOTER_CHECKSUM_AT = 64;
const DYNAMIC_CHECKSUM_AT = 36;
const SUPPORTED_MAJOR_VERSION = 1;

export enum DiskType {
  Fixed = 2,
  Dynamic = 3,
  Differencing = 4,
}

// Creators that mean current_size rather than the CHS geometry (Hyper-V, Disk2vhd, XenConverter, XenServer, qemu with force_size).
const CURRENT_SIZE_CREATORS = new Set(["win ", "d2v ", "CTXS", "tap\0", "qem2"]);
// CHS at its maximum cannot describe the disk, so the size field is used (as QEMU does).
const MAX_CHS_SECTORS = 65535 * 16 * 255;
// The largest VHD the format allows (2040 GiB), as QEMU enforces.
export const MAX_VHD_BYTES = 0xff000000 * SECTOR;
// Hyper-V uses at most 256 MiB blocks; larger ones only serve to make us allocate.
const MAX_BLOCK_BYTES = 256 << 20;

export interface VhdFooter {
  diskType: number;
  /** For dynamic and differencing disks, where the dynamic header is. */
  dataOffset: bigint;
  creatorApp: string;
  currentSize: number;
  chsSectors: number;
  /** The virtual size QEMU would report: CHS-derived for Virtual PC / qemu, current_size for Hyper-V and others. */
  virtualSize: number;
}

export interface DynamicHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockBytes: number;
}

/** Ones' complement of the byte sum, with the checksum field itself counted as zero. */
export function vhdChecksum(bytes: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (i < checksumAt || i >= checksumAt + 4) sum += bytes[i];
  }
  return ~sum >>> 0;
}

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

export function hasFooterCookie(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && ascii(bytes, 0, 8) === FOOTER_COOKIE;
}

/** Parses a footer (or its copy); returns a reason string when it is not a valid footer. */
export function parseFooter(bytes: Uint8Array, where: string): VhdFooter | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, FOOTER_BYTES);
  if (!hasFooterCookie(bytes)) return `the ${where} does not start with the "conectix" cookie`;
  const stored = view.getUint32(FOOTER_CHECKSUM_AT);
  const computed = vhdChecksum(bytes.subarray(0, FOOTER_BYTES), FOOTER_CHECKSUM_AT);
  if (stored !== computed) return `the ${where} checksum is 0x${hex(stored)} but its bytes sum to 0x${hex(computed)} (the footer is damaged)`;
  const major = view.getUint16(12);
  if (major !== SUPPORTED_MAJOR_VERSION) return `the ${where} has file format version ${major}.${view.getUint16(14)}, not 1.x`;
  const currentSize = view.getBigUint64(48);
  if (currentSize > BigInt(MAX_VHD_BYTES)) return `the ${where} gives a disk size of ${currentSize} bytes, more than the 2040 GiB a VHD can hold`;
  const chsSectors = view.getUint16(56) * view.getUint8(58) * view.getUint8(59);
  const creatorApp = ascii(bytes, 28, 4);
  const useCurrentSize = CURRENT_SIZE_CREATORS.has(creatorApp) || chsSectors === MAX_CHS_SECTORS;
  const size = useCurrentSize ? Number(currentSize) : chsSectors * SECTOR;
  return {
    diskType: view.getUint32(60),
    dataOffset: view.getBigUint64(16),
    creatorApp,
    currentSize: Number(currentSize),
    chsSectors,
    virtualSize: size - (size % SECTOR),
  };
}

export function parseDynamicHeader(file: ImageFile, bytes: Uint8Array): DynamicHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, DYNAMIC_HEADER_BYTES);
  if (ascii(bytes, 0, 8) !== DYNAMIC_COOKIE) throw file.error('the dynamic disk header does not start with the "cxsparse" cookie');
  const stored = view.getUint32(DYNAMIC_CHECKSUM_AT);
  const computed = vhdChecksum(bytes.subarray(0, DYNAMIC_HEADER_BYTES), DYNAMIC_CHECKSUM_AT);
  if (stored !== computed) {
    throw file.error(`the dynamic disk header checksum is 0x${hex(stored)} but its bytes sum to 0x${hex(computed)} (the header is damaged)`);
  }
  const major = view.getUint16(24);
  if (major !== SUPPORTED_MAJOR_VERSION) throw file.error(`the dynamic disk header has version ${major}.${view.getUint16(26)}, not 1.x`);
  const tableOffset = view.getBigUint64(16);
  const blockBytes = view.getUint32(32);
  if (blockBytes < SECTOR || blockBytes > MAX_BLOCK_BYTES || (blockBytes & (blockBytes - 1)) !== 0) {
    throw file.error(`the dynamic disk header gives an invalid block size of ${blockBytes} bytes (must be a power of two from 512 bytes to 256 MiB)`);
  }
  if (tableOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw file.error("the block allocation table offset points past the end of the file");
  return { tableOffset: Number(tableOffset), maxTableEntries: view.getUint32(28), blockBytes };
}

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}
