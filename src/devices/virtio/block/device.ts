// virtio-blk (device id 2) over a BlockBackend. One request queue; requests run concurrently on the
// async backend (up to its queueDepth; the rest wait in the avail ring) and complete in any order.
// Data goes through private bounce buffers, so a completion that arrives after a reset never
// touches guest RAM, and the guest cannot change OUT data while the backend writes it.

import { BlockRequestError, type BlockBackend } from "../../../storage/block_backend.js";
import { DEVICE_ID_BLOCK } from "../constants.js";
import { gather, scatter, type DescriptorChain } from "../descriptor_chain.js";
import { readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from "../device.js";
import { emptyVirtioBlkStats, type VirtioBlkStats } from "./metrics.js";
import { LatencyHistogram, type LatencySnapshot } from "./latency.js";
import type { VirtioBlkState } from "./persist.js";
import {
  BLK_ID_BYTES,
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_DISCARD,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
  BLK_WRITE_ZEROES_FLAG_UNMAP,
  DISCARD_SEGMENT_BYTES,
  SECTOR_SIZE,
  parseDiscardSegments,
  parseRequest,
  type BlkRequest,
} from "./request.js";

export const BLK_F_SIZE_MAX = 1n << 1n;
export const BLK_F_SEG_MAX = 1n << 2n;
export const BLK_F_RO = 1n << 5n;
export const BLK_F_BLK_SIZE = 1n << 6n;
export const BLK_F_FLUSH = 1n << 9n;
export const BLK_F_DISCARD = 1n << 13n;
export const BLK_F_WRITE_ZEROES = 1n << 14n;

/** Byte offsets in struct virtio_blk_config. */
export const CFG_CAPACITY = 0x00;
export const CFG_SEG_MAX = 0x0c;
export const CFG_BLK_SIZE = 0x14;
export const CFG_MAX_DISCARD_SECTORS = 0x24;
export const CFG_MAX_DISCARD_SEG = 0x28;
export const CFG_DISCARD_SECTOR_ALIGNMENT = 0x2c;
export const CFG_MAX_WRITE_ZEROES_SECTORS = 0x30;
export const CFG_MAX_WRITE_ZEROES_SEG = 0x34;
export const CFG_WRITE_ZEROES_MAY_UNMAP = 0x38;
const CONFIG_BYTES = 0x3c;

const MAX_DISCARD_SECTORS = 1 << 22; // 2 GiB per segment
const MAX_DISCARD_SEGMENTS = 32;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /** Queue size offered to the driver (power of two); seg_max is this minus 2. Default 256. */
  queueSize?: number;
  /** Largest data transfer of one request; larger ones complete with IOERR. Default 32 MiB. */
  maxRequestBytes?: number;
  /**
   * Data bytes the device holds for requests on the backend (bounce buffers), counted across
   * device resets; no new request starts beyond it unless nothing is outstanding. Default 64 MiB.
   */
  maxOutstandingBytes?: number;
  /** Milliseconds on a monotonic clock, for request latency (injectable for tests). */
  now?: () => number;
}

/** Host memory one disk's requests may hold: maxOutstandingBytes plus one request of maxRequestBytes. */
export const BLK_DEFAULT_MAX_OUTSTANDING_BYTES = 64 << 20;

type Outcome = { status: number; written: number };

export class VirtioBlk implements VirtioDevice<VirtioBlkState> {
  readonly name = "virtio-blk";
  readonly deviceId = DEVICE_ID_BLOCK;
  readonly features: bigint;
  readonly queueCount = 1;
  readonly queueMaxSize: number;
  private readonly backend: BlockBackend;
  private readonly maxRequestBytes: number;
  private readonly config = new Uint8Array(CONFIG_BYTES);
  private ctx: VirtioDeviceContext | null = null;
  /** Heads of requests running on the backend, with a count (a hostile driver may post one head twice). */
  private readonly inFlight = new Map<number, number>();
  private inFlightCount = 0;
  /**
   * Requests started on the backend and not yet settled, and their data bytes — including those
   * a reset abandoned, which still hold memory and backend slots until they settle.
   */
  private outstanding = 0;
  private outstandingBytes = 0;
  private readonly maxOutstandingBytes: number;
  private draining = false;
  private replay: number[] = [];
  private counters = emptyVirtioBlkStats();
  private readonly latencies = new LatencyHistogram();
  private readonly now: () => number;

