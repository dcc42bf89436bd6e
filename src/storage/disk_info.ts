// What a disk is: format, sizes, qcow2 details, snapshots and backing chain (`disk info`, the daemon's disks API).

import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { openDisk, probeFormat, type DiskFormat } from "./open.js";
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY } from "./qcow2/header.js";
import { Qcow2Image } from "./qcow2/image.js";
import { listSnapshots, type SnapshotInfo } from "./qcow2/snapshots.js";

/** What `disk info --json` prints; field names are stable. */
export interface DiskInfo {
  filename: string;
  format: DiskFormat;
  virtualSize: number;
  /** Bytes the file occupies on the host (allocated blocks). */
  diskSize: number;
  clusterSize?: number;
  qcow2Version?: number;
  refcountBits?: number;
  dirty?: boolean;
  corrupt?: boolean;
  backingFile?: string;
  backingFormat?: string;
  snapshots?: SnapshotInfo[];
  /** The images below this one, nearest first. */
  backingChain: Array<{ filename: string; format: DiskFormat; virtualSize: number }>;
}

export async function diskInfo(path: string): Promise<DiskInfo> {
  const st = await stat(path).catch((e: Error) => {
    throw new Error(`Cannot open disk "${path}": ${e.message}`);
  });
  const format = await probeFormat(path);
  const info: DiskInfo = { filename: path, format, virtualSize: 0, diskSize: st.blocks * 512, backingChain: [] };
  if (format !== "qcow2") {
    const d = await openDisk(path, { format, readOnly: true });
    info.virtualSize = d.size;
    await d.close();
    return info;
  }
  const img = await Qcow2Image.open(path, { readOnly: true, noBacking: true });
  try {
    const h = img.header;
    info.virtualSize = h.size;
    info.clusterSize = img.clusterSize;
    info.qcow2Version = h.version;
    info.refcountBits = 1 << h.refcountOrder;
    info.dirty = (h.incompatible & BigInt(INCOMPAT_DIRTY)) !== 0n;
    info.corrupt = (h.incompatible & BigInt(INCOMPAT_CORRUPT)) !== 0n;
    info.snapshots = listSnapshots(img);
    if (h.backingFile !== null) {
      info.backingFile = h.backingFile;
      if (h.backingFormat) info.backingFormat = h.backingFormat;
      info.backingChain = await chainBelow(img.resolveBacking(), h.backingFormat, [path]);
    }
  } finally {
    await img.close();
  }
  return info;
}

async function chainBelow(path: string, format: string | null, seen: string[]): Promise<DiskInfo["backingChain"]> {
  const out: DiskInfo["backingChain"] = [];
  let cur: string | null = path;
  let fmt = format;
  while (cur !== null) {
    if (seen.includes(resolve(cur)) || out.length > 64) throw new Error(`Backing chain of "${seen[0]}" loops at "${cur}"`);
    seen.push(resolve(cur));
    const f: DiskFormat = (fmt as DiskFormat | null) ?? (await probeFormat(cur));
    if (f === "qcow2") {
      const img = await Qcow2Image.open(cur, { readOnly: true, noBacking: true });
      out.push({ filename: cur, format: f, virtualSize: img.header.size });
      const next = img.header.backingFile !== null ? img.resolveBacking() : null;
      fmt = img.header.backingFormat;
      await img.close();
      cur = next;
    } else {
      const d = await openDisk(cur, { format: f, readOnly: true });
      out.push({ filename: cur, format: f, virtualSize: d.size });
      await d.close();
      cur = null;
    }
  }
  return out;
}

