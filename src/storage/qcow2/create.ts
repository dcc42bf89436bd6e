// Creating an empty qcow2 image: header, one refcount table, refcount blocks, and an L1 table.

import { open } from "node:fs/promises";
import { Qcow2Error } from "./errors.js";
import {
  EXT_BACKING_FORMAT,
  EXT_FEATURE_NAMES,
  V3_HEADER_LENGTH,
  encodeHeaderFields,
  encodeTail,
  featureNameTable,
  type Qcow2Header,
} from "./header.js";
import { setEntry } from "./entries.js";
import { setRefcount } from "./refcount_codec.js";

export interface Qcow2CreateOptions {
  /** Virtual size in bytes (rounded up to 512). */
  size: number;
  clusterSize?: number;
  backingFile?: string;
  backingFormat?: string;
  version?: 2 | 3;
  refcountBits?: 1 | 2 | 4 | 8 | 16 | 32 | 64;
}

export const DEFAULT_CLUSTER_SIZE = 65536;

export async function createQcow2(path: string, o: Qcow2CreateOptions): Promise<void> {
  const cs = o.clusterSize ?? DEFAULT_CLUSTER_SIZE;
  const clusterBits = Math.log2(cs);
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    throw new Qcow2Error(`Cannot create disk "${path}": cluster size ${cs} must be a power of two from 512 B to 2 MiB`);
  }
  if (!Number.isSafeInteger(o.size) || o.size < 0) throw new Qcow2Error(`Cannot create disk "${path}": invalid size ${o.size}`);
  const version = o.version ?? 3;
  const refcountBits = o.refcountBits ?? 16;
  const order = Math.log2(refcountBits);
  if (version === 2 && refcountBits !== 16) throw new Qcow2Error(`Cannot create disk "${path}": version 2 images need 16-bit refcounts`);
  const size = Math.ceil(o.size / 512) * 512;
  const l1Size = Math.ceil(size / (cs * (cs / 8)));
  if (l1Size * 8 > 32 * 1024 * 1024) throw new Qcow2Error(`Cannot create disk "${path}": ${size} bytes is too large for ${cs}-byte clusters`);
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs));
  const perBlock = (cs * 8) / refcountBits;
  // Layout: header, refcount table, k refcount blocks, L1 table.
  let k = 1;
  while (k * perBlock < 2 + k + l1Clusters) k++;
  if (k > cs / 8) throw new Qcow2Error(`Cannot create disk "${path}": metadata does not fit one refcount table`);
  const total = 2 + k + l1Clusters;

  const h: Qcow2Header = {
    version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits,
    size,
    cryptMethod: 0,
    l1Size,
    l1TableOffset: (2 + k) * cs,
    refcountTableOffset: cs,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: order,
    headerLength: version === 3 ? V3_HEADER_LENGTH : 72,
    compressionType: 0,
    extensions: [],
    backingFile: o.backingFile ?? null,
    backingFormat: o.backingFormat ?? null,
    featureNames: [],
  };
  if (o.backingFile !== undefined && o.backingFormat) h.extensions.push({ type: EXT_BACKING_FORMAT, data: Buffer.from(o.backingFormat) });
  if (version === 3) h.extensions.push({ type: EXT_FEATURE_NAMES, data: featureNameTable() });
  const fixedLen = h.headerLength;
  const tail = encodeTail(h, fixedLen);
  if (fixedLen + tail.bytes.length > cs) throw new Qcow2Error(`Cannot create disk "${path}": backing file name does not fit the header cluster`);
  if (h.backingFile) {
    h.backingFileOffset = tail.backingOffset;
    h.backingFileSize = Buffer.byteLength(h.backingFile);
  }
  const headerCluster = Buffer.alloc(cs);
  encodeHeaderFields(h).copy(headerCluster, 0);
  tail.bytes.copy(headerCluster, fixedLen);

  const table = Buffer.alloc(cs);
  const blocks = Buffer.alloc(k * cs);
  for (let j = 0; j < k; j++) setEntry(table, j, 0, (2 + j) * cs);
  for (let c = 0; c < total; c++) setRefcount(blocks.subarray(Math.floor(c / perBlock) * cs), c % perBlock, order, 1);

  const fh = await open(path, "wx").catch((e: Error) => {
    throw new Qcow2Error(`Cannot create disk "${path}": ${e.message}`);
  });
  try {
    await fh.write(table, 0, cs, cs);
    await fh.write(blocks, 0, blocks.length, 2 * cs);
    await fh.write(Buffer.alloc(l1Clusters * cs), 0, l1Clusters * cs, (2 + k) * cs);
    // The header goes last so a half-created file is never a valid image.
    await fh.write(headerCluster, 0, cs, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
