// A NetBackend over a connected stream socket in QEMU's stream netdev framing: a port of our
// switch, or passt. Flow control maps onto the socket: pausing reception stops reading it, so the
// peer (not this process) holds the frames the guest has no room for.

import type { Socket } from "node:net";
import type { FrameSink, NetBackend } from "./backend.js";
import { FrameDecoder, FrameWriter } from "./stream_framing.js";

/** Bytes that may wait to be written before further frames from the guest are dropped. */
const SEND_QUEUE_BYTES = 1 << 20;

export class StreamSocketBackend implements NetBackend {
  private readonly decoder = new FrameDecoder();
  private readonly writer: FrameWriter;
  private closed = false;
  private onClose: (() => void) | null = null;

  constructor(
    readonly kind: string,
    private readonly socket: Socket,
    private readonly log: (msg: string) => void = () => {},
    /** Extra cleanup on close (e.g. stopping passt). */
    private readonly cleanup: () => Promise<void> = async () => {},
  ) {
    socket.setNoDelay?.(true);
    this.writer = new FrameWriter(socket, SEND_QUEUE_BYTES);
    socket.on("error", (e) => {
      if (!this.closed) this.log(`${kind}: the network socket failed (${e.message}); the NIC is now cut off`);
    });
    socket.on("close", () => {
      if (!this.closed) this.log(`${kind}: the network closed the connection; the NIC is now cut off`);
      this.onClose?.();
    });
  }

  /** Called when the peer goes away (not on our own close). */
  whenDisconnected(fn: () => void): void {
    this.onClose = fn;
  }

  start(sink: FrameSink): void {
    this.socket.on("data", (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.log(`${this.kind}: the peer is not speaking the stream framing (${(e as Error).message}); disconnecting`);
        this.socket.destroy();
        return;
      }
      for (const f of frames) sink(f);
    });
  }

  send(frame: Uint8Array): boolean {
    return this.writer.send(frame);
  }

  setReceiving(enabled: boolean): void {
    if (enabled) this.socket.resume();
    else this.socket.pause();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    await this.cleanup();
  }
}
