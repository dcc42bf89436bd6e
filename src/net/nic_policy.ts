// What a virtual NIC asks before a frame passes: the firewall and anti-spoofing verdict, and the
// rate limits. The virtio-net device calls it; src/net implements it (NicFilter, NicShaper).

export type DropReason = "firewall" | "spoof" | "malformed";

export interface NicPolicy {
  /** Null to let a frame from the guest pass, else why it is dropped. */
  checkTx(frame: Uint8Array): DropReason | null;
  /** Null to let a frame for the guest pass, else why it is dropped. */
  checkRx(frame: Uint8Array): DropReason | null;
}

export interface NicShaper {
  /**
   * Takes the tokens for one frame of `bytes` in direction `dir` and returns 0, or returns the
   * milliseconds to wait before asking again (nothing taken).
   */
  admit(dir: "rx" | "tx", bytes: number): number;
}
