// Recognises and places boot payloads in guest RAM: RISC-V Linux "Image" files, RISC-V ELF
// executables, and raw firmware binaries.

import { closeSync, fstatSync, openSync, read, readSync } from "node:fs";
import type { GuestRam } from "../seams/guest_ram.js";
import { KERNEL_OFFSET } from "./layout.js";

export class BootImageError extends Error {
  override name = "BootImageError";
}

export interface LoadedPayload {
  /** Guest-physical entry point. */
  entry: number;
  /** Lowest and one-past-highest guest-physical address occupied (including the kernel's BSS for Images). */
  start: number;
  end: number;
  kind: "image" | "elf" | "binary";
}

const IMAGE_MAGIC2 = 0x05435352; // "RSC\x05" at 0x38, little-endian
const ELF_MAGIC = 0x464c457f; // "\x7fELF"
const EM_RISCV = 243;
const PT_LOAD = 1;

/**
 * A boot file, read in pieces straight into guest RAM: a whole-file buffer would be 44 MiB of
 * fresh host memory for Debian's kernel and initrd, and on hosts that are VMs themselves (PVM
 * here) first-touching memory costs ~5 ms a MiB, so that copy alone took ~0.25 s of each boot.
 */
export interface PayloadSource {
  name: string;
  size: number;
  /** Copies file bytes [pos, pos + dest.length) into dest; throws BootImageError if the file ends first. */
  read(pos: number, dest: Uint8Array): void;
}

/** A payload already in memory (tests, small firmware). */
export function bytesSource(data: Uint8Array, name: string): PayloadSource {
  return {
    name,
    size: data.length,
    read(pos, dest) {
      if (pos + dest.length > data.length) throw new BootImageError(`"${name}" ends before byte ${pos + dest.length}.`);
      dest.set(data.subarray(pos, pos + dest.length));
    },
  };
}

/** An open boot file; close() once the boot has placed it. */
export function fileSource(path: string): PayloadSource & { close(): void } {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  return {
    name: path,
    size,
    read(pos, dest) {
      for (let done = 0; done < dest.length; ) {
        const n = readSync(fd, dest, done, dest.length - done, pos + done);
        if (n === 0) throw new BootImageError(`"${path}" has no byte ${pos + done} to load: it was ${size} bytes when opened and has shrunk since (was it replaced while the VM started?). Start the VM again.`);
        done += n;
      }
    },
    close: () => closeSync(fd),
  };
}

/** The file's first bytes (fewer if it is shorter). */
function head(src: PayloadSource, length: number): Uint8Array {
  const bytes = new Uint8Array(Math.min(length, src.size));
  src.read(0, bytes);
  return bytes;
}

/**
 * Touches the fresh guest RAM pages of `ranges` on libuv's pool threads, while this thread goes on
 * with the VM's start (the interpreter's warm-up): each range is read from /dev/zero, which leaves
 * fresh memory as it is. A page's first touch costs the host far more than copying a file into it
 * (Debian's kernel and initrd: 15-130 ms with huge pages on these hosts, then ~10 ms to copy), and
 * the boot would pay it before the guest's first instruction. Resolves when every read is done, and
 * never rejects: the boot then touches what is left itself. Only for RAM nothing has written yet.
 */
export function prefault(ram: GuestRam, ranges: ReadonlyArray<{ gpa: number; length: number }>): Promise<void> {
  let fd: number;
  try {
    fd = openSync("/dev/zero", "r");
  } catch {
    return Promise.resolve(); // no /dev/zero: nothing is touched ahead
  }
  // Each read is queued on the pool now, not at the next turn of the event loop, which this thread's warm-up delays.
  const reads = ranges.map((r) => new Promise<void>((done) => read(fd, ram.slice(r.gpa, r.length), 0, r.length, null, () => done())));
  return Promise.all(reads).then(() => closeSync(fd));
}

/** Copies file bytes [pos, pos + length) to guest RAM at gpa, with no buffer in between. */
export function placeInRam(ram: GuestRam, gpa: number, src: PayloadSource, pos: number, length: number): void {
  src.read(pos, ram.slice(gpa, length));
  ram.deviceWrote(gpa - ram.base, length);
}

export function isRiscvImage(data: Uint8Array): boolean {
  return data.length >= 64 && new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0x38, true) === IMAGE_MAGIC2;
}

export function isElf(data: Uint8Array): boolean {
  return data.length >= 64 && new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true) === ELF_MAGIC;
}