  constructor(opts: VirtioBlkOptions) {
    this.backend = opts.backend;
    this.queueMaxSize = opts.queueSize ?? 256;
    this.maxRequestBytes = opts.maxRequestBytes ?? 32 << 20;
    this.maxOutstandingBytes = opts.maxOutstandingBytes ?? BLK_DEFAULT_MAX_OUTSTANDING_BYTES;
    this.now = opts.now ?? (() => performance.now());
    const b = opts.backend;
    let f = BLK_F_SEG_MAX | BLK_F_BLK_SIZE | BLK_F_FLUSH;
    if (b.readOnly) f |= BLK_F_RO;
    else if (b.supportsDiscard) f |= BLK_F_DISCARD | BLK_F_WRITE_ZEROES;
    this.features = f;
    const v = new DataView(this.config.buffer);
    const sectors = Math.floor(b.size / SECTOR_SIZE);
    v.setUint32(CFG_CAPACITY, sectors % 0x1_0000_0000, true);
    v.setUint32(CFG_CAPACITY + 4, Math.floor(sectors / 0x1_0000_0000), true);
    v.setUint32(CFG_SEG_MAX, Math.max(1, this.queueMaxSize - 2), true);
    v.setUint32(CFG_BLK_SIZE, SECTOR_SIZE, true);
    if (f & BLK_F_DISCARD) {
      v.setUint32(CFG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS, true);
      v.setUint32(CFG_MAX_DISCARD_SEG, MAX_DISCARD_SEGMENTS, true);
      v.setUint32(CFG_DISCARD_SECTOR_ALIGNMENT, 4096 / SECTOR_SIZE, true);
      v.setUint32(CFG_MAX_WRITE_ZEROES_SECTORS, MAX_DISCARD_SECTORS, true);
      v.setUint32(CFG_MAX_WRITE_ZEROES_SEG, MAX_DISCARD_SEGMENTS, true);
      v.setUint8(CFG_WRITE_ZEROES_MAY_UNMAP, 1);
    }
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  configWrite(): void {
    // Nothing in virtio_blk_config is writable without VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    const q = ctx.queues[0];
    if (q === undefined || !q.ready) return;
    const heads = this.replay;
    this.replay = [];
    for (const head of heads) {
      try {
        this.start(ctx, q.walk(head));
      } catch (e) {
        ctx.fail(`replaying request ${head} after restore failed: ${(e as Error).message}`);
        return;
      }
    }
    this.notify(0);
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live || queue !== 0) return;
    const q = ctx.queues[0]!;
    if (this.draining) return; // called back from a synchronous completion: the loop below carries on
    const depth = Math.max(1, this.backend.queueDepth | 0);
    this.draining = true;
    try {
      while (this.outstanding < depth && ctx.live && (this.outstanding === 0 || this.outstandingBytes < this.maxOutstandingBytes)) {
        const chain = q.pop();
        if (chain === null) break;
        this.start(ctx, chain);
      }
    } catch (e) {
      ctx.fail(`${(e as Error).message}`);
    } finally {
      this.draining = false;
    }
  }

  private start(ctx: VirtioDeviceContext, chain: DescriptorChain): void {
    this.counters.requests++;
    const parsed = parseRequest(chain);
    if (!parsed.ok) {
      ctx.log(`${parsed.reason}`);
      if (parsed.status === null) {
        this.counters.malformedRequests++;
        this.finish(ctx, chain.head, null, { status: BLK_S_IOERR, written: 0 });
      } else {
        this.counters.ioErrors++;
        this.finish(ctx, chain.head, parsed.status, { status: BLK_S_IOERR, written: 0 });
      }
      return;
    }
    const req = parsed.request;
    this.inFlight.set(req.head, (this.inFlight.get(req.head) ?? 0) + 1);
    this.inFlightCount++;
    this.counters.inFlight = this.inFlightCount;
    if (this.inFlightCount > this.counters.maxInFlight) this.counters.maxInFlight = this.inFlightCount;
    // Counted before execute() copies the data, whatever the request type claims.
    const bytes = Math.min(this.maxRequestBytes, Math.max(req.toDeviceBytes, req.fromDeviceBytes));
    this.outstanding++;
    this.outstandingBytes += bytes;
    const startedAt = this.now();
    const settle = (): void => {
      this.outstanding--;
      this.outstandingBytes -= bytes;
      this.latencies.observe((this.now() - startedAt) / 1000);
    };
    this.execute(ctx, req).then(
      (o) => {
        settle();
        this.finish(ctx, req.head, req.status, o);
      },
      (e: unknown) => {
        settle();
        if (!ctx.live) return this.pullAfterAbandoned();
        if (!(e instanceof BlockRequestError)) ctx.log(`request ${req.head} failed: ${(e as Error)?.message ?? e}`);
        this.counters.ioErrors++;
        this.finish(ctx, req.head, req.status, { status: BLK_S_IOERR, written: 0 });
      },
    );
  }

