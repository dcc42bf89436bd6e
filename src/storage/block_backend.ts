// The seam between virtio-blk (or any disk consumer) and disk formats.
// Formats implement it; virtio never knows which format it talks to.

export interface BlockStats {
  readRequests: number;
  writeRequests: number;
  flushRequests: number;
  discardRequests: number;
  bytesRead: number;
  bytesWritten: number;
  /** Sum of request latencies in milliseconds (divide by request counts for a mean). */
  totalLatencyMs: number;
}

export interface BlockBackend {
  /** Virtual disk size in bytes (a multiple of 512). */
  readonly size: number;
  readonly readOnly: boolean;
  /** Stable identifier reported to the guest (virtio-blk GET_ID), at most 20 bytes. */
  readonly id: string;
  /** How many requests may usefully be in flight at once. */
  readonly queueDepth: number;
  /** Whether discard / write-zeroes do anything useful (raw sparse files and qcow2 do). */
  readonly supportsDiscard: boolean;

  // `signal`: the caller no longer wants the result (the device was reset). A backend that has
  // not started the request yet (one queued behind a rate limit) drops it and rejects; one that
  // has started may finish it. Backends that never queue may ignore it.
  /** Reads buf.length bytes at byte offset. Offsets and lengths are multiples of 512. */
  read(offset: number, buf: Uint8Array, signal?: AbortSignal): Promise<void>;
  write(offset: number, data: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Makes every completed write durable (data and metadata) before resolving. */
  flush(signal?: AbortSignal): Promise<void>;
  discard(offset: number, length: number, signal?: AbortSignal): Promise<void>;
  writeZeroes(offset: number, length: number, mayUnmap: boolean, signal?: AbortSignal): Promise<void>;
  stats(): BlockStats;
  close(): Promise<void>;
}

/** Thrown for requests a backend refuses (out of range, read-only); virtio maps it to an IOERR status. */
export class BlockRequestError extends Error {
  override name = "BlockRequestError";
}

export function emptyBlockStats(): BlockStats {
  return {
    readRequests: 0,
    writeRequests: 0,
    flushRequests: 0,
    discardRequests: 0,
    bytesRead: 0,
    bytesWritten: 0,
    totalLatencyMs: 0,
  };
}
