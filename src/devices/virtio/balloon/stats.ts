// The guest's memory statistics as the virtio-balloon statistics queue carries them: an array of
// {le16 tag, le64 value} entries, 10 bytes each, packed (virtio 1.2 §5.5.6.3).

/** Named tags (virtio 1.2 §5.5.6.3 and Linux's include/uapi/linux/virtio_balloon.h); values are bytes unless noted. */
export const STAT_TAG_NAMES: Readonly<Record<number, string>> = {
  0: "swapIn",
  1: "swapOut",
  2: "majorFaults", // a count
  3: "minorFaults", // a count
  4: "free",
  5: "total",
  6: "available",
  7: "caches",
  8: "hugetlbAllocations", // a count
  9: "hugetlbFailures", // a count
  10: "oomKills", // a count (Linux 6.13+)
  11: "allocStalls",
  12: "asyncScans",
  13: "directScans",
  14: "asyncReclaims",
  15: "directReclaims",
};

export const STAT_ENTRY_BYTES = 10;
/** A buffer longer than this many entries is read only up to it (Linux sends at most 16). */
export const MAX_STAT_ENTRIES = 64;

export interface ParsedStats {
  values: Record<string, number>;
  /** Entries with a tag nobody named (kept out of `values`). */
  unknownTags: number;
  /** Bytes that did not make a whole entry, or entries past MAX_STAT_ENTRIES. */
  ignoredBytes: number;
}

/** Reads the entries of one statistics buffer; the last value of a repeated tag wins. */
export function parseStats(bytes: Uint8Array, totalBytes: number): ParsedStats {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: Record<string, number> = {};
  let unknownTags = 0;
  const entries = Math.floor(bytes.length / STAT_ENTRY_BYTES);
  for (let i = 0; i < entries; i++) {
    const o = i * STAT_ENTRY_BYTES;
    const tag = view.getUint16(o, true);
    const value = view.getUint32(o + 2, true) + view.getUint32(o + 6, true) * 0x1_0000_0000;
    const name = STAT_TAG_NAMES[tag];
    if (name === undefined) unknownTags++;
    else values[name] = value;
  }
  return { values, unknownTags, ignoredBytes: totalBytes - entries * STAT_ENTRY_BYTES };
}
