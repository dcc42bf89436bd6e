// The seam between a virtio transport (virtio-mmio now, virtio-pci later) and a virtio device.
//
// A device sees virtqueues and guest memory, never registers. Its life cycle:
//   1. The transport offers `features | TRANSPORT_FEATURES` to the driver and routes config-space
//      accesses to configRead / configWrite at any time.
//   2. When the driver sets DRIVER_OK, the transport calls activate(ctx) with a fresh context:
//      the queues (check `ready` — a driver may leave some unused), the negotiated features and
//      callbacks to raise interrupts or fail the device.
//   3. Each QueueNotify write calls notify(queue) synchronously. The device pops chains, may
//      complete them at once or later (promises); completion = queue.pushUsed(head, written) and
//      then ctx.signalUsed(queueIndex), which raises an interrupt only if the driver wants one.
//   4. On reset (status 0), on NEEDS_RESET, or on restore, the context stops being `live`. An
//      async completion must check `ctx.live` before touching guest RAM or queues, and drop its
//      result otherwise. Then reset() is called: drop in-flight work and return to power-on state.
//   5. save() may be called at any time; restore(state) is called before activate() on a restored
//      machine. Devices record what they need to finish work in flight (e.g. heads to replay).
// Errors: a device throws nothing out of notify(); for a driver that breaks the rules it calls
// ctx.fail(sentence). Anything that escapes anyway is caught by the transport and treated as fail().

import type { GuestRam } from "../../seams/guest_ram.js";
import type { Virtqueue } from "./virtqueue.js";

export interface VirtioDeviceContext {
  readonly ram: GuestRam;
  readonly queues: readonly Virtqueue[];
  /** Features the driver accepted (device and transport bits). */
  readonly features: bigint;
  /** False once the device was reset, failed or restored; stale completions must then do nothing. */
  readonly live: boolean;
  /** Aborted when the context stops being live: pass it to backends so queued work is dropped. */
  readonly signal: AbortSignal;
  /** Raise the used-buffer interrupt for this queue if the driver asked for one. */
  signalUsed(queue: number): void;
  /** Tell the driver the device configuration changed (bumps ConfigGeneration, raises the config interrupt). */
  configChanged(): void;
  /** The driver broke the rules: set DEVICE_NEEDS_RESET, raise the config interrupt, log the sentence, count it. */
  fail(reason: string): void;
  log(msg: string): void;
}

export interface VirtioDevice<State = unknown> {
  /** Short name for logs, e.g. "virtio-blk". */
  readonly name: string;
  readonly deviceId: number;
  /** Device-specific feature bits offered; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  readonly features: bigint;
  readonly queueCount: number;
  /** Largest size of every queue (a power of two). */
  readonly queueMaxSize: number;
  /** Read `size` bytes of device configuration at `offset` (little-endian); 0 beyond its end. */
  configRead(offset: number, size: 1 | 2 | 4): number;
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
  activate(ctx: VirtioDeviceContext): void;
  notify(queue: number): void;
  reset(): void;
  /** Counters for metrics (flat, numbers only). */
  stats(): Readonly<Record<string, number>>;
  save(): State;
  restore(state: State): void;
}

/** Reads `size` bytes little-endian from a config byte image; bytes beyond it read as 0. */
export function readConfigBytes(config: Uint8Array, offset: number, size: 1 | 2 | 4): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) {
    const o = offset + i;
    v = v * 256 + (o >= 0 && o < config.length ? config[o]! : 0);
  }
  return v >>> 0;
}
