// Walking an L1 tree (the active one or a snapshot's): every L2 table and data cluster it references.

import { ClusterKind, compressedClusters, decodeL2, entryOffset } from "./entries.js";
import type { Qcow2Image } from "./image.js";

export interface TreeVisitor {
  l2(offset: number, l1Index: number): void | Promise<void>;
  data(offset: number): void | Promise<void>;
  /** A reference that points nowhere valid; the walk skips it. */
  bad(problem: string): void;
}

export async function readL1(img: Qcow2Image, offset: number, entries: number): Promise<Buffer> {
  const b = Buffer.alloc(entries * 8);
  if (entries > 0) await img.file.read(offset, b, "snapshot L1 table");
  return b;
}

/** An L2 table from the cache if it is there, else straight from the file without caching it. */
export async function readL2Uncached(img: Qcow2Image, off: number): Promise<Buffer> {
  const hit = img.l2Cache.peek(off);
  if (hit) return hit;
  const t = Buffer.alloc(img.clusterSize);
  await img.file.read(off, t, "L2 table");
  return t;
}

export async function walkTree(img: Qcow2Image, l1: Buffer, l1Size: number, v: TreeVisitor): Promise<void> {
  const cs = img.clusterSize;
  for (let i = 0; i < l1Size; i++) {
    const l2off = entryOffset(l1, i);
    if (l2off === 0) continue;
    if (l2off % cs !== 0 || l2off + cs > img.file.size) {
      v.bad(`L2 table ${i} at offset ${l2off} is misaligned or outside the file`);
      continue;
    }
    // Read before visiting (dropping the last reference evicts the table), and around the cache:
    // a whole-image walk under the metadata lock must not pin every table in memory.
    const table = await readL2Uncached(img, l2off);
    await v.l2(l2off, i);
    for (let j = 0; j < img.l2Entries; j++) {
      const e = decodeL2(table, j, img.header.clusterBits, img.header.version);
      if (e.kind === ClusterKind.Normal || (e.kind === ClusterKind.Zero && e.offset !== 0)) {
        if (e.offset % cs !== 0 || e.offset >= img.file.size) v.bad(`data cluster at offset ${e.offset} is misaligned or outside the file`);
        else await v.data(e.offset);
      } else if (e.kind === ClusterKind.Compressed) {
        if (e.offset >= img.file.size) v.bad(`compressed cluster at offset ${e.offset} lies outside the file`);
        else for (const c of compressedClusters(e, cs)) if (c < img.file.size) await v.data(c);
      }
    }
  }
}

/** Adds delta to the refcount of every L2 table and data reference in the tree (one reference per path). */
export async function addTreeRefs(img: Qcow2Image, l1: Buffer, l1Size: number, delta: number): Promise<void> {
  img.refcounts.beginBatch();
  try {
    await walkTree(img, l1, l1Size, {
      l2: async (off) => void (await img.refcounts.changeAt(off, delta)),
      data: async (off) => void (await img.refcounts.changeAt(off, delta)),
      bad: (problem) => {
        throw new Error(`Disk "${img.path}" is corrupt: ${problem}`);
      },
    });
  } finally {
    await img.refcounts.endBatch();
  }
}