  /** A request abandoned by a reset settled: its room goes to the current activation, if any. */
  private pullAfterAbandoned(): void {
    if (this.ctx !== null && this.ctx.live) this.notify(0);
  }

  /** Writes the status, puts the chain in the used ring and pulls more work; drops stale completions. */
  private finish(ctx: VirtioDeviceContext, head: number, status: Uint8Array | null, o: Outcome): void {
    if (!ctx.live) return this.pullAfterAbandoned();
    const n = this.inFlight.get(head);
    if (n !== undefined) {
      if (n > 1) this.inFlight.set(head, n - 1);
      else this.inFlight.delete(head);
      this.inFlightCount--;
      this.counters.inFlight = this.inFlightCount;
    }
    try {
      let written = o.written;
      if (status !== null) {
        status[0] = o.status;
        written += 1;
      }
      const q = ctx.queues[0]!;
      if (!q.ready) return; // the driver took the queue down meanwhile
      q.pushUsed(head, written);
      ctx.signalUsed(0);
      this.notify(0); // room for more requests
    } catch (e) {
      ctx.fail(`completing request ${head} failed: ${(e as Error).message}`);
    }
  }

  private ioerr(ctx: VirtioDeviceContext, req: BlkRequest, why: string): Outcome {
    this.counters.ioErrors++;
    ctx.log(`request ${req.head}: ${why}`);
    return { status: BLK_S_IOERR, written: 0 };
  }

  private inRange(offset: number, len: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && offset + len <= this.backend.size;
  }

  private async execute(ctx: VirtioDeviceContext, req: BlkRequest): Promise<Outcome> {
    const b = this.backend;
    const writeback = (ctx.features & BLK_F_FLUSH) !== 0n;
    switch (req.type) {
      case BLK_T_IN: {
        this.counters.readRequests++;
        const len = req.fromDeviceBytes;
        const offset = req.sector * SECTOR_SIZE;
        if (len % SECTOR_SIZE !== 0) return this.ioerr(ctx, req, `read length ${len} is not a multiple of ${SECTOR_SIZE}`);
        if (len > this.maxRequestBytes) return this.ioerr(ctx, req, `read of ${len} bytes exceeds ${this.maxRequestBytes}`);
        if (!this.inRange(offset, len)) return this.ioerr(ctx, req, `read of sector ${req.sector} (+${len} bytes) is beyond the disk end`);
        const buf = new Uint8Array(len);
        await b.read(offset, buf, ctx.signal);
        if (!ctx.live) return { status: BLK_S_OK, written: 0 };
        scatter(req.fromDevice, buf);
        this.counters.bytesRead += len;
        return { status: BLK_S_OK, written: len };
      }
      case BLK_T_OUT: {
        this.counters.writeRequests++;
        const len = req.toDeviceBytes;
        const offset = req.sector * SECTOR_SIZE;
        if (b.readOnly) return this.ioerr(ctx, req, "write to a read-only disk");
        if (len % SECTOR_SIZE !== 0) return this.ioerr(ctx, req, `write length ${len} is not a multiple of ${SECTOR_SIZE}`);
        if (len > this.maxRequestBytes) return this.ioerr(ctx, req, `write of ${len} bytes exceeds ${this.maxRequestBytes}`);
        if (!this.inRange(offset, len)) return this.ioerr(ctx, req, `write of sector ${req.sector} (+${len} bytes) is beyond the disk end`);
        await b.write(offset, gather(req.toDevice), ctx.signal);
        if (!writeback) await b.flush(ctx.signal); // without VIRTIO_BLK_F_FLUSH the disk must behave write-through
        this.counters.bytesWritten += len;
        return { status: BLK_S_OK, written: 0 };
      }
      case BLK_T_FLUSH:
        this.counters.flushRequests++;
        await b.flush(ctx.signal);
        return { status: BLK_S_OK, written: 0 };
      case BLK_T_GET_ID: {
        this.counters.getIdRequests++;
        const id = new Uint8Array(BLK_ID_BYTES);
        id.set(new TextEncoder().encode(b.id).subarray(0, BLK_ID_BYTES));
        const n = scatter(req.fromDevice, id.subarray(0, Math.min(BLK_ID_BYTES, req.fromDeviceBytes)));
        return { status: BLK_S_OK, written: n };
      }
      case BLK_T_DISCARD:
      case BLK_T_WRITE_ZEROES:
        return this.discardOrZero(ctx, req);
      default:
        this.counters.unsupportedRequests++;
        return { status: BLK_S_UNSUPP, written: 0 };
    }
  }

