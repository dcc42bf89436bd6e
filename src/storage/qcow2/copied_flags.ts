// The COPIED flag (bit 63) on active L1/L2 entries must say "refcount is exactly 1": writes
// go in place only then, and qemu-img check verifies it.

import { ClusterKind, ENTRY_COPIED_HI, ENTRY_ZERO_LO, decodeL2, entryCopied, entryOffset, setEntry } from "./entries.js";
import type { Qcow2Image } from "./image.js";
import { readL2Uncached } from "./tree.js";

/** Sets every active COPIED flag from the refcounts (or from `refcountOf` when given); returns how many changed. */
export async function syncCopiedFlags(img: Qcow2Image, refcountOf?: (offset: number) => number, dryRun = false): Promise<number> {
  const rc = async (off: number): Promise<number> => (refcountOf ? refcountOf(off) : await img.refcounts.getAt(off));
  let changed = 0;
  const cs = img.clusterSize;
  for (let i = 0; i < img.header.l1Size; i++) {
    const l2off = entryOffset(img.l1, i);
    if (l2off === 0 || l2off % cs !== 0 || l2off + cs > img.file.size) continue;
    const want = (await rc(l2off)) === 1;
    if (want !== entryCopied(img.l1, i)) {
      changed++;
      if (!dryRun) await img.setL1(i, l2off, want);
    }
    // Callers hold exclusive(): no loader can race, so an uncached table read here stays current.
    const table = await readL2Uncached(img, l2off);
    let first = -1;
    let last = -1;
    for (let j = 0; j < img.l2Entries; j++) {
      const e = decodeL2(table, j, img.header.clusterBits, img.header.version);
      if (e.kind !== ClusterKind.Normal && !(e.kind === ClusterKind.Zero && e.offset !== 0)) continue;
      if (e.offset % cs !== 0 || e.offset >= img.file.size) continue;
      const wantData = (await rc(e.offset)) === 1;
      if (wantData === e.copied) continue;
      changed++;
      if (dryRun) continue;
      const lo = table.readUInt32BE(j * 8 + 4) & ENTRY_ZERO_LO;
      setEntry(table, j, wantData ? ENTRY_COPIED_HI : 0, e.offset, lo);
      if (first < 0) first = j;
      last = j;
    }
    if (first >= 0) await img.file.write(l2off + first * 8, table.subarray(first * 8, (last + 1) * 8));
  }
  return changed;
}
