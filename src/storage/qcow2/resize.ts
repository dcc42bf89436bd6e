// Growing a qcow2 disk: a bigger virtual size, and a bigger L1 table when the old one is full.

import { Qcow2Error } from "./errors.js";
import type { Qcow2Image } from "./image.js";

const MAX_L1_BYTES = 32 * 1024 * 1024;

export async function resizeImage(img: Qcow2Image, newSize: number): Promise<void> {
  if (!Number.isSafeInteger(newSize) || newSize % 512 !== 0 || newSize <= 0) {
    throw new Qcow2Error(`Cannot resize disk "${img.path}": size ${newSize} is not a positive multiple of 512`);
  }
  if (newSize < img.size) throw new Qcow2Error(`Cannot resize disk "${img.path}": shrinking is not supported`);
  await img.exclusive(async () => {
    const needed = Math.ceil(newSize / (img.clusterSize * img.l2Entries));
    if (needed > img.header.l1Size) await growL1Table(img, needed);
    img.header.size = newSize;
    await img.writeHeader();
    await img.file.sync();
    img.size = newSize;
  });
}

/** Makes the active L1 table at least `entries` long, moving it when its clusters are full. Caller holds exclusive(). */
export async function growL1Table(img: Qcow2Image, entries: number): Promise<void> {
  if (entries * 8 > MAX_L1_BYTES) throw new Qcow2Error(`Disk "${img.path}": L1 table would exceed 32 MiB`);
  const h = img.header;
  const cs = img.clusterSize;
  if (entries * 8 <= img.l1.length) {
    // The spare entries of the last cluster are zero in memory; make sure they are on disk too.
    await img.file.write(h.l1TableOffset + h.l1Size * 8, img.l1.subarray(h.l1Size * 8, entries * 8));
    await img.file.sync();
    h.l1Size = entries;
    await img.writeHeader();
    return;
  }
  const clusters = Math.ceil((entries * 8) / cs);
  const l1 = Buffer.alloc(clusters * cs);
  img.l1.copy(l1, 0, 0, h.l1Size * 8);
  const off = await img.refcounts.alloc(clusters);
  await img.file.write(off, l1);
  await img.file.sync(); // the new table before the header that points at it
  const oldOff = h.l1TableOffset;
  const oldClusters = Math.ceil((h.l1Size * 8) / cs);
  h.l1TableOffset = off;
  h.l1Size = entries;
  await img.writeHeader();
  await img.file.sync(); // the header switch before the old table's clusters become free
  img.l1 = l1;
  for (let c = 0; c < oldClusters; c++) await img.refcounts.changeAt(oldOff + c * cs, -1);
}
