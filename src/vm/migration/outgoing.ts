// The source side of a live migration (pre-copy): connect, send the config, send RAM while the
// guest runs (snapshot/precopy.ts, paced to the bandwidth limit; the vCPUs are slowed when the
// guest dirties faster than the link), then stop the guest, send the last pages and the device
// state, and hand over: the destination builds the VM (READY), we say GO, it runs (RUNNING) and
// this side stops. Any failure before GO — the destination killed, the connection cut, a cancel —
// resumes the guest here as it was.

import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { GuestRam } from "../../seams/guest_ram.js";
import type { VmSnapshotHeader } from "../snapshot/vm_snapshot.js";
import { precopy, PrecopyCancelled, type FrozenPages, type PrecopyProgress } from "../snapshot/precopy.js";
import { BlockCopySource, type CopiedDisk } from "./block_copy.js";
import {
  describeUri, Frame, frame, FrameReader, jsonFrame, MigrationError, PAGE_BYTES, PAGES_PER_FRAME, preamble, writeAll, type MigrationUri,
} from "./stream.js";

export interface MigrationParameters {
  /** The longest the guest may stop for the switch-over (ms); QEMU's default is 300. */
  downtimeLimitMs: number;
  /** Bytes per second the stream may use; QEMU's default is 128 MiB/s. */
  maxBandwidth: number;
}

export const DEFAULT_MIGRATION_PARAMETERS: MigrationParameters = { downtimeLimitMs: 300, maxBandwidth: 128 << 20 };

export type MigrationState = "none" | "setup" | "active" | "device" | "completed" | "failed" | "cancelled";

export interface MigrationStatus {
  status: MigrationState;
  uri?: string;
  /** ms since the migration started (until it ended). */
  totalTimeMs?: number;
  ram?: { pagesSent: number; bytesSent: number; remainingPages: number; dirtyPagesPerSecond: number; bytesPerSecond: number; rounds: number };
  expectedDowntimeMs?: number | null;
  /** How long the guest was stopped, once the switch-over happened. */
  downtimeMs?: number;
  throttlePercent?: number | null;
  /** Block migration: disk bytes sent, and bytes the guest wrote that are still to go. */
  disk?: { bytesSent: number; dirtyBytes: number };
  error?: string;
}

/** What a VM lends its migration. */
export interface MigratingVm {
  readonly ram: GuestRam;
  flushTlbs(): Promise<void>;
  /** Holds each vCPU to this per cent of a core (null: back to the VM's own cap). */
  throttle(capPercent: number | null): void;
  running(): boolean;
  /** The VM's config, for the destination to build the same machine. */
  hello(): object;
  /** The disks a block migration copies (the writable ones). */
  copiedDisks(): CopiedDisk[];
  /**
   * Pauses the guest and returns its state with the disks flushed (nothing in flight), and the
   * pages still to send (`pending` and every page dirtied since) frozen with that state.
   */
  stopForSwitchover(pending: Uint32Array): Promise<{ header: VmSnapshotHeader; last: FrozenPages }>;
  /** A failed migration: the guest runs on here. */
  resumeAfterFailure(): void;
  /** The destination runs the guest: this side must stop and never touch the disks again. */
  handedOver(): void;
}

/** How long the destination gets to build the VM (open disks) and answer. */
const SWITCHOVER_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;

export class OutgoingMigration {
  private state: MigrationState = "setup";
  private readonly startedAt = performance.now();
  private endedAt: number | null = null;
  private progress: PrecopyProgress | null = null;
  private downtimeMs: number | undefined;
  private error: string | undefined;
  private cancelRequested = false;
  private socket: Socket | null = null;
  private sentBytes = 0;
  private sendStartedAt = 0;
  private readonly pageBuf = Buffer.allocUnsafe(5 + 4 + PAGES_PER_FRAME * (4 + PAGE_BYTES));
  private blocks: BlockCopySource | null = null;
  /** The guest is stopped: send at full speed. */
  private final = false;

  constructor(
    private readonly vm: MigratingVm,
    private readonly uri: MigrationUri,
    private readonly params: MigrationParameters,
    private readonly onStateChange: (s: MigrationState) => void = () => {},
    /** Copy the disks along (not shared storage). */
    private readonly blockCopy = false,
  ) {}

  status(): MigrationStatus {
    const p = this.progress;
    return {
      status: this.state,
      uri: describeUri(this.uri),
      totalTimeMs: Math.round((this.endedAt ?? performance.now()) - this.startedAt),
      ...(p ? {
        ram: { pagesSent: p.pagesSent, bytesSent: p.bytesSent, remainingPages: p.remainingPages, dirtyPagesPerSecond: p.dirtyPagesPerSecond, bytesPerSecond: Math.round(p.bytesPerSecond), rounds: p.rounds },
        expectedDowntimeMs: Number.isFinite(p.expectedDowntimeMs) ? p.expectedDowntimeMs : null,
        throttlePercent: p.throttlePercent,
      } : {}),
      ...(this.blocks ? { disk: { bytesSent: this.blocks.bytesSent, dirtyBytes: this.blocks.dirtyBytes() } } : {}),
      ...(this.downtimeMs !== undefined ? { downtimeMs: this.downtimeMs } : {}),
      ...(this.error !== undefined ? { error: this.error } : {}),
    };
  }

  get finished(): boolean {
    return this.state === "completed" || this.state === "failed" || this.state === "cancelled";
  }

  /** Asks the migration to stop; it resumes the guest here unless the hand-over already began. */
  cancel(): void {
    if (this.finished || this.state === "device") return;
    this.cancelRequested = true;
    this.socket?.destroy();
  }

