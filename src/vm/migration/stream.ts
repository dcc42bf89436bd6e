// The live-migration stream between two nodevisor processes, and where it goes (a URI).
//
//   "NVMIGRAT" | u32 version, then frames: u8 kind | u32 payload bytes | payload
//
// source → destination: HELLO (JSON: the VM's config), PAGES (u32 count | u32 page numbers[] |
// 4 KiB each), BLOCKS (disk data, block_copy.ts), STATE (JSON: the snapshot header), GO; destination → source: READY (built, not
// running), RUNNING, and ERROR (JSON {message}) either way. The peer is untrusted: every length
// is checked before anything is buffered, and a bad stream is refused with one sentence.

import type { Socket } from "node:net";
import { ConfigError } from "../config.js";

export const MIGRATION_VERSION = 1;
const MAGIC = Buffer.from("NVMIGRAT", "latin1");
export const PREAMBLE_BYTES = MAGIC.length + 4;
export const PAGE_BYTES = 4096;
/** Pages per PAGES frame. */
export const PAGES_PER_FRAME = 256;
const MAX_JSON_BYTES = 64 << 20;

export const Frame = { HELLO: 1, PAGES: 2, STATE: 3, READY: 4, GO: 5, RUNNING: 6, ERROR: 7, BLOCKS: 8 } as const;
/** The most disk data one BLOCKS frame carries (block_copy.ts). */
export const BLOCK_CHUNK_BYTES = 64 << 10;
export type FrameKind = (typeof Frame)[keyof typeof Frame];
const FRAME_NAMES = Object.fromEntries(Object.entries(Frame).map(([k, v]) => [v, k])) as Record<number, string>;

/** A stream that is not a usable migration (or a peer that went away); the message says which. */
export class MigrationError extends Error {
  override name = "MigrationError";
}

export type MigrationUri = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

