// Lists a cpio "newc" archive, for checking what an image's initramfs carries.

import { NEWC_HEADER_SIZE, NEWC_MAGIC, TRAILER_NAME } from "./cpio.js";

export interface NewcEntry {
  path: string;
  mode: number;
  data: Uint8Array;
}

export function readNewcArchive(buf: Uint8Array): NewcEntry[] {
  const text = (from: number, to: number): string => Buffer.from(buf.buffer, buf.byteOffset + from, to - from).toString("latin1");
  const entries: NewcEntry[] = [];
  let off = 0;
  for (;;) {
    if (off + NEWC_HEADER_SIZE > buf.length) throw new Error(`Cannot read the cpio archive: it ends at byte ${off} before its trailer.`);
    if (text(off, off + 6) !== NEWC_MAGIC) throw new Error(`Cannot read the cpio archive: no newc magic at byte ${off}.`);
    const field = (i: number): number => parseInt(text(off + 6 + i * 8, off + 14 + i * 8), 16);
    const namesize = field(11);
    const filesize = field(6);
    const nameEnd = off + NEWC_HEADER_SIZE + namesize;
    const dataStart = align4(nameEnd);
    if (namesize < 1 || dataStart + filesize > buf.length) throw new Error(`Cannot read the cpio archive: the entry at byte ${off} runs past its end.`);
    const path = Buffer.from(buf.buffer, buf.byteOffset + off + NEWC_HEADER_SIZE, namesize - 1).toString("utf8");
    if (path === TRAILER_NAME) return entries;
    entries.push({ path, mode: field(1), data: buf.subarray(dataStart, dataStart + filesize) });
    off = align4(dataStart + filesize);
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
