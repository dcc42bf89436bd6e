// Opens a VMDK image read-only: a sparse extent with its embedded descriptor, or a text descriptor naming extents.

import { basename, dirname, join } from "node:path";
import type { BlockBackend } from "../block_backend.js";
import { parentOf, parseDescriptor, type DescriptorExtent, type VmdkDescriptor } from "./descriptor.js";
import { DiskImageError, ImageFile, ReadOnlyImageBackend, type VirtualDiskReader } from "../read_only_image.js";
import { SparseExtent } from "./sparse_extent.js";
import { SECTOR, hasSparseMagic } from "./sparse_header.js";

// A text descriptor is a few hundred bytes; anything this large is not one.
const MAX_DESCRIPTOR_BYTES = 1 << 20;
// A 2 TiB twoGbMaxExtent disk has 1024 extents.
const MAX_EXTENTS = 4096;
const COWD_MAGIC = "COWD";

/** One extent placed at its start in the virtual disk. */
interface PlacedExtent {
  start: number;
  length: number;
  read(offsetInExtent: number, buf: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens a VMDK for reading: monolithicSparse, streamOptimized, monolithicFlat, twoGbMaxExtentSparse/Flat. */
export async function openVmdk(path: string): Promise<BlockBackend> {
  const file = await ImageFile.open(path);
  try {
    const head = await file.bytes(0, Math.min(SECTOR, file.size), "the header");
    if (hasSparseMagic(head)) return await openMonolithic(path, file);
    if (new TextDecoder().decode(head.subarray(0, 4)) === COWD_MAGIC) throw file.error("ESX server sparse extents (COWD) are not supported");
    const descriptor = await readTextDescriptor(file);
    await file.close();
    return await openFromDescriptor(path, descriptor);
  } catch (e) {
    await file.close().catch(() => undefined);
    throw e;
  }
}

async function openMonolithic(path: string, file: ImageFile): Promise<BlockBackend> {
  const extent = await SparseExtent.open(file);
  const { descriptorOffsetSectors, descriptorSectors } = extent.header;
  if (descriptorOffsetSectors !== 0 && descriptorSectors !== 0) {
    if (descriptorSectors * SECTOR > MAX_DESCRIPTOR_BYTES) throw file.error(`the embedded descriptor is ${descriptorSectors} sectors long, more than the 1 MiB allowed`);
    const bytes = await file.bytes(descriptorOffsetSectors * SECTOR, descriptorSectors * SECTOR, "the embedded descriptor");
    const descriptor = parseDescriptor(decodeNulTerminated(bytes));
    if (typeof descriptor === "string") throw file.error(`the embedded descriptor is malformed: ${descriptor}`);
    refuseDeltaDisk(file, descriptor);
  }
  file.opening = false;
  return new ReadOnlyImageBackend(path, { size: extent.sizeBytes, read: (o, b) => extent.read(o, b), close: () => extent.close() });
}

async function readTextDescriptor(file: ImageFile): Promise<VmdkDescriptor> {
  if (file.size > MAX_DESCRIPTOR_BYTES) throw file.error('it is not a VMDK image (no "KDMV" magic, and too large to be a text descriptor)');
  const text = decodeNulTerminated(await file.bytes(0, file.size, "the descriptor"));
  const descriptor = parseDescriptor(text);
  if (typeof descriptor === "string" || !descriptor.fields.has("createType")) {
    const reason = typeof descriptor === "string" ? descriptor : "it has no createType";
    throw file.error(`it is not a VMDK image (no "KDMV" magic, and not a text descriptor: ${reason})`);
  }
  refuseDeltaDisk(file, descriptor);
  if (descriptor.extents.length === 0) throw file.error("the descriptor lists no extents");
  if (descriptor.extents.length > MAX_EXTENTS) throw file.error(`the descriptor lists ${descriptor.extents.length} extents, more than the ${MAX_EXTENTS} supported`);
  return descriptor;
}

function refuseDeltaDisk(file: ImageFile, descriptor: VmdkDescriptor): void {
  const parent = parentOf(descriptor);
  if (parent !== undefined) throw file.error(`it is a delta disk whose parent is "${parent}"; only standalone VMDKs are supported`);
}

async function openFromDescriptor(path: string, descriptor: VmdkDescriptor): Promise<BlockBackend> {
  const placed: PlacedExtent[] = [];
  const fail = (detail: string): Error => new DiskImageError(`Cannot open disk "${path}": ${detail}`);
  try {
    let start = 0;
    for (const extent of descriptor.extents) {
      placed.push(await openExtent(path, extent, start, fail));
      start += extent.sectors * SECTOR;
      if (start > Number.MAX_SAFE_INTEGER) throw fail("the extents add up to a disk that is too large");
    }
    return new ReadOnlyImageBackend(path, compositeReader(start, placed));
  } catch (e) {
    await Promise.allSettled(placed.map((p) => p.close()));
    throw e;
  }
}

async function openExtent(path: string, extent: DescriptorExtent, start: number, fail: (detail: string) => Error): Promise<PlacedExtent> {
  const length = extent.sectors * SECTOR;
  const where = `extent on descriptor line ${extent.line}`;
  if (extent.access === "NOACCESS") throw fail(`the ${where} is marked NOACCESS`);
  if (extent.type === "ZERO") {
    return { start, length, read: async (_o, buf) => void buf.fill(0), close: async () => undefined };
  }
  const name = extent.fileName;
  if (name === undefined || name === "") throw fail(`the ${where} names no file`);
  // A hostile descriptor must not point us at arbitrary host files.
  if (name !== basename(name) || name.includes("\\") || name === "." || name === "..") {
    throw fail(`the ${where} names "${name}", but extent files must be in the same directory as the descriptor`);
  }
  const file = await ImageFile.open(join(dirname(path), name));
  try {
    switch (extent.type) {
      case "FLAT":
      case "VMFS": {
        const base = extent.offsetSectors * SECTOR;
        file.checkInside(base, length, `the ${where}`);
        file.opening = false;
        return { start, length, read: (o, buf) => file.readExact(base + o, buf, `the ${where}`), close: () => file.close() };
      }
      case "SPARSE": {
        const sparse = await SparseExtent.open(file);
        if (sparse.sizeBytes < length) throw file.error(`its capacity is smaller than the ${length} bytes the descriptor gives it`);
        file.opening = false;
        return { start, length, read: (o, buf) => sparse.read(o, buf), close: () => sparse.close() };
      }
      default:
        throw fail(`the ${where} has type ${extent.type}, which is not supported (FLAT, SPARSE, VMFS and ZERO are)`);
    }
  } catch (e) {
    await file.close().catch(() => undefined);
    throw e;
  }
}

function compositeReader(size: number, extents: PlacedExtent[]): VirtualDiskReader {
  return {
    size,
    async read(offset: number, buf: Uint8Array): Promise<void> {
      const end = offset + buf.length;
      const pieces: Array<Promise<void>> = [];
      for (const extent of extents) {
        const from = Math.max(offset, extent.start);
        const to = Math.min(end, extent.start + extent.length);
        if (from < to) pieces.push(extent.read(from - extent.start, buf.subarray(from - offset, to - offset)));
      }
      await Promise.all(pieces);
    },
    async close(): Promise<void> {
      await Promise.all(extents.map((e) => e.close()));
    },
  };
}

function decodeNulTerminated(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return new TextDecoder().decode(nul === -1 ? bytes : bytes.subarray(0, nul));
}
