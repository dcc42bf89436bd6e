// Reads a dynamic VHD: a block allocation table (BAT) of blocks, each a sector bitmap followed by data.

import type { ImageFile, VirtualDiskReader } from "../read_only_image.js";
import { SECTOR, type DynamicHeader } from "./structures.js";

const UNALLOCATED = 0xffffffff;
// A 2040 GiB disk of 2 MiB blocks has about 1 M entries; this bounds what a hostile header can make us allocate.
const MAX_BAT_ENTRIES = 1 << 24;

export class DynamicDisk implements VirtualDiskReader {
  private readonly bitmapBytes: number;

  private constructor(
    private readonly file: ImageFile,
    readonly size: number,
    private readonly blockBytes: number,
    private readonly bat: Uint32Array,
  ) {
    // One bit per sector, padded to a whole sector.
    this.bitmapBytes = Math.ceil(blockBytes / SECTOR / 8 / SECTOR) * SECTOR;
  }

  /** Loads the BAT and checks every block it maps lies inside the file. */
  static async open(file: ImageFile, size: number, header: DynamicHeader): Promise<DynamicDisk> {
    const blocksNeeded = Math.ceil(size / header.blockBytes);
    if (header.maxTableEntries < blocksNeeded) {
      throw file.error(`the block allocation table has ${header.maxTableEntries} entries but the ${size}-byte disk needs ${blocksNeeded}`);
    }
    if (blocksNeeded > MAX_BAT_ENTRIES) throw file.error(`the disk would need ${blocksNeeded} blocks of ${header.blockBytes} bytes, more than the ${MAX_BAT_ENTRIES} supported`);
    const raw = await file.bytes(header.tableOffset, blocksNeeded * 4, "the block allocation table");
    const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
    const bat = new Uint32Array(blocksNeeded);
    const disk = new DynamicDisk(file, size, header.blockBytes, bat);
    for (let i = 0; i < blocksNeeded; i++) {
      bat[i] = view.getUint32(i * 4);
      if (bat[i] === UNALLOCATED) continue;
      // Only the part of the last block inside the disk has to exist in the file.
      const needed = disk.bitmapBytes + Math.min(header.blockBytes, size - i * header.blockBytes);
      file.checkInside(bat[i] * SECTOR, needed, `block allocation table entry ${i}`);
    }
    return disk;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    const pieces: Array<Promise<void>> = [];
    for (let pos = offset; pos < offset + buf.length; ) {
      const block = Math.floor(pos / this.blockBytes);
      const inBlock = pos - block * this.blockBytes;
      const n = Math.min(this.blockBytes - inBlock, offset + buf.length - pos);
      pieces.push(this.readBlockPiece(block, inBlock, buf.subarray(pos - offset, pos - offset + n)));
      pos += n;
    }
    await Promise.all(pieces);
  }

  close(): Promise<void> {
    return this.file.close();
  }

  private async readBlockPiece(block: number, inBlock: number, out: Uint8Array): Promise<void> {
    const entry = this.bat[block];
    if (entry === UNALLOCATED) {
      out.fill(0);
      return;
    }
    const what = `block allocation table entry ${block}`;
    const blockStart = entry * SECTOR;
    const firstSector = inBlock / SECTOR;
    const sectors = out.length / SECTOR;
    const firstByte = firstSector >> 3;
    const bitmap = await this.file.bytes(blockStart + firstByte, ((firstSector + sectors - 1) >> 3) - firstByte + 1, `the sector bitmap of ${what}`);
    const present = (s: number): boolean => ((bitmap[(s >> 3) - firstByte] >> (7 - (s & 7))) & 1) === 1;
    const reads: Array<Promise<void>> = [];
    // Sectors whose bit is clear hold no data in this file and read as zeroes.
    for (let s = firstSector; s < firstSector + sectors; ) {
      const bit = present(s);
      let end = s + 1;
      while (end < firstSector + sectors && present(end) === bit) end++;
      const slice = out.subarray((s - firstSector) * SECTOR, (end - firstSector) * SECTOR);
      if (bit) reads.push(this.file.readExact(blockStart + this.bitmapBytes + s * SECTOR, slice, what));
      else slice.fill(0);
      s = end;
    }
    await Promise.all(reads);
  }
}
