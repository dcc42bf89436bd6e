// Wraps a BlockBackend with Firecracker-style bandwidth and operation limits; waiting requests queue in FIFO order.

import { BlockRequestError, type BlockBackend, type BlockStats } from "../block_backend.js";
import { TokenBucket, type Clock, type TokenBucketConfig } from "../../ratelimit/token_bucket.js";

export interface RateLimitConfig {
  /** Bytes read or written; flush, discard and write-zeroes move no data and are not charged here. */
  bandwidth?: TokenBucketConfig;
  /** Requests of every kind, one token each. */
  ops?: TokenBucketConfig;
}

/** Time and timers, injectable so tests can drive the limiter exactly. */
export interface RateLimitTime {
  now: Clock;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface ThrottleStats {
  /** Requests that had to wait for tokens. */
  throttledRequests: number;
  /** Sum of the time requests spent waiting for tokens, in milliseconds. */
  totalWaitMs: number;
}

const realTime: RateLimitTime = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface Waiter {
  bytes: number;
  queuedAt: number;
  resolve(): void;
  reject(error: Error): void;
}

function abandoned(id: string): BlockRequestError {
  return new BlockRequestError(`A request to disk "${id}" was abandoned while it waited for its rate limit`);
}

export class RateLimitedBackend implements BlockBackend {
  private bandwidth?: TokenBucket;
  private ops?: TokenBucket;
  private readonly queue: Waiter[] = [];
  private timer: unknown = undefined;
  private closed = false;
  private readonly throttle: ThrottleStats = { throttledRequests: 0, totalWaitMs: 0 };

  /** The disk's identity for the guest, kept when the backend underneath is replaced. */
  readonly id: string;
  /** Told of each completed write, discard and write-zeroes (a block migration's dirty log). */
  onWritten: ((offset: number, length: number) => void) | null = null;

  /** A bucket with size 0 means "no limit", as in Firecracker's API. */
  constructor(
    private inner: BlockBackend,
    config: RateLimitConfig,
    private readonly time: RateLimitTime = realTime,
  ) {
    this.id = inner.id;
    this.setLimits(config);
  }

  /**
   * Puts `next` under the limiter in place of the current backend, which is returned (the caller
   * flushes and closes it). Only while no request is in flight: a VM snapshot moves a paused
   * VM's disk onto a new overlay this way. `next` must have the same size.
   */
  replaceInner(next: BlockBackend): BlockBackend {
    if (next.size !== this.inner.size) throw new RangeError(`Disk "${this.id}": the replacement is ${next.size} bytes, not ${this.inner.size}`);
    const old = this.inner;
    this.inner = next;
    return old;
  }

  /** Replaces the limits while the disk is in use; waiting requests are re-checked at once. */
  setLimits(config: RateLimitConfig): void {
    this.bandwidth = config.bandwidth !== undefined && config.bandwidth.size !== 0 ? new TokenBucket(config.bandwidth, this.time.now) : undefined;
    this.ops = config.ops !== undefined && config.ops.size !== 0 ? new TokenBucket(config.ops, this.time.now) : undefined;
    if (this.queue.length > 0) {
      if (this.timer !== undefined) this.time.clearTimer(this.timer);
      this.pump();
    }
  }

  get size(): number {
    return this.inner.size;
  }
  /** The backend under the limiter: a block migration reads through it without taking the guest's tokens. */
  get unlimited(): BlockBackend {
    return this.inner;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get queueDepth(): number {
    return this.inner.queueDepth;
  }
  get supportsDiscard(): boolean {
    return this.inner.supportsDiscard;
  }

  async read(offset: number, buf: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.admit(buf.length, signal);
    return this.inner.read(offset, buf);
  }

  async write(offset: number, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.admit(data.length, signal);
    await this.inner.write(offset, data);
    this.onWritten?.(offset, data.length);
  }

  async flush(signal?: AbortSignal): Promise<void> {
    await this.admit(0, signal);
    return this.inner.flush();
  }

  async discard(offset: number, length: number, signal?: AbortSignal): Promise<void> {
    await this.admit(0, signal);
    await this.inner.discard(offset, length);
    this.onWritten?.(offset, length);
  }

  async writeZeroes(offset: number, length: number, mayUnmap: boolean, signal?: AbortSignal): Promise<void> {
    await this.admit(0, signal);
    await this.inner.writeZeroes(offset, length, mayUnmap);
    this.onWritten?.(offset, length);
  }

  stats(): BlockStats {
    return this.inner.stats();
  }

  throttleStats(): ThrottleStats {
    return { ...this.throttle };
  }

  /** Fails the requests still waiting for tokens, then closes the inner backend. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.time.clearTimer(this.timer);
    this.timer = undefined;
    for (const waiter of this.queue.splice(0)) waiter.reject(new BlockRequestError(`Disk "${this.inner.id}" was closed while a request waited for its rate limit`));
    await this.inner.close();
  }

  /** Waiting requests (not yet admitted). */
  get queuedRequests(): number {
    return this.queue.length;
  }

  /**
   * Resolves when the request may run: at once if tokens are there and nobody is ahead of it.
   * An aborted request leaves the queue at once, so abandoned work never delays what follows.
   */
  private admit(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new BlockRequestError(`Disk "${this.inner.id}" is closed`));
    if (signal?.aborted) return Promise.reject(abandoned(this.inner.id));
    if (this.queue.length === 0 && this.waitTimeMs(bytes) === 0) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i < 0) return;
        this.queue.splice(i, 1);
        reject(abandoned(this.inner.id));
        if (i === 0) {
          if (this.timer !== undefined) this.time.clearTimer(this.timer);
          this.pump();
        }
      };
      const waiter: Waiter = {
        bytes,
        queuedAt: this.time.now(),
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
      if (this.queue.length === 1) this.pump();
    });
  }

  /** Admits waiters from the head of the queue while tokens last, then sleeps until the head can go. */
  private pump(): void {
    this.timer = undefined;
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const wait = this.waitTimeMs(head.bytes);
      if (wait > 0) {
        // Timers are coarse; never spin on a sub-millisecond wait.
        this.timer = this.time.setTimer(() => this.pump(), Math.max(1, Math.ceil(wait)));
        return;
      }
      this.queue.shift();
      this.take(head.bytes);
      this.throttle.throttledRequests++;
      this.throttle.totalWaitMs += this.time.now() - head.queuedAt;
      head.resolve();
    }
  }

  private waitTimeMs(bytes: number): number {
    const forOps = this.ops?.waitTimeMs(1) ?? 0;
    const forBytes = bytes > 0 ? (this.bandwidth?.waitTimeMs(bytes) ?? 0) : 0;
    return Math.max(forOps, forBytes);
  }

  private take(bytes: number): void {
    this.ops?.reduce(1);
    if (bytes > 0) this.bandwidth?.reduce(bytes);
  }
}
