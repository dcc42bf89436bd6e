// virtio-console (device id 3), one port, no MULTIPORT: receiveq 0 (host -> guest), transmitq 1
// (guest -> host). Host input waits in a bounded buffer until the guest posts receive buffers.

import { DEVICE_ID_CONSOLE } from "../constants.js";
import { gather, scatter } from "../descriptor_chain.js";
import { readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from "../device.js";

export const CONSOLE_RX_QUEUE = 0;
export const CONSOLE_TX_QUEUE = 1;
/** A transmit chain larger than this is refused (Linux sends at most a page at a time). */
const MAX_TX_CHAIN_BYTES = 1 << 20;

export type VirtioConsoleStats = {
  /** Chains completed on either queue. */
  requests: number;
  /** Bytes the guest sent to the host. */
  bytesOut: number;
  /** Bytes delivered to the guest. */
  bytesIn: number;
  /** Host input bytes dropped because the buffer was full. */
  inputDropped: number;
  bufferedInput: number;
  /** Chains with no usable buffer, oversize chains, onOutput failures. */
  errors: number;
};

export interface VirtioConsoleState {
  /** Host input not yet delivered to the guest, base64. */
  pendingInput: string;
}

export interface VirtioConsoleOptions {
  /** Receives every chunk the guest writes, in order (a copy the callee may keep). */
  onOutput: (data: Uint8Array) => void;
  /** Most host input bytes held while the guest posts no receive buffers. Default 64 KiB. */
  maxBufferedInput?: number;
  queueSize?: number;
  name?: string;
}

export class VirtioConsole implements VirtioDevice<VirtioConsoleState> {
  readonly name: string;
  readonly deviceId = DEVICE_ID_CONSOLE;
  readonly features = 0n;
  readonly queueCount = 2;
  readonly queueMaxSize: number;
  private readonly onOutput: (data: Uint8Array) => void;
  private readonly maxBuffered: number;
  /** struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr (all zero without features). */
  private readonly config = new Uint8Array(12);
  private ctx: VirtioDeviceContext | null = null;
  private pending: Uint8Array[] = [];
  private pendingOffset = 0;
  private pendingBytes = 0;
  private readonly counters: VirtioConsoleStats = { requests: 0, bytesOut: 0, bytesIn: 0, inputDropped: 0, bufferedInput: 0, errors: 0 };

  constructor(opts: VirtioConsoleOptions) {
    this.onOutput = opts.onOutput;
    this.maxBuffered = opts.maxBufferedInput ?? 64 * 1024;
    this.queueMaxSize = opts.queueSize ?? 64;
    this.name = opts.name ?? "virtio-console";
  }

  /** Queues host -> guest bytes; what does not fit in the buffer is dropped and counted. */
  input(data: Uint8Array): void {
    const room = this.maxBuffered - this.pendingBytes;
    const take = Math.min(room, data.length);
    if (take < data.length) this.counters.inputDropped += data.length - take;
    if (take > 0) {
      this.pending.push(data.slice(0, take));
      this.pendingBytes += take;
    }
    this.counters.bufferedInput = this.pendingBytes;
    this.deliver();
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  configWrite(): void {
    // emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered.
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    this.transmit();
    this.deliver();
  }

  notify(queue: number): void {
    if (queue === CONSOLE_RX_QUEUE) this.deliver();
    else if (queue === CONSOLE_TX_QUEUE) this.transmit();
  }

  private usable(index: number): VirtioDeviceContext | null {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live || !ctx.queues[index]?.ready) return null;
    return ctx;
  }

  private deliver(): void {
    const ctx = this.usable(CONSOLE_RX_QUEUE);
    if (ctx === null || this.pendingBytes === 0) return;
    const q = ctx.queues[CONSOLE_RX_QUEUE]!;
    let done = 0;
    try {
      while (this.pendingBytes > 0) {
        const chain = q.pop();
        if (chain === null) break;
        done++;
        this.counters.requests++;
        if (chain.writableBytes === 0) {
          this.counters.errors++;
          ctx.log(`receive buffer ${chain.head} has no writable space`);
          q.pushUsed(chain.head, 0);
          continue;
        }
        const chunk = this.take(chain.writableBytes);
        const n = scatter(chain.writable, chunk);
        this.counters.bytesIn += n;
        q.pushUsed(chain.head, n);
      }
    } catch (e) {
      ctx.fail(`${(e as Error).message}`);
      return;
    }
    this.counters.bufferedInput = this.pendingBytes;
    if (done > 0) ctx.signalUsed(CONSOLE_RX_QUEUE);
  }

  /** Removes up to n bytes from the front of the input buffer. */
  private take(n: number): Uint8Array {
    const len = Math.min(n, this.pendingBytes);
    const out = new Uint8Array(len);
    let pos = 0;
    while (pos < len) {
      const first = this.pending[0]!;
      const part = first.subarray(this.pendingOffset, this.pendingOffset + (len - pos));
      out.set(part, pos);
      pos += part.length;
      this.pendingOffset += part.length;
      if (this.pendingOffset === first.length) {
        this.pending.shift();
        this.pendingOffset = 0;
      }
    }
    this.pendingBytes -= len;
    return out;
  }

  private transmit(): void {
    const ctx = this.usable(CONSOLE_TX_QUEUE);
    if (ctx === null) return;
    const q = ctx.queues[CONSOLE_TX_QUEUE]!;
    let done = 0;
    try {
      for (let chain = q.pop(); chain !== null; chain = q.pop()) {
        done++;
        this.counters.requests++;
        if (chain.readableBytes > MAX_TX_CHAIN_BYTES) {
          this.counters.errors++;
          ctx.log(`transmit buffer ${chain.head} of ${chain.readableBytes} bytes exceeds ${MAX_TX_CHAIN_BYTES}; dropped`);
        } else if (chain.readableBytes > 0) {
          const data = gather(chain.readable);
          this.counters.bytesOut += data.length;
          try {
            this.onOutput(data);
          } catch (e) {
            this.counters.errors++;
            ctx.log(`the output handler failed: ${(e as Error).message}`);
          }
        }
        q.pushUsed(chain.head, 0);
      }
    } catch (e) {
      ctx.fail(`${(e as Error).message}`);
      return;
    }
    if (done > 0) ctx.signalUsed(CONSOLE_TX_QUEUE);
  }

  /** Keeps buffered host input: bytes typed before the guest driver starts still arrive. */
  reset(): void {
    this.ctx = null;
  }

  stats(): VirtioConsoleStats {
    return { ...this.counters, bufferedInput: this.pendingBytes };
  }

  save(): VirtioConsoleState {
    const all = this.pendingBytes > 0 ? this.peekAll() : new Uint8Array(0);
    return { pendingInput: Buffer.from(all).toString("base64") };
  }

  private peekAll(): Uint8Array {
    const out = new Uint8Array(this.pendingBytes);
    let pos = 0;
    this.pending.forEach((c, i) => {
      const part = i === 0 ? c.subarray(this.pendingOffset) : c;
      out.set(part, pos);
      pos += part.length;
    });
    return out;
  }

  restore(state: VirtioConsoleState): void {
    const data = new Uint8Array(Buffer.from(state.pendingInput, "base64"));
    this.pending = data.length > 0 ? [data] : [];
    this.pendingOffset = 0;
    this.pendingBytes = data.length;
    this.counters.bufferedInput = data.length;
  }
}
