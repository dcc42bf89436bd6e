// Counters of one virtio-blk device, exported flat for Prometheus-style metrics.

export type VirtioBlkStats = {
  /** Every chain taken from the queue. */
  requests: number;
  /** ioErrors + malformedRequests (the generic error count of every device). */
  errors: number;
  readRequests: number;
  writeRequests: number;
  flushRequests: number;
  getIdRequests: number;
  discardRequests: number;
  writeZeroesRequests: number;
  /** Requests of a type the device does not implement (answered UNSUPP). */
  unsupportedRequests: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests answered IOERR (out of range, read-only disk, backend failure, bad shape). */
  ioErrors: number;
  /** Chains that could not carry a request at all (no status byte). */
  malformedRequests: number;
  inFlight: number;
  maxInFlight: number;
  /** Data bytes held for requests still on the backend, including ones a reset abandoned. */
  outstandingBytes: number;
};

export function emptyVirtioBlkStats(): VirtioBlkStats {
  return {
    requests: 0,
    errors: 0,
    readRequests: 0,
    writeRequests: 0,
    flushRequests: 0,
    getIdRequests: 0,
    discardRequests: 0,
    writeZeroesRequests: 0,
    unsupportedRequests: 0,
    bytesRead: 0,
    bytesWritten: 0,
    ioErrors: 0,
    malformedRequests: 0,
    inFlight: 0,
    maxInFlight: 0,
    outstandingBytes: 0,
  };
}
