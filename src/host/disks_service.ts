// `disks`: create, clone, snapshot and inspect virtual disks through the storage layer, and
// remember the ones the daemon made in the inventory.

import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { createQcow2 } from "../storage/qcow2/create.js";
import { RawFileBackend } from "../storage/raw.js";
import { Qcow2Image } from "../storage/qcow2/image.js";
import { createSnapshot } from "../storage/qcow2/snapshots.js";
import { diskInfo, type DiskInfo } from "../storage/disk_info.js";
import { probeFormat } from "../storage/open.js";
import { conflict, invalid, notFound } from "./errors.js";
import type { DiskRecord, InventoryStore } from "./store.js";

export class DisksService {
  constructor(
    private readonly store: InventoryStore,
    /** Relative paths are taken inside this folder. */
    private readonly diskDir: string,
  ) {}

  resolvePath(path: string): string {
    return isAbsolute(path) ? path : resolve(join(this.diskDir, path));
  }

  list(): DiskRecord[] {
    return this.store.listDisks();
  }

  async info(path: string): Promise<DiskInfo> {
    const p = this.resolvePath(path);
    if (!existsSync(p)) throw notFound(`Disk "${p}" does not exist.`);
    return storageErrorsAsInvalid(() => diskInfo(p));
  }

  async create(o: { path: string; format: "qcow2" | "raw"; sizeBytes: number }): Promise<DiskInfo> {
    const p = this.resolvePath(o.path);
    if (existsSync(p)) throw conflict(`Disk "${p}" already exists; choose another path.`);
    if (o.sizeBytes <= 0 || o.sizeBytes % 512 !== 0) throw invalid(`The field "sizeBytes" must be a positive multiple of 512.`);
    await storageErrorsAsInvalid(() => (o.format === "raw" ? RawFileBackend.create(p, o.sizeBytes) : createQcow2(p, { size: o.sizeBytes })));
    return this.remember(p, "create");
  }

  /** A linked clone: a new qcow2 whose backing file is the source. */
  async clone(o: { source: string; path: string }): Promise<DiskInfo> {
    const src = this.resolvePath(o.source);
    const p = this.resolvePath(o.path);
    if (!existsSync(src)) throw notFound(`Disk "${src}" does not exist.`);
    if (existsSync(p)) throw conflict(`Disk "${p}" already exists; choose another path.`);
    await storageErrorsAsInvalid(async () => {
      const format = await probeFormat(src);
      const info = await diskInfo(src);
      await createQcow2(p, { size: info.virtualSize, backingFile: src, backingFormat: format });
    });
    return this.remember(p, `clone of ${src}`);
  }

  async snapshot(o: { path: string; name: string }): Promise<DiskInfo> {
    const p = this.resolvePath(o.path);
    if (!existsSync(p)) throw notFound(`Disk "${p}" does not exist.`);
    if ((await probeFormat(p)) !== "qcow2") throw invalid(`Disk "${p}" is not qcow2; only qcow2 disks hold snapshots.`);
    return storageErrorsAsInvalid(async () => {
      const img = await Qcow2Image.open(p, { readOnly: false, noBacking: true });
      try {
        await createSnapshot(img, o.name);
      } finally {
        await img.close();
      }
      return diskInfo(p);
    });
  }

  private async remember(path: string, origin: string): Promise<DiskInfo> {
    const info = await diskInfo(path);
    this.store.putDisk({ path, format: info.format, virtualSize: info.virtualSize, createdAt: new Date().toISOString(), origin });
    return info;
  }
}

const STORAGE_ERRORS = ["Qcow2Error", "DiskImageError", "BlockRequestError", "BootImageError"];

/** The storage layer's errors are sentences about the disk the caller named: a 400, not a daemon bug. */
async function storageErrorsAsInvalid<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Error && (STORAGE_ERRORS.includes(e.name) || /^Cannot (open|read|write) disk/.test(e.message))) throw invalid(e.message);
    throw e;
  }
}
