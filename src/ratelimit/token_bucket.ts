// A token bucket as Firecracker's rate limiter defines it: `size` tokens that refill continuously over
// `refillTimeMs`, plus a `oneTimeBurst` that is spent first and never refills.

export interface TokenBucketConfig {
  /** Bucket capacity in tokens (bytes or operations); also the largest burst after the one-time burst. */
  size: number;
  /** Time for an empty bucket to refill completely; the rate is size / refillTimeMs. */
  refillTimeMs: number;
  /** Extra tokens available once at the start, spent before the bucket and never refilled. */
  oneTimeBurst?: number;
}

/** Milliseconds on a monotonic clock; injectable so tests can drive time exactly. */
export type Clock = () => number;

export type Reduction =
  | { kind: "success" }
  | { kind: "failure" }
  /** Served although larger than the bucket; `ratio` bucket-sizes of tokens are owed and repaid before refilling resumes. */
  | { kind: "overConsumption"; ratio: number };

// Guards the token count against float error when elapsed time is an exact multiple of a token's time.
const EPSILON = 1e-9;

export class TokenBucket {
  readonly size: number;
  readonly refillTimeMs: number;
  private budget: number;
  private burst: number;
  // Time up to which refills are accounted for; in the future while an over-consumption is being repaid.
  private lastUpdate: number;

  constructor(
    config: TokenBucketConfig,
    private readonly now: Clock = () => performance.now(),
  ) {
    const burst = config.oneTimeBurst ?? 0;
    if (!(config.size > 0) || !Number.isSafeInteger(config.size)) throw new RangeError(`Token bucket size must be a positive integer, not ${config.size}`);
    if (!(config.refillTimeMs > 0) || !Number.isFinite(config.refillTimeMs)) throw new RangeError(`Token bucket refill time must be a positive number of milliseconds, not ${config.refillTimeMs}`);
    if (!(burst >= 0) || !Number.isSafeInteger(burst)) throw new RangeError(`Token bucket one-time burst must be a non-negative integer, not ${burst}`);
    this.size = config.size;
    this.refillTimeMs = config.refillTimeMs;
    this.budget = config.size;
    this.burst = burst;
    this.lastUpdate = now();
  }

  /** Tokens available now from the refilling bucket (not counting the one-time burst). */
  get available(): number {
    this.refill();
    return this.budget;
  }

  get oneTimeBurst(): number {
    return this.burst;
  }

  /**
   * Takes `tokens` if they are available: the one-time burst first, then the bucket. A request larger than the
   * bucket is served once the bucket is full and leaves a debt. Unlike Firecracker, a failure consumes nothing.
   */
  reduce(tokens: number): Reduction {
    if (this.waitTimeMs(tokens) > 0) return { kind: "failure" };
    if (this.burst > 0) {
      const fromBurst = Math.min(this.burst, tokens);
      this.burst -= fromBurst;
      tokens -= fromBurst;
      // Refilling starts only once the burst is spent (the bucket is full until then anyway).
      this.lastUpdate = Math.max(this.lastUpdate, this.now());
      if (tokens === 0) return { kind: "success" };
    }
    if (tokens <= this.budget) {
      this.budget -= tokens;
      return { kind: "success" };
    }
    // Over-consumption: empty the bucket and push refilling back by the time the excess takes to earn.
    const excess = tokens - this.budget;
    this.budget = 0;
    this.lastUpdate += (excess * this.refillTimeMs) / this.size;
    return { kind: "overConsumption", ratio: excess / this.size };
  }

  /** Milliseconds until reduce(tokens) would not fail (0 means now). */
  waitTimeMs(tokens: number): number {
    if (tokens <= this.burst) return 0;
    this.refill();
    // More than a bucketful is served from a full bucket (see reduce).
    const needed = Math.min(tokens - this.burst, this.size);
    const missing = needed - this.budget;
    if (missing <= 0) return 0;
    return this.lastUpdate - this.now() + (missing * this.refillTimeMs) / this.size;
  }

  /** Gives tokens back (an operation that was not performed after all); the burst first, as Firecracker does. */
  replenish(tokens: number): void {
    if (this.burst > 0) {
      this.burst += tokens;
      return;
    }
    this.budget = Math.min(this.size, this.budget + tokens);
  }

  private refill(): void {
    const now = this.now();
    if (now <= this.lastUpdate) return;
    const earned = Math.floor(((now - this.lastUpdate) * this.size) / this.refillTimeMs + EPSILON);
    if (this.budget + earned >= this.size) {
      this.budget = this.size;
      this.lastUpdate = now;
      return;
    }
    this.budget += earned;
    // Keep the fraction of a token already earned by advancing only by the time the whole tokens took.
    this.lastUpdate += (earned * this.refillTimeMs) / this.size;
  }
}