/** Loads a kernel: a RISC-V Image or a RISC-V ELF. Anything else is refused. */
export function loadKernel(ram: GuestRam, src: PayloadSource): LoadedPayload {
  const name = src.name;
  const first = head(src, 64);
  if (isRiscvImage(first)) return loadImage(ram, src, first);
  if (isElf(first)) return loadElf(ram, src, first);
  throw new BootImageError(
    `Cannot boot kernel "${name}": it is neither a RISC-V Linux Image (magic "RSC\\x05" at offset 0x38) nor a RISC-V ELF file. Pass the vmlinux/Image from a riscv64 kernel package.`,
  );
}

/** Loads M-mode firmware: an ELF at its physical addresses, or a raw binary at the start of RAM. */
export function loadFirmware(ram: GuestRam, src: PayloadSource): LoadedPayload {
  const name = src.name, size = src.size;
  const first = head(src, 64);
  if (isElf(first)) return loadElf(ram, src, first);
  if (size === 0) throw new BootImageError(`Cannot load firmware "${name}": the file is empty.`);
  if (size > ram.size) {
    throw new BootImageError(`Cannot load firmware "${name}": it is ${size} bytes, more than the VM's RAM. Give the VM more --memory.`);
  }
  placeInRam(ram, ram.base, src, 0, size);
  return { entry: ram.base, start: ram.base, end: ram.base + size, kind: "binary" };
}

function loadImage(ram: GuestRam, src: PayloadSource, first: Uint8Array): LoadedPayload {
  const name = src.name;
  const dv = new DataView(first.buffer, first.byteOffset, first.byteLength);
  const textOffset = Number(dv.getBigUint64(8, true)) || KERNEL_OFFSET;
  const imageSize = Number(dv.getBigUint64(16, true)) || src.size;
  const start = ram.base + textOffset;
  const end = start + Math.max(imageSize, src.size);
  if (textOffset % 4096 !== 0 || textOffset > 0x4000_0000) {
    throw new BootImageError(`Cannot boot kernel "${name}": its header asks for text offset 0x${textOffset.toString(16)}, which is not plausible. The file may be corrupt.`);
  }
  if (end > ram.end) {
    throw new BootImageError(
      `Cannot boot kernel "${name}": it needs ${Math.ceil((end - ram.base) / 2 ** 20)} MiB of RAM but the VM has ${ram.size / 2 ** 20} MiB. Give the VM more --memory.`,
    );
  }
  placeInRam(ram, start, src, 0, src.size);
  return { entry: start, start, end, kind: "image" };
}

function loadElf(ram: GuestRam, src: PayloadSource, first: Uint8Array): LoadedPayload {
  const bad = (why: string): never => {
    throw new BootImageError(`Cannot load "${src.name}" as an ELF file: ${why}.`);
  };
  const eh = new DataView(first.buffer, first.byteOffset, first.byteLength);
  if (first[4] !== 2) bad("it is not a 64-bit ELF (RV64 needs ELFCLASS64)");
  if (first[5] !== 1) bad("it is not little-endian");
  if (eh.getUint16(18, true) !== EM_RISCV) bad(`its machine type is ${eh.getUint16(18, true)}, not RISC-V (243)`);
  const entry = Number(eh.getBigUint64(24, true));
  const phoff = Number(eh.getBigUint64(32, true));
  const phentsize = eh.getUint16(54, true);
  const phnum = eh.getUint16(56, true);
  if (phentsize < 56 || phoff + phnum * phentsize > src.size) bad("its program header table lies outside the file");
  const table = new Uint8Array(phnum * phentsize);
  src.read(phoff, table);
  const dv = new DataView(table.buffer);
  let lowest = Infinity;
  let highest = 0;
  for (let i = 0; i < phnum; i++) {
    const ph = i * phentsize;
    if (dv.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = Number(dv.getBigUint64(ph + 8, true));
    const paddr = Number(dv.getBigUint64(ph + 24, true));
    const filesz = Number(dv.getBigUint64(ph + 32, true));
    const memsz = Number(dv.getBigUint64(ph + 40, true));
    if (memsz === 0) continue;
    if (filesz > memsz || offset + filesz > src.size) bad(`segment ${i} has file data outside the file`);
    if (!ram.contains(paddr, memsz)) {
      bad(`segment ${i} (0x${paddr.toString(16)}, ${memsz} bytes) does not fit in guest RAM at 0x${ram.base.toString(16)}-0x${ram.end.toString(16)}; give the VM more --memory or link the program for RAM at 0x80000000`);
    }
    placeInRam(ram, paddr, src, offset, filesz);
    ram.slice(paddr + filesz, memsz - filesz).fill(0);
    lowest = Math.min(lowest, paddr);
    highest = Math.max(highest, paddr + memsz);
  }
  if (lowest === Infinity) bad("it has no loadable segments");
  return { entry, start: lowest, end: highest, kind: "elf" };
}
