// Reads a hosted sparse extent: monolithicSparse, streamOptimized and each file of twoGbMaxExtentSparse.

import { inflate, inflateRaw } from "node:zlib";
import { promisify } from "node:util";
import type { ImageFile } from "../read_only_image.js";
import { GD_AT_END, SECTOR, parseSparseHeader, type SparseHeader } from "./sparse_header.js";

const inflateAsync = promisify(inflate);
const inflateRawAsync = promisify(inflateRaw);

const MARKER_EOS = 0;
const MARKER_FOOTER = 3;
const MARKER_HEADER_BYTES = 12;
const GTE_ZEROED = 1;
// Grain tables are 2 KiB each; this many cached covers 1 GiB of 64 KiB grains.
const GRAIN_TABLE_CACHE_ENTRIES = 512;
// Decompressed grains kept for sequential small reads inside one grain.
const GRAIN_CACHE_BYTES = 4 << 20;
// Caps the grain directory we are willing to load (16 M entries covers 512 TiB at the default grain size).
const MAX_GD_ENTRIES = 1 << 24;

/** A tiny LRU over Map insertion order. */
class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }
}

export class SparseExtent {
  readonly sizeBytes: number;
  private readonly grainBytes: number;
  private readonly grainTables: LruCache<number, Promise<Uint32Array | null>>;
  private readonly grains: LruCache<number, Promise<Uint8Array>>;

  private constructor(
    private readonly file: ImageFile,
    readonly header: SparseHeader,
    private readonly directory: Uint32Array,
  ) {
    this.sizeBytes = header.capacitySectors * SECTOR;
    this.grainBytes = header.grainSectors * SECTOR;
    this.grainTables = new LruCache(GRAIN_TABLE_CACHE_ENTRIES);
    this.grains = new LruCache(Math.max(1, Math.floor(GRAIN_CACHE_BYTES / this.grainBytes)));
  }

  /** Reads the header (or the footer, for streamOptimized) and the grain directory. */
  static async open(file: ImageFile): Promise<SparseExtent> {
    let header = parseSparseHeader(file, await file.bytes(0, SECTOR, "the sparse header"), "header");
    if (header.gdOffsetSectors === GD_AT_END) header = await readFooterHeader(file);
    const gdEntries = Math.ceil(header.capacitySectors / (header.grainSectors * header.gtesPerGt));
    if (gdEntries > MAX_GD_ENTRIES) throw file.error(`the grain directory would have ${gdEntries} entries, more than the ${MAX_GD_ENTRIES} supported`);
    const gdOffset = Number(header.gdOffsetSectors) * SECTOR;
    const raw = await file.bytes(gdOffset, gdEntries * 4, "the grain directory");
    const directory = littleEndianU32s(raw);
    const gtBytes = header.gtesPerGt * 4;
    for (let i = 0; i < directory.length; i++) {
      if (directory[i] !== 0) file.checkInside(directory[i] * SECTOR, gtBytes, `grain directory entry ${i}`);
    }
    return new SparseExtent(file, header, directory);
  }

  /** Reads a checked range of this extent's virtual bytes. */
  async read(offset: number, buf: Uint8Array): Promise<void> {
    const pieces: Array<Promise<void>> = [];
    for (let pos = offset; pos < offset + buf.length; ) {
      const grain = Math.floor(pos / this.grainBytes);
      const inGrain = pos - grain * this.grainBytes;
      const n = Math.min(this.grainBytes - inGrain, offset + buf.length - pos);
      pieces.push(this.readGrainPiece(grain, inGrain, buf.subarray(pos - offset, pos - offset + n)));
      pos += n;
    }
    await Promise.all(pieces);
  }

  close(): Promise<void> {
    return this.file.close();
  }

  private async readGrainPiece(grain: number, inGrain: number, out: Uint8Array): Promise<void> {
    const gdIndex = Math.floor(grain / this.header.gtesPerGt);
    const gtIndex = grain % this.header.gtesPerGt;
    const table = await this.grainTable(gdIndex);
    const gte = table === null ? 0 : table[gtIndex];
    if (gte === 0 || (this.header.zeroedGrainGte && gte === GTE_ZEROED)) {
      out.fill(0);
      return;
    }
    if (this.header.compressed) {
      const data = await this.decompressedGrain(grain, gte, `grain table ${gdIndex} entry ${gtIndex}`);
      out.set(data.subarray(inGrain, inGrain + out.length));
      return;
    }
    await this.file.readExact(gte * SECTOR + inGrain, out, `grain table ${gdIndex} entry ${gtIndex}`);
  }

