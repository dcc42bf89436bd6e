// QEMU's stream netdev framing (also passt's): every frame is preceded by its length as a 32-bit
// big-endian number. The decoder takes arbitrary chunks from a socket and yields whole frames;
// a length that no Ethernet frame can have means the peer is not speaking the protocol. The writer
// gathers the frames sent in one turn of the event loop into one socket write.

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
  /** Bytes of an incomplete frame (or prefix), in arrival order. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /**
   * Feeds bytes; returns the frames completed by them. A frame is a view of the chunk that carried
   * it (Node gives every socket read its own buffer, so nothing reuses it): no copy per frame.
   * Throws FramingError on an impossible length (the stream cannot be resynchronized).
   */
  push(chunk: Uint8Array): Uint8Array[] {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.pendingBytes > 0) {
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      // Join the pieces only once the frame they start is complete: a large frame in many small reads costs one copy.
      if (this.pendingBytes < FRAME_PREFIX_BYTES || this.pendingBytes < FRAME_PREFIX_BYTES + this.frameLength(this.pending)) return [];
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const frames: Uint8Array[] = [];
    let at = 0;
    while (buf.length - at >= FRAME_PREFIX_BYTES) {
      const len = this.checked(buf.readUInt32BE(at));
      const end = at + FRAME_PREFIX_BYTES + len;
      if (end > buf.length) break;
      frames.push(new Uint8Array(buf.buffer, buf.byteOffset + at + FRAME_PREFIX_BYTES, len));
      at = end;
    }
    if (at < buf.length) {
      const rest = buf.subarray(at);
      this.pending = [rest];
      this.pendingBytes = rest.length;
      // A bad length is refused when it arrives, not when its frame would have been complete.
      if (rest.length >= FRAME_PREFIX_BYTES) this.frameLength(this.pending);
    }
    return frames;
  }

  /** The length prefix at the start of `pieces` (which hold at least its 4 bytes); throws on an impossible one. */
  private frameLength(pieces: Buffer[]): number {
    const first = pieces[0]!;
    const prefix = first.length >= FRAME_PREFIX_BYTES ? first : Buffer.concat(pieces).subarray(0, FRAME_PREFIX_BYTES);
    return this.checked(prefix.readUInt32BE(0));
  }

  /** `len`, if a frame can have it; a FramingError otherwise. */
  private checked(len: number): number {
    if (len > this.maxFrameBytes) throw new FramingError(`a frame length of ${len} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    return len;
  }
}

/** What FrameWriter needs of a socket (a net.Socket has it). */
export interface FrameSocket {
  readonly destroyed: boolean;
  readonly writableLength: number;
  write(data: Uint8Array): boolean;
}

/**
 * Writes frames to a socket in the stream framing. Frames sent in one turn of the event loop go
 * out in one write (a switch forwarding a burst makes one system call, not one per frame).
 */
export class FrameWriter {
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;

  /** `maxQueuedBytes`: bytes that may wait to be written before further frames are refused. */
  constructor(
    private readonly socket: FrameSocket,
    private readonly maxQueuedBytes: number,
  ) {}

  /**
   * Queues a frame; false (the frame is dropped) when the socket is gone or its queue is full. The
   * frame is copied at the end of this turn of the event loop, so it must not change before then
   * (every sender passes a frame it made or decoded for this send).
   */
  send(frame: Uint8Array): boolean {
    if (this.socket.destroyed || this.socket.writableLength + this.queuedBytes > this.maxQueuedBytes) return false;
    this.queued.push(frame);
    this.queuedBytes += FRAME_PREFIX_BYTES + frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  /** Writes what is queued as one buffer. */
  flush(): void {
    this.flushScheduled = false;
    if (this.queued.length === 0) return;
    const out = Buffer.allocUnsafe(this.queuedBytes);
    let at = 0;
    for (const f of this.queued) {
      out.writeUInt32BE(f.length, at);
      out.set(f, at + FRAME_PREFIX_BYTES);
      at += FRAME_PREFIX_BYTES + f.length;
    }
    this.queued = [];
    this.queuedBytes = 0;
    if (!this.socket.destroyed) this.socket.write(out);
  }
}
