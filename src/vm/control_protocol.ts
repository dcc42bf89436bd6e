// The VM control socket's wire format: JSON lines over a UNIX socket, modelled on QEMU's QMP.
// Shared by the server (inside the VM process), the client (CLI, daemon) and the docs
// (docs/control-socket.md). Within protocol 1 changes are additive only.

/** Bumped only for incompatible changes; clients refuse a greeting with another number. */
export const PROTOCOL_VERSION = 1;

/** Longest request line the server accepts, in bytes, not counting the newline. */
export const MAX_REQUEST_LINE_BYTES = 1024 * 1024;

/** Longest line a client accepts from a server (replies carry stats and console data). */
export const MAX_REPLY_LINE_BYTES = 16 * 1024 * 1024;

export type ErrorClass = "GenericError" | "CommandNotFound" | "InvalidArgument" | "InvalidState";

/** Any JSON value; the server echoes a request's id unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ControlRequest {
  id?: JsonValue;
  execute: string;
  arguments?: Record<string, unknown>;
}

export interface ControlSuccess {
  id?: JsonValue;
  return: Record<string, unknown>;
}

export interface ControlErrorBody {
  class: ErrorClass;
  desc: string;
}

export interface ControlFailure {
  id?: JsonValue;
  error: ControlErrorBody;
}

export interface ControlEvent {
  event: string;
  /** Milliseconds since the Unix epoch, when the server sent the event. */
  timestamp: number;
  data: Record<string, unknown>;
}

export interface ControlGreeting {
  nodevisor: { version: string; protocol: number };
  capabilities: string[];
}

export type ServerMessage = ControlSuccess | ControlFailure | ControlEvent | ControlGreeting;

/** Serial output events sent to connections that ran console-attach. */
export const CONSOLE_EVENT = "CONSOLE";

/** Serialises one message as a line; the only place the server and client frame output. */
export function encodeLine(message: ServerMessage | ControlRequest): string {
  return JSON.stringify(message) + "\n";
}

export type SplitResult = { lines: Buffer[]; overflow: boolean };

/**
 * Splits a byte stream into lines, holding at most `maxLineBytes` of an unfinished line.
 * Works on bytes so a multi-byte UTF-8 character split across chunks stays intact.
 * Once it reports overflow the stream is unusable and the caller closes it.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowed = false;

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Buffer): SplitResult {
    const lines: Buffer[] = [];
    if (this.overflowed) return { lines, overflow: true };
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const lineBytes = this.pendingBytes + (nl - start);
      if (lineBytes > this.maxLineBytes) return this.overflow(lines);
      const piece = chunk.subarray(start, nl);
      lines.push(this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]));
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
    }
    const rest = chunk.length - start;
    if (this.pendingBytes + rest > this.maxLineBytes) return this.overflow(lines);
    if (rest > 0) {
      // Copy: the socket may reuse the chunk's memory.
      this.pending.push(Buffer.from(chunk.subarray(start)));
      this.pendingBytes += rest;
    }
    return { lines, overflow: false };
  }

  private overflow(lines: Buffer[]): SplitResult {
    this.overflowed = true;
    this.pending = [];
    this.pendingBytes = 0;
    return { lines, overflow: true };
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes one line as UTF-8 JSON; a trailing \r (from socat/telnet users) is tolerated. */
export function parseJsonLine(line: Buffer): { ok: true; value: unknown } | { ok: false; reason: string } {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return { ok: false, reason: "The line is not valid UTF-8." };
  }
  if (text.endsWith("\r")) text = text.slice(0, -1);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, reason: `The line is not valid JSON (${(e as Error).message}).` };
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Strict RFC 4648 base64 (with padding); Buffer.from would silently skip bad characters. */
export function decodeBase64(s: string): Uint8Array | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return new Uint8Array(Buffer.from(s, "base64"));
}
