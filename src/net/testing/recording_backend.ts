// Test helper: a NetBackend that records what the NIC sends and lets the test deliver frames.

import type { FrameSink, NetBackend } from "../backend.js";

export class RecordingBackend implements NetBackend {
  readonly kind = "test";
  sent: Uint8Array[] = [];
  receiving = true;
  full = false;
  closed = false;
  private sink: FrameSink | null = null;

  start(sink: FrameSink): void {
    this.sink = sink;
  }
  send(frame: Uint8Array): boolean {
    if (this.full) return false;
    this.sent.push(frame);
    return true;
  }
  setReceiving(enabled: boolean): void {
    this.receiving = enabled;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  /** A frame from the network for the guest. */
  deliver(frame: Uint8Array): void {
    if (this.sink === null) throw new Error("the NIC has not started its backend");
    this.sink(frame);
  }
}
