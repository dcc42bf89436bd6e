// Per-NIC rate limits: token buckets for bytes and packets in each direction (the model the disk
// limits use, after Firecracker). A frame waits until its tokens are there; nothing is dropped
// unless it could never fit.

import { TokenBucket, type Clock, type TokenBucketConfig } from "../ratelimit/token_bucket.js";
import type { NicShaper } from "./nic_policy.js";

export interface DirectionLimits {
  bandwidth?: TokenBucketConfig;
  ops?: TokenBucketConfig;
}

export interface NicLimits {
  rx?: DirectionLimits;
  tx?: DirectionLimits;
}

interface Buckets {
  bandwidth: TokenBucket | null;
  ops: TokenBucket | null;
}

export class TokenBucketShaper implements NicShaper {
  private rx: Buckets = { bandwidth: null, ops: null };
  private tx: Buckets = { bandwidth: null, ops: null };
  private current: NicLimits = {};

  constructor(
    limits: NicLimits,
    private readonly now: Clock = () => performance.now(),
  ) {
    this.setLimits(limits);
  }

  get limits(): NicLimits {
    return this.current;
  }

  /** Replaces the limits (at run time too): buckets start full. */
  setLimits(limits: NicLimits): void {
    const make = (c: TokenBucketConfig | undefined): TokenBucket | null => (c ? new TokenBucket(c, this.now) : null);
    this.rx = { bandwidth: make(limits.rx?.bandwidth), ops: make(limits.rx?.ops) };
    this.tx = { bandwidth: make(limits.tx?.bandwidth), ops: make(limits.tx?.ops) };
    this.current = limits;
  }

  admit(dir: "rx" | "tx", bytes: number): number {
    const b = dir === "rx" ? this.rx : this.tx;
    const wait = Math.max(b.bandwidth?.waitTimeMs(bytes) ?? 0, b.ops?.waitTimeMs(1) ?? 0);
    if (wait > 0) return wait;
    b.bandwidth?.reduce(bytes);
    b.ops?.reduce(1);
    return 0;
  }
}
