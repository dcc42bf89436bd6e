// The NetBackend seam: how a virtual NIC reaches a network. Frames in, frames out; a backend knows
// nothing of virtio, and a virtio-net device knows nothing of sockets, switches or passt.

/** Receives Ethernet frames (without FCS) that the network delivers to the NIC. */
export type FrameSink = (frame: Uint8Array) => void;

export interface NetBackend {
  /** Short name for logs and stats, e.g. "switch:lab" or "user". */
  readonly kind: string;
  /** Starts delivering frames for the guest to `sink`. Called once. */
  start(sink: FrameSink): void;
  /** A frame from the guest. Returns false when the backend could not take it (queue full); the frame is dropped. */
  send(frame: Uint8Array): boolean;
  /** Flow control from the NIC: false while the guest has no room for more frames, true when it has again. */
  setReceiving(enabled: boolean): void;
  /** Releases sockets and child processes. */
  close(): Promise<void>;
}

/** Largest Ethernet frame any backend carries: a 64 KiB GSO-sized frame plus headers (QEMU's stream netdev allows 69,632 bytes). */
export const MAX_FRAME_BYTES = 65536 + 4096;
/** Smallest frame worth looking at: destination, source and EtherType. */
export const MIN_FRAME_BYTES = 14;
