// Consistency check: recount every reference from the metadata and compare with the refcounts.
// Repair rebuilds the whole refcount structure past the end of the file, then switches the
// header to it in one write, so an interrupted repair changes nothing.

import { syncCopiedFlags } from "./copied_flags.js";
import { setEntry } from "./entries.js";
import { INCOMPAT_CORRUPT } from "./header.js";
import type { Qcow2Image } from "./image.js";
import { setRefcount } from "./refcount_codec.js";
import { readL1, walkTree } from "./tree.js";

export interface CheckReport {
  /** References that point nowhere valid, or refcounts lower than the references (data at risk). */
  corruptions: number;
  /** Clusters whose refcount is higher than their references (wasted space only). */
  leaks: number;
  /** COPIED flags that disagree with the refcounts (counted in corruptions, as qemu-img does). */
  copiedFlagErrors: number;
  repairedLeaks: number;
  repairedCorruptions: number;
  messages: string[];
  /** Clusters in use by the image (data and metadata). */
  allocatedClusters: number;
  imageEndOffset: number;
}

export async function checkImage(img: Qcow2Image, o: { repair: boolean }): Promise<CheckReport> {
  return img.exclusive(() => checkLocked(img, o.repair));
}

async function checkLocked(img: Qcow2Image, repair: boolean): Promise<CheckReport> {
  const cs = img.clusterSize;
  const h = img.header;
  const n = Math.max(img.refcounts.end, Math.ceil(img.file.size / cs));
  const expected = new Uint32Array(n);
  const r: CheckReport = {
    corruptions: 0,
    leaks: 0,
    copiedFlagErrors: 0,
    repairedLeaks: 0,
    repairedCorruptions: 0,
    messages: [],
    allocatedClusters: 0,
    imageEndOffset: 0,
  };
  const bad = (problem: string): void => {
    r.corruptions++;
    if (r.messages.length < 100) r.messages.push(`ERROR ${problem}`);
  };
  const ref = (off: number, count: number, what: string): void => {
    for (let j = 0; j < count; j++) {
      const o = off + j * cs;
      if (o % cs !== 0 || o / cs >= n) bad(`${what} at offset ${o} is misaligned or outside the file`);
      else expected[o / cs]++;
    }
  };
  ref(0, 1, "header");
  ref(h.l1TableOffset, Math.ceil((h.l1Size * 8) / cs), "L1 table");
  ref(img.refcounts.tableOffset, img.refcounts.tableClusters, "refcount table");
  for (const [, off] of img.refcounts.usedBlocks()) ref(off, 1, "refcount block");
  if (h.nbSnapshots > 0) ref(h.snapshotsOffset, Math.ceil(img.snapshotTableBytes / cs), "snapshot table");
  const visitor = {
    l2: (off: number) => ref(off, 1, "L2 table"),
    data: (off: number) => ref(off, 1, "data cluster"),
    bad,
  };
  for (const sn of img.snapshots) {
    ref(sn.l1TableOffset, Math.ceil((sn.l1Size * 8) / cs), `L1 table of snapshot "${sn.name}"`);
    if (sn.l1TableOffset + sn.l1Size * 8 > img.file.size) continue;
    await walkTree(img, await readL1(img, sn.l1TableOffset, sn.l1Size), sn.l1Size, visitor);
  }
  await walkTree(img, img.l1, h.l1Size, visitor);

  let refErrors = 0;
  for (let c = 0; c < n; c++) {
    let onDisk: number;
    try {
      onDisk = await img.refcounts.get(c);
    } catch (e) {
      bad((e as Error).message);
      refErrors++;
      break;
    }
    if (expected[c] > 0) {
      r.allocatedClusters++;
      r.imageEndOffset = (c + 1) * cs;
    }
    if (onDisk === expected[c]) continue;
    if (onDisk > expected[c]) {
      r.leaks++;
      if (r.messages.length < 100) r.messages.push(`Leaked cluster ${c} refcount=${onDisk} reference=${expected[c]}`);
    } else {
      refErrors++;
      bad(`cluster ${c} refcount=${onDisk} reference=${expected[c]}`);
    }
  }
  const refcountOf = (off: number): number => (off / cs < n ? expected[off / cs] : 0);
  r.copiedFlagErrors = await syncCopiedFlags(img, refcountOf, true);
  if (r.copiedFlagErrors > 0) {
    r.corruptions += r.copiedFlagErrors;
    r.messages.push(`ERROR ${r.copiedFlagErrors} OFLAG_COPIED flags disagree with the refcounts`);
  }
  if (!repair || img.readOnly) return r;

  if (r.leaks > 0 || refErrors > 0) {
    await rebuildRefcounts(img, expected);
    r.repairedLeaks = r.leaks;
    r.repairedCorruptions += refErrors;
  }
  if (r.copiedFlagErrors > 0) {
    await syncCopiedFlags(img, refcountOf);
    r.repairedCorruptions += r.copiedFlagErrors;
  }
  if (r.corruptions === r.repairedCorruptions && h.incompatible & BigInt(INCOMPAT_CORRUPT)) {
    h.incompatible &= ~BigInt(INCOMPAT_CORRUPT);
    await img.writeHeader();
  }
  await img.file.sync();
  return r;
}