  private grainTable(gdIndex: number): Promise<Uint32Array | null> {
    let table = this.grainTables.get(gdIndex);
    if (table === undefined) {
      table = this.loadGrainTable(gdIndex);
      this.grainTables.set(gdIndex, table);
      // A failed load is not cached, so a later request reports the error again rather than a stale promise.
      table.catch(() => this.grainTables.delete(gdIndex));
    }
    return table;
  }

  private async loadGrainTable(gdIndex: number): Promise<Uint32Array | null> {
    const sector = this.directory[gdIndex];
    if (sector === 0) return null;
    const entries = littleEndianU32s(await this.file.bytes(sector * SECTOR, this.header.gtesPerGt * 4, `grain directory entry ${gdIndex}`));
    const firstGrain = gdIndex * this.header.gtesPerGt;
    for (let i = 0; i < entries.length; i++) {
      const gte = entries[i];
      if (gte === 0 || (this.header.zeroedGrainGte && gte === GTE_ZEROED)) continue;
      const grainStart = (firstGrain + i) * this.grainBytes;
      if (grainStart >= this.sizeBytes) continue;
      // Only the part of the last grain inside the disk has to exist in the file.
      const needed = this.header.compressed ? MARKER_HEADER_BYTES : Math.min(this.grainBytes, this.sizeBytes - grainStart);
      this.file.checkInside(gte * SECTOR, needed, `grain table ${gdIndex} entry ${i}`);
    }
    return entries;
  }

  private decompressedGrain(grain: number, gte: number, what: string): Promise<Uint8Array> {
    let data = this.grains.get(grain);
    if (data === undefined) {
      data = this.decompressGrain(gte, what);
      this.grains.set(grain, data);
      data.catch(() => this.grains.delete(grain));
    }
    return data;
  }

  private async decompressGrain(gte: number, what: string): Promise<Uint8Array> {
    const markerPos = gte * SECTOR;
    const marker = await this.file.bytes(markerPos, MARKER_HEADER_BYTES, what);
    const compressedSize = new DataView(marker.buffer, marker.byteOffset, MARKER_HEADER_BYTES).getUint32(8, true);
    // Deflate never grows data by more than a few bytes per 16 KiB block; anything bigger is corrupt.
    if (compressedSize === 0 || compressedSize > this.grainBytes + 4096) {
      throw this.file.error(`${what} points to a grain marker with an invalid compressed size of ${compressedSize} bytes`);
    }
    const compressed = await this.file.bytes(markerPos + MARKER_HEADER_BYTES, compressedSize, `the compressed data of ${what}`);
    let grain: Buffer;
    try {
      grain = await inflateAsync(compressed, { maxOutputLength: this.grainBytes });
    } catch (zlibError) {
      try {
        // Some writers store bare deflate streams without the zlib header.
        grain = await inflateRawAsync(compressed, { maxOutputLength: this.grainBytes });
      } catch {
        throw this.file.error(`the compressed grain of ${what} is corrupt (${(zlibError as Error).message})`);
      }
    }
    if (grain.length === this.grainBytes) return grain;
    // A short grain (the disk's tail) reads as zeroes past what was stored.
    const padded = new Uint8Array(this.grainBytes);
    padded.set(grain);
    return padded;
  }
}

async function readFooterHeader(file: ImageFile): Promise<SparseHeader> {
  if (file.size < 3 * SECTOR) throw file.error("the header says the grain directory is in the footer, but the file is too short to have one");
  const tail = await file.bytes(file.size - 3 * SECTOR, 3 * SECTOR, "the footer");
  const view = new DataView(tail.buffer, tail.byteOffset, tail.length);
  const footerMarkerOk = view.getUint32(8, true) === 0 && view.getUint32(12, true) === MARKER_FOOTER;
  const eosOk = view.getBigUint64(2 * SECTOR, true) === 0n && view.getUint32(2 * SECTOR + 8, true) === 0 && view.getUint32(2 * SECTOR + 12, true) === MARKER_EOS;
  if (!footerMarkerOk || !eosOk) {
    throw file.error("the header says the grain directory is in the footer, but the file does not end with a footer and end-of-stream marker (is it truncated?)");
  }
  const footer = parseSparseHeader(file, tail.subarray(SECTOR, 2 * SECTOR), "footer");
  if (footer.gdOffsetSectors === GD_AT_END) throw file.error("the footer does not say where the grain directory is");
  return footer;
}

function littleEndianU32s(bytes: Uint8Array): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}
