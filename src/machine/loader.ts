// Recognises and places boot payloads in guest RAM: RISC-V Linux "Image" files, RISC-V ELF
// executables, and raw firmware binaries.

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

export function isRiscvImage(data: Uint8Array): boolean {
  return data.length >= 64 && new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0x38, true) === IMAGE_MAGIC2;
}

export function isElf(data: Uint8Array): boolean {
  return data.length >= 64 && new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true) === ELF_MAGIC;
}

/** Loads a kernel: a RISC-V Image or a RISC-V ELF. Anything else is refused. */
export function loadKernel(ram: GuestRam, data: Uint8Array, name: string): LoadedPayload {
  if (isRiscvImage(data)) return loadImage(ram, data, name);
  if (isElf(data)) return loadElf(ram, data, name);
  throw new BootImageError(
    `Cannot boot kernel "${name}": it is neither a RISC-V Linux Image (magic "RSC\\x05" at offset 0x38) nor a RISC-V ELF file. Pass the vmlinux/Image from a riscv64 kernel package.`,
  );
}

/** Loads M-mode firmware: an ELF at its physical addresses, or a raw binary at the start of RAM. */
export function loadFirmware(ram: GuestRam, data: Uint8Array, name: string): LoadedPayload {
  if (isElf(data)) return loadElf(ram, data, name);
  if (data.length === 0) throw new BootImageError(`Cannot load firmware "${name}": the file is empty.`);
  if (data.length > ram.size) {
    throw new BootImageError(`Cannot load firmware "${name}": it is ${data.length} bytes, more than the VM's RAM. Give the VM more --memory.`);
  }
  ram.write(ram.base, data);
  return { entry: ram.base, start: ram.base, end: ram.base + data.length, kind: "binary" };
}

function loadImage(ram: GuestRam, data: Uint8Array, name: string): LoadedPayload {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const textOffset = Number(dv.getBigUint64(8, true)) || KERNEL_OFFSET;
  const imageSize = Number(dv.getBigUint64(16, true)) || data.length;
  const start = ram.base + textOffset;
  const end = start + Math.max(imageSize, data.length);
  if (textOffset % 4096 !== 0 || textOffset > 0x4000_0000) {
    throw new BootImageError(`Cannot boot kernel "${name}": its header asks for text offset 0x${textOffset.toString(16)}, which is not plausible. The file may be corrupt.`);
  }
  if (end > ram.end) {
    throw new BootImageError(
      `Cannot boot kernel "${name}": it needs ${Math.ceil((end - ram.base) / 2 ** 20)} MiB of RAM but the VM has ${ram.size / 2 ** 20} MiB. Give the VM more --memory.`,
    );
  }
  ram.write(start, data);
  return { entry: start, start, end, kind: "image" };
}

function loadElf(ram: GuestRam, data: Uint8Array, name: string): LoadedPayload {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bad = (why: string): never => {
    throw new BootImageError(`Cannot load "${name}" as an ELF file: ${why}.`);
  };
  if (data[4] !== 2) bad("it is not a 64-bit ELF (RV64 needs ELFCLASS64)");
  if (data[5] !== 1) bad("it is not little-endian");
  if (dv.getUint16(18, true) !== EM_RISCV) bad(`its machine type is ${dv.getUint16(18, true)}, not RISC-V (243)`);
  const entry = Number(dv.getBigUint64(24, true));
  const phoff = Number(dv.getBigUint64(32, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize < 56 || phoff + phnum * phentsize > data.length) bad("its program header table lies outside the file");
  let lowest = Infinity;
  let highest = 0;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (dv.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = Number(dv.getBigUint64(ph + 8, true));
    const paddr = Number(dv.getBigUint64(ph + 24, true));
    const filesz = Number(dv.getBigUint64(ph + 32, true));
    const memsz = Number(dv.getBigUint64(ph + 40, true));
    if (memsz === 0) continue;
    if (filesz > memsz || offset + filesz > data.length) bad(`segment ${i} has file data outside the file`);
    if (!ram.contains(paddr, memsz)) {
      bad(`segment ${i} (0x${paddr.toString(16)}, ${memsz} bytes) does not fit in guest RAM at 0x${ram.base.toString(16)}-0x${ram.end.toString(16)}; give the VM more --memory or link the program for RAM at 0x80000000`);
    }
    ram.write(paddr, data.subarray(offset, offset + filesz));
    ram.slice(paddr + filesz, memsz - filesz).fill(0);
    lowest = Math.min(lowest, paddr);
    highest = Math.max(highest, paddr + memsz);
  }
  if (lowest === Infinity) bad("it has no loadable segments");
  return { entry, start: lowest, end: highest, kind: "elf" };
}
