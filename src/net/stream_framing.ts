// QEMU's stream netdev framing (also passt's): every frame is preceded by its length as a 32-bit
// big-endian number. The decoder takes arbitrary chunks from a socket and yields whole frames;
// a length that no Ethernet frame can have means the peer is not speaking the protocol.

import { MAX_FRAME_BYTES } from "./backend.js";

/** Bytes of the length prefix. */
export const FRAME_PREFIX_BYTES = 4;

/** Prefixes `frame` with its length. */
export function encodeFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, FRAME_PREFIX_BYTES);
  return out;
}

export class FramingError extends Error {
  override name = "FramingError";
}

export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private need = -1; // length of the frame being assembled, -1 while reading a prefix

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Feeds bytes; returns the frames completed by them. Throws FramingError on an impossible length (the stream cannot be resynchronized). */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.byteLength;
    for (;;) {
      if (this.need < 0) {
        if (this.pendingBytes < FRAME_PREFIX_BYTES) break;
        const len = this.take(FRAME_PREFIX_BYTES).readUInt32BE(0);
        if (len > this.maxFrameBytes) throw new FramingError(`a frame length of ${len} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
        this.need = len;
      }
      if (this.pendingBytes < this.need) break;
      // A copy, so a frame never aliases a socket buffer that is reused.
      frames.push(new Uint8Array(this.take(this.need)));
      this.need = -1;
    }
    return frames;
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }
}