/** Parses `tcp:HOST:PORT` or `unix:PATH` (QEMU's spelling), or says what is wrong. */
export function parseMigrationUri(text: string): MigrationUri {
  if (text.startsWith("unix:") && text.length > 5 && !text.includes("\0")) return { kind: "unix", path: text.slice(5) };
  const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  if (m !== null && Number(m[2]) <= 65535) return { kind: "tcp", host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
  throw new ConfigError(`Cannot migrate to "${text.slice(0, 200)}": give tcp:HOST:PORT or unix:PATH.`);
}

export function describeUri(u: MigrationUri): string {
  return u.kind === "unix" ? `unix:${u.path}` : `tcp:${u.host}:${u.port}`;
}

export function preamble(): Buffer {
  const b = Buffer.alloc(PREAMBLE_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(MIGRATION_VERSION, MAGIC.length);
  return b;
}

export function frame(kind: FrameKind, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(kind, 0);
  head.writeUInt32LE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function jsonFrame(kind: FrameKind, value: unknown): Buffer {
  return frame(kind, Buffer.from(JSON.stringify(value), "utf8"));
}

/** Largest payload each kind may carry: anything bigger is refused before it is buffered. */
function maxPayload(kind: number): number {
  switch (kind) {
    case Frame.PAGES: return 4 + PAGES_PER_FRAME * (4 + PAGE_BYTES);
    case Frame.BLOCKS: return 8 + BLOCK_CHUNK_BYTES;
    case Frame.HELLO: case Frame.STATE: case Frame.ERROR: return MAX_JSON_BYTES;
    case Frame.READY: case Frame.GO: case Frame.RUNNING: return 0;
    default: return -1;
  }
}

export interface ReceivedFrame {
  kind: FrameKind;
  payload: Buffer;
}

/** Reads frames off a socket, one at a time, checking the preamble first (when `expectPreamble`). */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private preambleSeen: boolean;

  constructor(private readonly socket: Socket, private readonly peer: string, expectPreamble: boolean) {
    this.preambleSeen = !expectPreamble;
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      // A peer that sends faster than we read is held back by TCP, not by our memory.
      if (this.buffered > 8 << 20) socket.pause();
      this.poke();
    });
    socket.on("end", () => { this.ended = true; this.poke(); });
    socket.on("close", () => { this.ended = true; this.poke(); });
    socket.on("error", (e) => { this.failure = e; this.poke(); });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async need(n: number, inside: string): Promise<Buffer> {
    while (this.buffered < n) {
      if (this.failure !== null) throw new MigrationError(`The migration from ${this.peer} failed: ${this.failure.message}.`);
      if (this.ended) {
        throw new MigrationError(this.buffered === 0 && inside === "a frame header"
          ? `${this.peer} closed the migration stream.`
          : `The migration stream from ${this.peer} ended inside ${inside} (truncated).`);
      }
      this.socket.resume();
      await new Promise<void>((r) => (this.wake = r));
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    if (this.buffered <= 8 << 20) this.socket.resume();
    return out;
  }

  async next(): Promise<ReceivedFrame> {
    if (!this.preambleSeen) {
      const p = await this.need(PREAMBLE_BYTES, "its preamble");
      if (!p.subarray(0, MAGIC.length).equals(MAGIC)) throw new MigrationError(`${this.peer} did not send a nodevisor migration stream (bad magic).`);
      const version = p.readUInt32LE(MAGIC.length);
      if (version !== MIGRATION_VERSION) {
        throw new MigrationError(`${this.peer} sends migration stream version ${version}, and this nodevisor reads version ${MIGRATION_VERSION}; run the same nodevisor on both sides.`);
      }
      this.preambleSeen = true;
    }
    const head = await this.need(5, "a frame header");
    const kind = head.readUInt8(0);
    const length = head.readUInt32LE(1);
    const max = maxPayload(kind);
    if (max < 0) throw new MigrationError(`${this.peer} sent a frame of unknown kind ${kind}; the migration stream is corrupt.`);
    if (length > max) throw new MigrationError(`${this.peer} sent a ${FRAME_NAMES[kind]} frame of ${length} bytes, more than its ${max}; the migration stream is corrupt.`);
    const payload = await this.need(length, `a ${FRAME_NAMES[kind]} frame`);
    return { kind: kind as FrameKind, payload: Buffer.from(payload) };
  }

  /** The next frame, which must be of `kind` (an ERROR frame becomes the peer's sentence). */
  async expect(kind: FrameKind): Promise<Buffer> {
    const f = await this.next();
    if (f.kind === kind) return f.payload;
    if (f.kind === Frame.ERROR) throw new MigrationError(`${this.peer} refused the migration: ${parseJson<{ message?: string }>(f.payload, this.peer).message ?? "no reason given"}`);
    throw new MigrationError(`${this.peer} sent ${FRAME_NAMES[f.kind]} where ${FRAME_NAMES[kind]} belongs; the migration stream is corrupt.`);
  }
}

export function parseJson<T>(payload: Buffer, peer: string): T {
  try {
    return JSON.parse(payload.toString("utf8")) as T;
  } catch {
    throw new MigrationError(`${peer} sent a frame that is not JSON; the migration stream is corrupt.`);
  }
}

/** A PAGES frame's page numbers and data, checked against the RAM size. */
export function parsePages(payload: Buffer, ramPages: number, peer: string): { pages: Uint32Array; data: Buffer } {
  const bad = (why: string) => new MigrationError(`${peer} sent a bad PAGES frame (${why}); the migration stream is corrupt.`);
  if (payload.length < 4) throw bad("no count");
  const count = payload.readUInt32LE(0);
  if (count > PAGES_PER_FRAME || payload.length !== 4 + count * (4 + PAGE_BYTES)) throw bad(`${count} pages in ${payload.length} bytes`);
  const pages = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const p = payload.readUInt32LE(4 + i * 4);
    if (p >= ramPages) throw bad(`page ${p} is outside the VM's ${ramPages} pages`);
    pages[i] = p;
  }
  return { pages, data: payload.subarray(4 + count * 4) };
}

/** Writes to a socket, waiting while its buffer is full; rejects when it closes. */
export function writeAll(socket: Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new MigrationError("The migration connection is closed."));
      return;
    }
    const more = socket.write(data, (e) => {
      if (e) reject(new MigrationError(`The migration connection failed: ${e.message}.`));
    });
    if (more) resolve();
    else {
      const done = (): void => { socket.off("close", closed); resolve(); };
      const closed = (): void => { socket.off("drain", done); reject(new MigrationError("The migration connection closed.")); };
      socket.once("drain", done);
      socket.once("close", closed);
    }
  });
}