/** Writes a fresh refcount table and blocks for `expected` past the file's end, then points the header at them. */
async function rebuildRefcounts(img: Qcow2Image, counted: Uint32Array): Promise<void> {
  const cs = img.clusterSize;
  // The old table and blocks stop being metadata once the header points at the new ones.
  const expected = Uint32Array.from(counted);
  const drop = (off: number): void => {
    if (off % cs === 0 && off / cs < expected.length && expected[off / cs] > 0) expected[off / cs]--;
  };
  for (let c = 0; c < img.refcounts.tableClusters; c++) drop(img.refcounts.tableOffset + c * cs);
  for (const [, off] of img.refcounts.usedBlocks()) drop(off);
  const order = img.header.refcountOrder;
  const epb = img.refcounts.entriesPerBlock;
  const n = expected.length;
  const start = n;
  const usedT = new Set<number>();
  for (let c = 0; c < n; c++) if (expected[c] > 0) usedT.add(Math.floor(c / epb));
  let m = 1;
  let blocksT: number[] = [];
  for (;;) {
    const structEnd = start + m + blocksT.length;
    const ts = new Set(usedT);
    for (let c = start; c < structEnd; c++) ts.add(Math.floor(c / epb));
    const sorted = [...ts].sort((a, b) => a - b);
    const entries = sorted[sorted.length - 1] + 1;
    const newM = Math.max(1, Math.ceil((entries * 8) / cs));
    if (newM === m && sorted.length === blocksT.length) {
      blocksT = sorted;
      break;
    }
    m = newM;
    blocksT = sorted;
  }
  const count = (c: number): number => (c < n ? expected[c] : c < start + m + blocksT.length ? 1 : 0);
  const table = Buffer.alloc(m * cs);
  for (let j = 0; j < blocksT.length; j++) {
    const t = blocksT[j];
    const block = Buffer.alloc(cs);
    for (let i = 0; i < epb; i++) {
      const v = count(t * epb + i);
      if (v > 0) setRefcount(block, i, order, Math.min(v, img.refcounts.max));
    }
    const off = (start + m + j) * cs;
    await img.file.write(off, block);
    setEntry(table, t, 0, off);
  }
  await img.file.write(start * cs, table);
  await img.file.sync();
  img.header.refcountTableOffset = start * cs;
  img.header.refcountTableClusters = m;
  await img.writeHeader();
  await img.file.sync();
  img.refcounts = img.makeRefcounts(start * cs, m);
  await img.refcounts.load();
}
