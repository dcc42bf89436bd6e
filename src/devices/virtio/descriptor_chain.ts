// A descriptor chain popped from a virtqueue, seen by a device as bounds-checked views of guest RAM,
// and the helpers devices use to gather from readable segments and scatter into writable ones.

/** One chain: readable segments first (driver -> device), then writable ones (device -> driver). */
export interface DescriptorChain {
  /** Index of the head descriptor; the value to hand back in the used ring. */
  readonly head: number;
  /** Live views of guest RAM the device may read (already checked to lie inside RAM). */
  readonly readable: readonly Uint8Array[];
  /** Live views of guest RAM the device may write (already checked to lie inside RAM). */
  readonly writable: readonly Uint8Array[];
  readonly readableBytes: number;
  readonly writableBytes: number;
}

/** Copies up to `max` bytes of the segments, starting `skip` bytes in, into a new buffer. */
export function gather(segments: readonly Uint8Array[], skip = 0, max = Number.MAX_SAFE_INTEGER): Uint8Array {
  let total = 0;
  for (const s of segments) total += s.length;
  const len = Math.max(0, Math.min(total - skip, max));
  const out = new Uint8Array(len);
  let pos = 0;
  let toSkip = skip;
  for (const s of segments) {
    if (pos >= len) break;
    if (toSkip >= s.length) {
      toSkip -= s.length;
      continue;
    }
    const part = s.subarray(toSkip, toSkip + (len - pos));
    toSkip = 0;
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

/** Copies `data` into the segments starting `skip` bytes in; returns how many bytes fitted. */
export function scatter(segments: readonly Uint8Array[], data: Uint8Array, skip = 0): number {
  let pos = 0;
  let toSkip = skip;
  for (const s of segments) {
    if (pos >= data.length) break;
    if (toSkip >= s.length) {
      toSkip -= s.length;
      continue;
    }
    const room = s.length - toSkip;
    const n = Math.min(room, data.length - pos);
    s.set(data.subarray(pos, pos + n), toSkip);
    toSkip = 0;
    pos += n;
  }
  return pos;
}

/** Splits segments at byte `at`: the views before it and the views from it on (no copy). */
export function splitSegments(
  segments: readonly Uint8Array[],
  at: number,
): { before: Uint8Array[]; after: Uint8Array[] } {
  const before: Uint8Array[] = [];
  const after: Uint8Array[] = [];
  let pos = 0;
  for (const s of segments) {
    if (pos + s.length <= at) before.push(s);
    else if (pos >= at) after.push(s);
    else {
      before.push(s.subarray(0, at - pos));
      after.push(s.subarray(at - pos));
    }
    pos += s.length;
  }
  return { before, after };
}
