// Snapshot state of a virtio-blk device.

export interface VirtioBlkState {
  /** Heads of requests taken from the queue but not completed; they are re-read from guest RAM and re-run on restore. */
  inFlightHeads: number[];
}