  /** Runs the migration to its end; never throws (the outcome is in status()). */
  async run(): Promise<void> {
    let stopped = false;
    let go = false;
    try {
      const socket = await this.connect();
      const reader = new FrameReader(socket, `The destination (${describeUri(this.uri)})`, false);
      this.blocks = this.blockCopy ? new BlockCopySource(this.vm.copiedDisks(), (payload) => this.sendBlocks(payload)) : null;
      await writeAll(socket, Buffer.concat([preamble(), jsonFrame(Frame.HELLO, { ...this.vm.hello(), blockDisks: this.blocks?.describe() ?? [] })]));
      this.setState("active");
      this.sendStartedAt = performance.now();
      const cancelled = (): boolean => this.cancelRequested || !this.vm.running();
      await this.blocks?.copyLive(cancelled);
      if (cancelled()) throw new PrecopyCancelled();
      const copied = await precopy({
        ram: this.vm.ram,
        flushTlbs: () => this.vm.flushTlbs(),
        send: (pages) => this.sendPages(pages),
        downtimeLimitMs: () => this.params.downtimeLimitMs,
        maxRounds: 30,
        now: () => performance.now(),
        cancelled,
        throttle: (cap) => this.vm.throttle(cap),
        onProgress: (p) => (this.progress = p),
      });
      this.setState("device");
      const stoppedAt = performance.now();
      stopped = true;
      const { header, last } = await this.vm.stopForSwitchover(copied.pending);
      this.vm.throttle(null);
      // The guest's writes are drained and flushed: what is dirty now is the last of the disks.
      this.final = true;
      await this.blocks?.sendDirty();
      await this.sendPages(last.pages, true, last.data);
      await writeAll(socket, jsonFrame(Frame.STATE, header));
      await withTimeout(reader.expect(Frame.READY), SWITCHOVER_TIMEOUT_MS, "The destination did not build the VM in time");
      // From here on only the destination may run the guest.
      go = true;
      await writeAll(socket, frame(Frame.GO));
      await withTimeout(reader.expect(Frame.RUNNING), SWITCHOVER_TIMEOUT_MS, "The destination did not confirm it runs the guest");
      this.downtimeMs = Math.round(performance.now() - stoppedAt);
      this.blocks?.stop();
      this.finish("completed");
      socket.end();
      this.vm.handedOver();
    } catch (e) {
      this.socket?.destroy();
      this.vm.throttle(null);
      this.blocks?.stop();
      const cancelled = this.cancelRequested && !go;
      this.error = cancelled ? "The migration was cancelled." : e instanceof PrecopyCancelled ? "The VM stopped running during the migration." : (e as Error).message;
      if (go) {
        // GO went out but the destination did not confirm: it may run the guest, so this side stays paused.
        this.error += " The destination may be running the guest, so the VM stays paused here; check the destination before resuming it.";
      } else if (stopped || this.vm.running() || cancelled) {
        this.vm.resumeAfterFailure();
      }
      this.finish(cancelled ? "cancelled" : "failed");
    }
  }

  private setState(s: MigrationState): void {
    this.state = s;
    this.onStateChange(s);
  }

  private finish(s: MigrationState): void {
    this.endedAt = performance.now();
    this.setState(s);
  }

  private connect(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const u = this.uri;
      const s = u.kind === "unix" ? connect(u.path) : connect(u.port, u.host);
      this.socket = s;
      s.setNoDelay(true);
      const timer = setTimeout(() => s.destroy(new Error(`no answer in ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      s.once("connect", () => { clearTimeout(timer); resolve(s); });
      s.once("error", (e) => {
        clearTimeout(timer);
        reject(new MigrationError(`Cannot connect to the destination ${describeUri(u)}: ${e.message}; start it with \`nodevisor run --incoming ${describeUri(u)}\` first.`));
      });
    });
  }

  /** PAGES frames for `pages` (copied from RAM now, or from `frozen`), paced to the bandwidth limit unless `final`. */
  private async sendPages(pages: Uint32Array, final = false, frozen?: Uint8Array): Promise<void> {
    const socket = this.socket!;
    const ram = this.vm.ram;
    for (let i = 0; i < pages.length; i += PAGES_PER_FRAME) {
      const n = Math.min(PAGES_PER_FRAME, pages.length - i);
      const b = this.pageBuf;
      const length = 4 + n * (4 + PAGE_BYTES);
      b.writeUInt8(Frame.PAGES, 0);
      b.writeUInt32LE(length, 1);
      b.writeUInt32LE(n, 5);
      const dataAt = 9 + n * 4;
      for (let k = 0; k < n; k++) {
        const p = pages[i + k]!;
        b.writeUInt32LE(p, 9 + k * 4);
        const j = i + k;
        b.set(frozen === undefined ? ram.u8.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES) : frozen.subarray(j * PAGE_BYTES, (j + 1) * PAGE_BYTES), dataAt + k * PAGE_BYTES);
      }
      // A copy: the socket may still hold the buffer when we fill it again.
      await writeAll(socket, Buffer.from(b.subarray(0, 5 + length)));
      this.sentBytes += 5 + length;
      if (!final) await this.pace();
    }
  }

  /** One BLOCKS frame, paced to the bandwidth limit while the guest runs. */
  private async sendBlocks(payload: Buffer): Promise<void> {
    await writeAll(this.socket!, frame(Frame.BLOCKS, payload));
    this.sentBytes += 5 + payload.length;
    if (!this.final) await this.pace();
  }

  private async pace(): Promise<void> {
    const due = this.sendStartedAt + (this.sentBytes / this.params.maxBandwidth) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new MigrationError(`${what} (${ms / 1000} s).`)), ms))),
  ]);
}
