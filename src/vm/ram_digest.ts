// A checksum of every RAM page, written to the file NODEVISOR_RAM_DIGEST_FILE names: a migration's
// source writes the digest of its RAM as it froze the last pages (the state it sends), the
// destination the digest of the RAM it received, and a test compares the two: any page the
// dirty log missed shows up, whether or not the guest happens to trip over it.

import { writeFileSync } from "node:fs";
import type { GuestRam } from "../seams/guest_ram.js";
import { pageChecksum, PAGE_SIZE } from "./snapshot/snapshot_file.js";

/** pageChecksum of each RAM page, in page order. */
export function ramDigest(ram: GuestRam): Uint32Array {
  const pages = ram.size / PAGE_SIZE;
  const out = new Uint32Array(pages);
  const words = ram.i32;
  for (let p = 0; p < pages; p++) out[p] = pageChecksum(words, p * (PAGE_SIZE / 4));
  return out;
}

/** Writes ramDigest(ram) where NODEVISOR_RAM_DIGEST_FILE says (a test hook; nothing when unset). */
export function writeRamDigestIfAsked(ram: GuestRam): void {
  const path = process.env.NODEVISOR_RAM_DIGEST_FILE;
  if (path) writeFileSync(path, ramDigest(ram));
}
