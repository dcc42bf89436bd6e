// virtio-rng (entropy device, id 4): fills every writable buffer the driver posts with random bytes.

import { randomFillSync } from "node:crypto";
import { DEVICE_ID_RNG } from "../constants.js";
import type { VirtioDevice, VirtioDeviceContext } from "../device.js";

/** A request larger than this is only filled up to it (the used length tells the driver). */
const MAX_FILL_PER_REQUEST = 64 * 1024;

export type VirtioRngStats = {
  requests: number;
  bytes: number;
  /** Requests with no writable buffer. */
  errors: number;
};

/** The entropy device keeps no state across a snapshot beyond its queue. */
export interface VirtioRngState {
  version: 1;
}

export interface VirtioRngOptions {
  queueSize?: number;
  /** Source of randomness; defaults to node:crypto randomFillSync (tests may inject their own). */
  fill?: (buf: Uint8Array) => void;
}

export class VirtioRng implements VirtioDevice<VirtioRngState> {
  readonly name = "virtio-rng";
  readonly deviceId = DEVICE_ID_RNG;
  readonly features = 0n;
  readonly queueCount = 1;
  readonly queueMaxSize: number;
  private readonly fill: (buf: Uint8Array) => void;
  private ctx: VirtioDeviceContext | null = null;
  private readonly counters: VirtioRngStats = { requests: 0, bytes: 0, errors: 0 };

  constructor(opts: VirtioRngOptions = {}) {
    this.queueMaxSize = opts.queueSize ?? 64;
    this.fill = opts.fill ?? ((b) => void randomFillSync(b));
  }

  configRead(): number {
    return 0;
  }

  configWrite(): void {}

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    // Buffers posted before DRIVER_OK are served now.
    if (ctx.queues[0]?.ready) this.notify(0);
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live || queue !== 0) return;
    const q = ctx.queues[0]!;
    let done = 0;
    try {
      for (let chain = q.pop(); chain !== null; chain = q.pop()) {
        this.counters.requests++;
        let budget = MAX_FILL_PER_REQUEST;
        let written = 0;
        for (const seg of chain.writable) {
          if (budget === 0) break;
          const part = seg.length <= budget ? seg : seg.subarray(0, budget);
          this.fill(part);
          written += part.length;
          budget -= part.length;
        }
        if (chain.writableBytes === 0) {
          this.counters.errors++;
          ctx.log(`request ${chain.head} has no writable buffer`);
        }
        this.counters.bytes += written;
        q.pushUsed(chain.head, written);
        done++;
      }
    } catch (e) {
      ctx.fail(`${(e as Error).message}`);
      return;
    }
    if (done > 0) ctx.signalUsed(0);
  }

  reset(): void {
    this.ctx = null;
  }

  stats(): VirtioRngStats {
    return { ...this.counters };
  }

  save(): VirtioRngState {
    return { version: 1 };
  }

  restore(_state: VirtioRngState): void {}
}
