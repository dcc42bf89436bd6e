// Compressed clusters: raw deflate streams (QEMU writes them with zlib, window bits -12).

import { inflateRawSync, constants } from "node:zlib";
import { corruptError } from "./errors.js";

/** Inflates one compressed cluster; anything but exactly clusterSize bytes of output is corruption. */
export function inflateCluster(path: string, input: Uint8Array, clusterSize: number, at: number): Buffer {
  let out: Buffer;
  try {
    // The stored run is padded to sectors, so bytes after the stream's end are expected.
    out = inflateRawSync(input, { maxOutputLength: clusterSize, finishFlush: constants.Z_SYNC_FLUSH });
  } catch (e) {
    throw corruptError(path, `compressed cluster at offset ${at} does not inflate (${(e as Error).message})`);
  }
  if (out.length !== clusterSize) {
    throw corruptError(path, `compressed cluster at offset ${at} inflates to ${out.length} bytes, not ${clusterSize}`);
  }
  return out;
}
