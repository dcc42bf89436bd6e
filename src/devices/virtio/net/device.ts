// virtio-net (device id 1) over a NetBackend. Queue 0 receives (device → guest), queue 1 transmits.
// Offered: MAC, link STATUS (the host sets the link down and up), mergeable receive buffers, and
// checksum / TSO offload in both directions — the device finishes checksums and cuts TSO frames
// itself (cheap on the host, expensive in an interpreted guest), so every backend sees plain frames.

import { MAX_FRAME_BYTES, MIN_FRAME_BYTES, type NetBackend } from "../../../net/backend.js";
import type { NicPolicy, NicShaper } from "../../../net/nic_policy.js";
import { DEVICE_ID_NET } from "../constants.js";
import { gather, type DescriptorChain } from "../descriptor_chain.js";
import { readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from "../device.js";
import { NET_HDR_BYTES, NET_HDR_F_DATA_VALID, rxHeader } from "./header.js";
import { emptyVirtioNetStats, type VirtioNetStats } from "./metrics.js";
import { prepareTxFrames, rxChecksumsValid } from "./offload.js";

export const NET_F_CSUM = 1n << 0n;
export const NET_F_GUEST_CSUM = 1n << 1n;
export const NET_F_MAC = 1n << 5n;
export const NET_F_GUEST_TSO4 = 1n << 7n;
export const NET_F_HOST_TSO4 = 1n << 11n;
export const NET_F_MRG_RXBUF = 1n << 15n;
export const NET_F_STATUS = 1n << 16n;

export const NET_S_LINK_UP = 1;
const CFG_MAC = 0;
const CFG_STATUS = 6;
const CFG_MAX_PAIRS = 8;
const CONFIG_BYTES = 10;

const RX_QUEUE = 0;
const TX_QUEUE = 1;
/** Frames waiting for guest buffers before the backend is asked to pause, and before frames are dropped. */
const RX_PAUSE_AT = 64;
const RX_DROP_AT = 512;

export interface VirtioNetOptions {
  backend: NetBackend;
  mac: Uint8Array;
  queueSize?: number;
  policy?: NicPolicy;
  shaper?: NicShaper;
  /** Offer checksum and TSO offloads (default true). */
  offloads?: boolean;
  /** Timers for the rate limiter (injectable for tests). */
  setTimer?: (fn: () => void, ms: number) => unknown;
}

export interface VirtioNetState {
  version: 1 | 2;
  linkUp: boolean;
  /** Version 2: receive chains taken from the ring and not yet used (a frame is spread over several). */
  rxHeldHeads?: number[];
  /** Version 2: a transmit chain held back by the rate limiter; its frames are read again at restore. */
  txHeldHead?: number | null;
}

export class VirtioNet implements VirtioDevice<VirtioNetState> {
  readonly name = "virtio-net";
  readonly deviceId = DEVICE_ID_NET;
  readonly features: bigint;
  readonly queueCount = 2;
  readonly queueMaxSize: number;
  readonly mac: Uint8Array;
  private readonly backend: NetBackend;
  private readonly config = new Uint8Array(CONFIG_BYTES);
  private ctx: VirtioDeviceContext | null = null;
  private readonly rxPending: Uint8Array[] = [];
  /** Rx chains popped for a frame that did not fit in them; used first for the next frame. */
  private rxHeld: DescriptorChain[] = [];
  /** A tx frame waiting for the rate limiter, with its chain. */
  private txHeld: { head: number; frames: Uint8Array[] } | null = null;
  private rxPaused = false;
  private timerArmed = { rx: false, tx: false };
  private readonly counters = emptyVirtioNetStats();
  private readonly policy: NicPolicy | undefined;
  private readonly shaper: NicShaper | undefined;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private started = false;
  /** Chains a restore brings back, taken again from the rings once the device is live. */
  private replay: { rx: number[]; tx: number | null } = { rx: [], tx: null };

  constructor(o: VirtioNetOptions) {
    this.backend = o.backend;
    this.mac = Uint8Array.from(o.mac);
    this.queueMaxSize = o.queueSize ?? 256;
    this.policy = o.policy;
    this.shaper = o.shaper;
    this.setTimer = o.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    let f = NET_F_MAC | NET_F_STATUS | NET_F_MRG_RXBUF;
    if (o.offloads ?? true) f |= NET_F_CSUM | NET_F_HOST_TSO4 | NET_F_GUEST_CSUM;
    this.features = f;
    this.config.set(this.mac, CFG_MAC);
    this.config[CFG_STATUS] = NET_S_LINK_UP;
    this.config[CFG_MAX_PAIRS] = 1;
  }

  get linkUp(): boolean {
    return (this.config[CFG_STATUS]! & NET_S_LINK_UP) !== 0;
  }

  /** The host pulls or plugs the virtual cable; the guest sees a config change. */
  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.config[CFG_STATUS] = up ? NET_S_LINK_UP : 0;
    this.counters.linkUp = up ? 1 : 0;
    if (!up) this.rxPending.length = 0;
    const ctx = this.ctx;
    if (ctx !== null && ctx.live) ctx.configChanged();
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  configWrite(): void {
    // The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR-less legacy drivers; nothing here is writable.
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    if (!this.started) {
      this.started = true;
      this.backend.start((frame) => this.receive(frame));
    }
    if (!this.replayHeld(ctx)) return;
    this.drainRx();
    this.notify(TX_QUEUE);
  }

  /** Takes back the chains a snapshot saw held; false when the guest's rings no longer hold them. */
  private replayHeld(ctx: VirtioDeviceContext): boolean {
    const { rx, tx } = this.replay;
    this.replay = { rx: [], tx: null };
    try {
      const rxq = ctx.queues[RX_QUEUE];
      if (rx.length > 0 && rxq?.ready) this.rxHeld = rx.map((head) => rxq.walk(head));
      const txq = ctx.queues[TX_QUEUE];
      if (tx !== null && txq?.ready) this.txHeld = { head: tx, frames: this.parseTx(ctx, txq.walk(tx)) };
    } catch (e) {
      ctx.fail(`taking back the buffers held at the snapshot failed: ${(e as Error).message}`);
      return false;
    }
    return true;
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live) return;
    if (queue === RX_QUEUE) this.drainRx();
    else if (queue === TX_QUEUE) this.drainTx(ctx);
  }

  /** A frame from the network for the guest. */
  receive(frame: Uint8Array): void {
    if (!this.linkUp) {
      this.counters.dropsLinkDown++;
      return;
    }
    if (frame.length < MIN_FRAME_BYTES || frame.length > MAX_FRAME_BYTES) {
      this.counters.dropsMalformed++;
      return;
    }
    const verdict = this.policy?.checkRx(frame) ?? null;
    if (verdict !== null) {
      this.countDrop(verdict);
      return;
    }
    if (this.rxPending.length >= RX_DROP_AT) {
      // Full because the receive limit holds frames back, or because the guest posts no buffers.
      if (this.timerArmed.rx) this.counters.dropsRateLimit++;
      else this.counters.dropsQueueFull++;
      return;
    }
    this.rxPending.push(frame);
    this.drainRx();
  }

  private countDrop(reason: "firewall" | "spoof" | "malformed"): void {
    if (reason === "firewall") this.counters.dropsFirewall++;
    else if (reason === "spoof") this.counters.dropsSpoof++;
    else this.counters.dropsMalformed++;
  }

  private drainRx(): void {
    const ctx = this.ctx;
    if (ctx !== null && ctx.live && ctx.queues[RX_QUEUE]?.ready) {
      let delivered = 0;
      try {
        while (this.rxPending.length > 0) {
          const frame = this.rxPending[0]!;
          if (this.shaper !== undefined) {
            const wait = this.shaper.admit("rx", frame.length);
            if (wait > 0) {
              this.armTimer("rx", wait);
              break;
            }
          }
          if (!this.deliver(ctx, frame)) break;
          this.rxPending.shift();
          delivered++;
        }
      } catch (e) {
        ctx.fail(`${(e as Error).message}`);
        return;
      }
      if (delivered > 0) ctx.signalUsed(RX_QUEUE);
    }
    // Flow control: ask the backend to hold frames while the guest is behind.
    const pause = this.rxPending.length >= RX_PAUSE_AT;
    if (pause !== this.rxPaused) {
      this.rxPaused = pause;
      this.backend.setReceiving(!pause);
    }
  }

  /** Writes one frame into guest buffers; false when the guest has not posted enough yet. */
  private deliver(ctx: VirtioDeviceContext, frame: Uint8Array): boolean {
    const q = ctx.queues[RX_QUEUE]!;
    const mergeable = (ctx.features & NET_F_MRG_RXBUF) !== 0n;
    const need = NET_HDR_BYTES + frame.length;
    const chains = this.rxHeld;
    let room = 0;
    for (const c of chains) room += c.writableBytes;
    while (room < need && (mergeable || chains.length === 0)) {
      const c = q.pop();
      if (c === null) return false;
      if (c.writableBytes < (chains.length === 0 ? NET_HDR_BYTES : 1)) {
        // A buffer that cannot hold what must go first in it is useless; give it back empty.
        this.counters.dropsMalformed++;
        q.pushUsed(c.head, 0);
        continue;
      }
      chains.push(c);
      room += c.writableBytes;
    }
    if (room < need) {
      // Without mergeable buffers the frame must fit in one chain: it does not, so it is dropped.
      this.counters.dropsMalformed++;
      const c = chains.shift()!;
      q.pushUsed(c.head, 0);
      return true;
    }
    const validCsum = (ctx.features & NET_F_GUEST_CSUM) !== 0n && rxChecksumsValid(frame);
    // Write header + frame across the chains, one chain after the other.
    const written: number[] = [];
    let pos = -NET_HDR_BYTES; // negative while still in the header, which is written last
    while (pos < frame.length) {
      const c = chains[written.length]!;
      let n = 0;
      for (const seg of c.writable) {
        let at = 0;
        while (at < seg.length && pos < frame.length) {
          const take = pos < 0 ? Math.min(-pos, seg.length - at) : Math.min(frame.length - pos, seg.length - at);
          if (pos >= 0) seg.set(frame.subarray(pos, pos + take), at);
          at += take;
          pos += take;
          n += take;
        }
        if (pos >= frame.length) break;
      }
      written.push(n);
    }
    const used = written.length;
    const header = rxHeader(validCsum ? NET_HDR_F_DATA_VALID : 0, mergeable ? used : 0);
    writeInto(chains[0]!.writable, header);
    for (let i = 0; i < used; i++) q.pushUsed(chains[i]!.head, written[i]!);
    this.rxHeld = chains.slice(used);
    this.counters.rxPackets++;
    this.counters.bytesRead += frame.length;
    return true;
  }

  private drainTx(ctx: VirtioDeviceContext): void {
    const q = ctx.queues[TX_QUEUE];
    if (q === undefined || !q.ready) return;
    let completed = 0;
    try {
      for (;;) {
        let held = this.txHeld;
        if (held === null) {
          const chain = q.pop();
          if (chain === null) break;
          this.counters.requests++;
          held = { head: chain.head, frames: this.parseTx(ctx, chain) };
        }
        // Frames of one chain (a TSO frame cut into segments) leave together, after the limiter allows them.
        if (this.shaper !== undefined && held.frames.length > 0) {
          let bytes = 0;
          for (const f of held.frames) bytes += f.length;
          const wait = this.shaper.admit("tx", bytes);
          if (wait > 0) {
            this.txHeld = held;
            this.armTimer("tx", wait);
            break;
          }
        }
        this.txHeld = null;
        for (const f of held.frames) this.transmit(f);
        q.pushUsed(held.head, 0);
        completed++;
      }
    } catch (e) {
      ctx.fail(`${(e as Error).message}`);
      return;
    }
    if (completed > 0) ctx.signalUsed(TX_QUEUE);
  }

  /** The frames a tx chain carries (empty when it is dropped here). */
  private parseTx(ctx: VirtioDeviceContext, chain: DescriptorChain): Uint8Array[] {
    if (chain.readableBytes < NET_HDR_BYTES + MIN_FRAME_BYTES || chain.readableBytes > NET_HDR_BYTES + MAX_FRAME_BYTES) {
      this.counters.dropsMalformed++;
      ctx.log(`dropped a transmit chain of ${chain.readableBytes} bytes: a frame must be ${MIN_FRAME_BYTES}-${MAX_FRAME_BYTES} bytes after the ${NET_HDR_BYTES}-byte header`);
      return [];
    }
    if (!this.linkUp) {
      this.counters.dropsLinkDown++;
      return [];
    }
    const raw = gather(chain.readable);
    const frames = prepareTxFrames(raw.subarray(0, NET_HDR_BYTES), raw.subarray(NET_HDR_BYTES), ctx.features);
    if (frames === null) {
      this.counters.dropsMalformed++;
      return [];
    }
    const out: Uint8Array[] = [];
    for (const f of frames) {
      const verdict = this.policy?.checkTx(f) ?? null;
      if (verdict !== null) this.countDrop(verdict);
      else out.push(f);
    }
    return out;
  }

  private transmit(frame: Uint8Array): void {
    if (this.backend.send(frame)) {
      this.counters.txPackets++;
      this.counters.bytesWritten += frame.length;
    } else {
      this.counters.dropsQueueFull++;
    }
  }

  private armTimer(dir: "rx" | "tx", ms: number): void {
    if (this.timerArmed[dir]) return;
    this.timerArmed[dir] = true;
    this.setTimer(() => {
      this.timerArmed[dir] = false;
      const ctx = this.ctx;
      if (ctx === null || !ctx.live) return;
      if (dir === "rx") this.drainRx();
      else this.drainTx(ctx);
    }, Math.max(1, Math.ceil(ms)));
  }

  reset(): void {
    this.ctx = null;
    this.rxHeld = [];
    this.txHeld = null;
    this.replay = { rx: [], tx: null };
    this.rxPending.length = 0;
    if (this.rxPaused) {
      this.rxPaused = false;
      this.backend.setReceiving(true);
    }
  }

  stats(): VirtioNetStats {
    const c = this.counters;
    return {
      ...c,
      errors: c.dropsQueueFull + c.dropsRateLimit + c.dropsFirewall + c.dropsSpoof + c.dropsMalformed + c.dropsLinkDown,
    };
  }

  /** Frames waiting for guest buffers are not saved: like frames lost on a wire, the guest's protocols resend them. */
  save(): VirtioNetState {
    return { version: 2, linkUp: this.linkUp, rxHeldHeads: this.rxHeld.map((c) => c.head), txHeldHead: this.txHeld?.head ?? null };
  }

  restore(state: VirtioNetState): void {
    this.setLink(state.linkUp);
    const head = (h: unknown): h is number => Number.isInteger(h) && (h as number) >= 0 && (h as number) < this.queueMaxSize;
    this.replay = {
      rx: (Array.isArray(state.rxHeldHeads) ? state.rxHeldHeads : []).filter(head),
      tx: head(state.txHeldHead) ? state.txHeldHead : null,
    };
  }

  /**
   * Tells the network where this MAC is now (after a migration or restore): a RARP broadcast, as
   * QEMU announces a moved guest, so switches learn its new port before the guest sends anything.
   */
  announce(): void {
    const f = new Uint8Array(60);
    f.fill(0xff, 0, 6);
    f.set(this.mac, 6);
    f.set([0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3], 12); // RARP, Ethernet/IPv4, "request reverse"
    f.set(this.mac, 22);
    f.set(this.mac, 32);
    if (this.linkUp) this.backend.send(f);
  }
}

function writeInto(segments: readonly Uint8Array[], data: Uint8Array): void {
  let pos = 0;
  for (const s of segments) {
    const n = Math.min(s.length, data.length - pos);
    s.set(data.subarray(pos, pos + n), 0);
    pos += n;
    if (pos >= data.length) return;
  }
}