  private async discardOrZero(ctx: VirtioDeviceContext, req: BlkRequest): Promise<Outcome> {
    const zero = req.type === BLK_T_WRITE_ZEROES;
    if (zero) this.counters.writeZeroesRequests++;
    else this.counters.discardRequests++;
    const feature = zero ? BLK_F_WRITE_ZEROES : BLK_F_DISCARD;
    if ((ctx.features & feature) === 0n) {
      this.counters.unsupportedRequests++;
      return { status: BLK_S_UNSUPP, written: 0 };
    }
    if (this.backend.readOnly) return this.ioerr(ctx, req, "discard or write-zeroes on a read-only disk");
    const len = req.toDeviceBytes;
    if (len === 0 || len % DISCARD_SEGMENT_BYTES !== 0 || len / DISCARD_SEGMENT_BYTES > MAX_DISCARD_SEGMENTS) {
      return this.ioerr(ctx, req, `segment list of ${len} bytes is not 1 to ${MAX_DISCARD_SEGMENTS} segments of 16 bytes`);
    }
    const segs = parseDiscardSegments(gather(req.toDevice));
    for (const s of segs) {
      if (s.flags & ~BLK_WRITE_ZEROES_FLAG_UNMAP || (!zero && s.flags !== 0)) {
        this.counters.unsupportedRequests++;
        return { status: BLK_S_UNSUPP, written: 0 };
      }
      if (s.sectors > MAX_DISCARD_SECTORS) return this.ioerr(ctx, req, `segment of ${s.sectors} sectors exceeds ${MAX_DISCARD_SECTORS}`);
      if (!this.inRange(s.sector * SECTOR_SIZE, s.sectors * SECTOR_SIZE)) {
        return this.ioerr(ctx, req, `segment at sector ${s.sector} (+${s.sectors}) is beyond the disk end`);
      }
    }
    for (const s of segs) {
      if (!ctx.live) break;
      const off = s.sector * SECTOR_SIZE;
      const n = s.sectors * SECTOR_SIZE;
      if (zero) await this.backend.writeZeroes(off, n, (s.flags & BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0, ctx.signal);
      else await this.backend.discard(off, n, ctx.signal);
    }
    return { status: BLK_S_OK, written: 0 };
  }

  reset(): void {
    this.ctx = null;
    this.inFlight.clear();
    this.inFlightCount = 0;
    this.counters.inFlight = 0;
    this.replay = [];
  }

  stats(): VirtioBlkStats {
    const c = this.counters;
    return { ...c, errors: c.ioErrors + c.malformedRequests, outstandingBytes: this.outstandingBytes };
  }

  /** Latency of the requests the backend served, from leaving the ring to completing (rate-limit waits included). */
  latency(): LatencySnapshot {
    return this.latencies.snapshot();
  }

  save(): VirtioBlkState {
    const heads: number[] = [];
    for (const [head, n] of this.inFlight) for (let i = 0; i < n; i++) heads.push(head);
    return { inFlightHeads: heads };
  }

  restore(state: VirtioBlkState): void {
    this.replay = state.inFlightHeads.filter((h) => Number.isInteger(h) && h >= 0 && h < this.queueMaxSize);
  }
}
