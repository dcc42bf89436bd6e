// Opens any disk image by path: the format is given or probed from the file's magic bytes.

import { open as openFile, realpath } from "node:fs/promises";
import type { BlockBackend } from "./block_backend.js";
import { Qcow2Image } from "./qcow2/image.js";
import { openError } from "./qcow2/errors.js";
import { RawFileBackend } from "./raw.js";
import { openVhd } from "./vhd/open_vhd.js";
import { openVmdk } from "./vmdk/open_vmdk.js";

export type DiskFormat = "raw" | "qcow2" | "vmdk" | "vpc";
export const DISK_FORMATS: readonly DiskFormat[] = ["raw", "qcow2", "vmdk", "vpc"];

export interface OpenDiskOptions {
  format?: DiskFormat;
  readOnly?: boolean;
}

/** Opens a disk image. vmdk and vpc images are always opened read-only. */
export async function openDisk(path: string, opts: OpenDiskOptions = {}): Promise<BlockBackend> {
  return openInChain(path, opts.format ?? null, opts.readOnly ?? false, []);
}

/** The format named by the file's first (and, for fixed VHD, last) bytes; raw when nothing matches. */
export async function probeFormat(path: string): Promise<DiskFormat> {
  let fh;
  try {
    fh = await openFile(path, "r");
  } catch (e) {
    throw openError(path, (e as Error).message);
  }
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    const magic = head.subarray(0, Math.min(bytesRead, 512));
    if (magic.length >= 4 && magic.readUInt32BE(0) === 0x514649fb) return "qcow2";
    if (magic.subarray(0, 4).toString("latin1") === "KDMV") return "vmdk";
    if (magic.toString("latin1").startsWith("# Disk DescriptorFile")) return "vmdk";
    if (magic.subarray(0, 8).toString("latin1") === "conectix") return "vpc";
    const { size } = await fh.stat();
    if (size >= 512) {
      const foot = Buffer.alloc(8);
      await fh.read(foot, 0, 8, size - 512);
      if (foot.toString("latin1") === "conectix") return "vpc";
    }
    return "raw";
  } finally {
    await fh.close();
  }
}

function parseFormat(path: string, name: string): DiskFormat {
  if ((DISK_FORMATS as readonly string[]).includes(name)) return name as DiskFormat;
  throw openError(path, `unknown format "${name}" (expected one of ${DISK_FORMATS.join(", ")})`);
}

async function openInChain(path: string, format: DiskFormat | string | null, readOnly: boolean, chain: string[]): Promise<BlockBackend> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw openError(path, (e as Error).message);
  }
  if (chain.includes(real)) throw openError(path, `backing chain loops back to "${real}"`);
  const fmt = format === null ? await probeFormat(path) : parseFormat(path, format);
  switch (fmt) {
    case "qcow2":
      return Qcow2Image.open(path, {
        readOnly,
        chain,
        openBacking: (p, f, c) => openInChain(p, f, true, c),
      });
    case "raw":
      return RawFileBackend.open(path, { readOnly });
    case "vmdk":
      return openVmdk(path);
    case "vpc":
      return openVhd(path);
    default: {
      const never: never = fmt;
      throw openError(path, `unknown format ${String(never)}`);
    }
  }
}
