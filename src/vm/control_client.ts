// Client side of the VM control socket, for the CLI, the tests and the host daemon.
// The VM process may be running a hostile guest, so replies are bounded and checked too.

import { connect, type Socket } from "node:net";
import {
  MAX_REPLY_LINE_BYTES,
  MAX_REQUEST_LINE_BYTES,
  PROTOCOL_VERSION,
  LineSplitter,
  encodeLine,
  isPlainObject,
  parseJsonLine,
  type ControlGreeting,
} from "./control_protocol.js";

/** A command the VM answered with an error object; carries the protocol's class and desc. */
export class ControlCommandError extends Error {
  override name = "ControlCommandError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`The VM refused "${command}" (${errorClass}): ${desc}`);
  }
}

/** The connection itself failed: refused, timed out, closed, or the server broke the protocol. */
export class ControlConnectionError extends Error {
  override name = "ControlConnectionError";
}

export interface ControlClientOptions {
  /** Limit for connecting and receiving the greeting. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class ControlClient {
  private readonly splitter = new LineSplitter(MAX_REPLY_LINE_BYTES);
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<(data: any) => void>>();
  private readonly closeListeners = new Set<(reason: Error) => void>();
  private nextId = 1;
  private receivedGreeting: ControlGreeting | null = null;
  private closedReason: Error | null = null;
  private greetingWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
  ) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (e) => this.shutDown(new ControlConnectionError(`The control connection to "${path}" failed: ${e.message}.`)));
    socket.on("close", () => this.shutDown(new ControlConnectionError(`The control connection to "${path}" was closed by the VM.`)));
  }

  static connect(path: string, opts: ControlClientOptions = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const client = new ControlClient(connect(path), path);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.shutDown(new ControlConnectionError(`The VM at "${path}" did not greet within ${timeoutMs} ms.`));
      }, timeoutMs);
      client.greetingWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve(client);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** The server's greeting: its version, protocol number and capabilities. */
  get greeting(): ControlGreeting {
    if (this.receivedGreeting === null) throw new ControlConnectionError("The VM has not greeted yet.");
    return this.receivedGreeting;
  }

  /** Runs a command; resolves with its "return" object, rejects with ControlCommandError. */
  execute<T = unknown>(command: string, args?: object): Promise<T> {
    if (this.closedReason !== null) return Promise.reject(this.closedReason);
    const id = this.nextId++;
    const line = encodeLine(args === undefined ? { id, execute: command } : { id, execute: command, arguments: args as Record<string, unknown> });
    if (Buffer.byteLength(line) - 1 > MAX_REQUEST_LINE_BYTES) {
      return Promise.reject(new ControlConnectionError(`The request "${command}" is larger than the ${MAX_REQUEST_LINE_BYTES}-byte limit; send it in parts.`));
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(line);
    });
  }

  /** Listens for an event by name ("SHUTDOWN", "CONSOLE", ...); receives its data object. */
  on(event: string, listener: (data: any) => void): void {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener);
  }

  off(event: string, listener: (data: any) => void): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** Called once when the connection ends, whoever ended it. */
  onClose(listener: (reason: Error) => void): void {
    if (this.closedReason !== null) queueMicrotask(() => listener(this.closedReason as Error));
    else this.closeListeners.add(listener);
  }

  close(): void {
    this.shutDown(new ControlConnectionError(`The control connection to "${this.path}" was closed by this client.`));
  }

  private receive(chunk: Buffer): void {
    const { lines, overflow } = this.splitter.push(chunk);
    for (const line of lines) {
      if (this.closedReason !== null) return;
      if (line.length > 0) this.handleLine(line);
    }
    if (overflow) this.protocolError(`a line is longer than ${MAX_REPLY_LINE_BYTES} bytes`);
  }

  private handleLine(line: Buffer): void {
    const parsed = parseJsonLine(line);
    if (!parsed.ok) return this.protocolError(parsed.reason);
    const msg = parsed.value;
    if (!isPlainObject(msg)) return this.protocolError("a line is not a JSON object");
    if (this.receivedGreeting === null) return this.handleGreeting(msg);
    if (typeof msg.event === "string") return this.dispatchEvent(msg.event, isPlainObject(msg.data) ? msg.data : {});
    if (typeof msg.id !== "number") return; // An id-less error: a reply to nothing this client sent.
    const waiter = this.pending.get(msg.id);
    if (waiter === undefined) return;
    this.pending.delete(msg.id);
    if (isPlainObject(msg.error)) {
      const errorClass = typeof msg.error.class === "string" ? msg.error.class : "GenericError";
      const desc = typeof msg.error.desc === "string" ? msg.error.desc : "The VM gave no reason.";
      waiter.reject(new ControlCommandError(waiter.command, errorClass, desc));
    } else if (isPlainObject(msg.return)) {
      waiter.resolve(msg.return);
    } else {
      this.protocolError(`the reply to "${waiter.command}" has neither "return" nor "error"`);
      waiter.reject(this.closedReason ?? new ControlConnectionError("The VM sent a malformed reply."));
    }
  }

  private handleGreeting(msg: Record<string, unknown>): void {
    const info = msg.nodevisor;
    if (!isPlainObject(info) || typeof info.protocol !== "number" || typeof info.version !== "string") {
      return this.protocolError("its first line is not a nodevisor greeting");
    }
    if (info.protocol !== PROTOCOL_VERSION) {
      return this.shutDown(
        new ControlConnectionError(
          `The VM at "${this.path}" speaks control protocol ${info.protocol}, this client speaks ${PROTOCOL_VERSION}; use matching nodevisor versions.`,
        ),
      );
    }
    const capabilities = Array.isArray(msg.capabilities) ? msg.capabilities.filter((c): c is string => typeof c === "string") : [];
    this.receivedGreeting = { nodevisor: { version: info.version, protocol: info.protocol }, capabilities };
    this.greetingWaiter?.resolve();
    this.greetingWaiter = null;
  }

  private dispatchEvent(name: string, data: Record<string, unknown>): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        listener(data);
      } catch (e) {
        // A listener's bug surfaces as usual but does not stop other listeners or replies.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private protocolError(what: string): void {
    this.shutDown(new ControlConnectionError(`The VM at "${this.path}" broke the control protocol: ${what}.`));
  }

  private shutDown(reason: Error): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.socket.destroy();
    this.greetingWaiter?.reject(reason);
    this.greetingWaiter = null;
    for (const p of this.pending.values()) {
      p.reject(new ControlConnectionError(`${reason.message.replace(/\.$/, "")} before "${p.command}" was answered.`));
    }
    this.pending.clear();
    for (const listener of this.closeListeners) listener(reason);
    this.closeListeners.clear();
  }
}
