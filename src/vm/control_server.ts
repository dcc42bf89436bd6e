// The VM control socket server: runs inside the VM process and turns JSON-lines requests
// (docs/control-socket.md) into calls on a VmController. Every byte a client sends is
// untrusted; a bad client gets an error object or loses its own connection, never the VM.

import { chmod, lstat, unlink } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { VmController, VmEvent, VmRunState } from "./controller.js";
import type { NicLimits } from "../net/shaper.js";
import {
  CONSOLE_EVENT,
  MAX_REQUEST_LINE_BYTES,
  PROTOCOL_VERSION,
  LineSplitter,
  decodeBase64,
  encodeLine,
  isPlainObject,
  parseJsonLine,
  type ControlGreeting,
  type ErrorClass,
  type JsonValue,
  type ServerMessage,
} from "./control_protocol.js";

export interface ControlServerOptions {
  path: string;
  controller: VmController;
  /** Reported in the greeting; the VM process passes the package version. */
  version?: string;
  log?: (message: string) => void;
  /** A client that lets more than this much output pile up unread is disconnected. */
  maxPendingOutputBytes?: number;
}

/** Failures to start or stop the server (never raised for a client's mistakes). */
export class ControlServerError extends Error {
  override name = "ControlServerError";
}

const DEFAULT_VERSION = "0.1.0";
const DEFAULT_MAX_PENDING_OUTPUT = 8 * 1024 * 1024;
// Linux sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = 107;
const PROBE_TIMEOUT_MS = 1000;
// Time a client gets to read its last error before the server drops the connection.
const CLOSE_GRACE_MS = 1000;
// Serial output is sent in slices so one event line stays far below any client's line cap.
const CONSOLE_SLICE_BYTES = 48 * 1024;
const CAPABILITIES = ["console"];

/** A command's failure as the client will see it. */
class CommandFailure extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    readonly desc: string,
  ) {
    super(desc);
  }
}

type ArgSpec = { type: "string" | "boolean" | "number"; required: boolean; nullable?: boolean };

/** A number argument that must be a finite value in [min, max]. */
function numberArg(command: string, name: string, value: unknown, min: number, max: number): number {
  const n = value as number;
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new CommandFailure("InvalidArgument", `The argument "${name}" of "${command}" must be a number from ${min} to ${max}.`);
  }
  return n;
}

/** The optional controller method, or a failure saying this VM cannot do it. */
function capability<K extends "setCpuLimits" | "setDiskLimits" | "consoleResize" | "saveSnapshot" | "loadSnapshot" | "migrate" | "queryMigration" | "cancelMigration" | "setMigrationParameters" | "setBalloonTarget" | "balloonInfo" | "setBalloonStatsInterval" | "interrupts">(c: ControlConnection, name: K): NonNullable<VmController[K]> {
  const fn = c.controller[name];
  if (typeof fn !== "function") throw new CommandFailure("GenericError", `This VM cannot ${name}; upgrade nodevisor.`);
  return (fn as (...a: never[]) => unknown).bind(c.controller) as NonNullable<VmController[K]>;
}

const MAX_RATE = Number.MAX_SAFE_INTEGER;

interface CommandSpec {
  args: Record<string, ArgSpec>;
  /** The reply; a command that takes time (a snapshot) returns a promise of it. */
  run(conn: ControlConnection, args: Record<string, unknown>): Record<string, unknown> | Promise<Record<string, unknown>>;
}

const STOPPED: readonly VmRunState[] = ["shutdown", "crashed"];

function requireState(conn: ControlConnection, allowed: readonly VmRunState[], action: string): void {
  const status = conn.controller.status();
  if (allowed.includes(status.state)) return;
  if (STOPPED.includes(status.state)) {
    const why = status.reason === null ? "" : ` (${status.reason})`;
    throw new CommandFailure("InvalidState", `Cannot ${action}: the VM has stopped${why}.`);
  }
  if (status.state === "inmigrate") throw new CommandFailure("InvalidState", `Cannot ${action}: this process waits for a snapshot; load one with snapshot-load first.`);
  throw new CommandFailure("InvalidState", `Cannot ${action}: the VM is ${status.state}.`);
}

/** set-net-limits arguments: per second, 0 or absent for no limit. */
const NET_LIMIT_ARGS = ["rx-bps", "tx-bps", "rx-pps", "tx-pps"] as const;

/** A controller's refusal of an argument (e.g. an unknown NIC) is the client's mistake. */
function asInvalidArgument(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if ((e as Error)?.name === "ConfigError") throw new CommandFailure("InvalidArgument", (e as Error).message);
    throw e;
  }
}

function netLimitsFrom(args: Record<string, unknown>): NicLimits {
  const limits: NicLimits = {};
  for (const key of NET_LIMIT_ARGS) {
    const v = args[key];
    if (v === undefined || v === 0) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      throw new CommandFailure("InvalidArgument", `The argument "${key}" must be a whole number per second (0 for no limit).`);
    }
    const dir = key.startsWith("rx") ? "rx" : "tx";
    limits[dir] = { ...limits[dir], [key.endsWith("bps") ? "bandwidth" : "ops"]: { size: v, refillTimeMs: 1000 } };
  }
  return limits;
}

const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["query-commands", { args: {}, run: () => ({ commands: [...COMMANDS.keys()].map((name) => ({ name })) }) }],
  ["query-status", { args: {}, run: (c) => ({ ...c.controller.status() }) }],
  ["query-stats", { args: {}, run: (c) => ({ ...c.controller.stats() }) }],
  ["query-interrupts", { args: {}, run: (c) => ({ ...capability(c, "interrupts")() }) }],
  [
    "pause",
    {
      args: {},
      run: (c) => {
        requireState(c, ["running", "starting"], "pause");
        c.controller.pause();
        return {};
      },
    },
  ],
  [
    "resume",
    {
      args: {},
      run: (c) => {
        requireState(c, ["paused"], "resume");
        c.controller.resume();
        return {};
      },
    },
  ],
  [
    "powerdown",
    {
      args: {},
      run: (c) => {
        // A paused guest cannot see the power button; the caller should resume or quit.
        requireState(c, ["running", "starting"], "ask the guest to power down (resume it first, or use quit)");
        c.controller.powerdown();
        return {};
      },
    },
  ],
  [
    "quit",
    {
      args: {},
      run: (c) => {
        c.controller.quit();
        return {};
      },
    },
  ],
  [
    "snapshot-save",
    {
      args: { path: { type: "string", required: true } },
      run: async (c, args) => {
        requireState(c, ["running", "paused"], "snapshot");
        const path = args.path as string;
        if (path.length === 0 || path.includes("\0")) throw new CommandFailure("InvalidArgument", 'The argument "path" must name a file.');
        return { ...(await capability(c, "saveSnapshot")(path)) };
      },
    },
  ],
  [
    "snapshot-load",
    {
      args: { path: { type: "string", required: true } },
      run: async (c, args) => {
        requireState(c, ["inmigrate"], "load a snapshot (only a `run --restore-wait` process takes one)");
        const path = args.path as string;
        if (path.length === 0 || path.includes("\0")) throw new CommandFailure("InvalidArgument", 'The argument "path" must name a file.');
        return { ...(await capability(c, "loadSnapshot")(path)) };
      },
    },
  ],
  [
    "migrate",
    {
      args: { uri: { type: "string", required: true }, blk: { type: "boolean", required: false } },
      run: (c, args) => {
        requireState(c, ["running"], "migrate");
        asInvalidArgument(() => capability(c, "migrate")(args.uri as string, { blk: args.blk === true }));
        return {};
      },
    },
  ],
  ["query-migrate", { args: {}, run: (c) => ({ ...capability(c, "queryMigration")() }) }],
  ["migrate-cancel", { args: {}, run: (c) => (capability(c, "cancelMigration")(), {}) }],
  [
    "migrate-set-parameters",
    {
      args: { "downtime-limit": { type: "number", required: false }, "max-bandwidth": { type: "number", required: false } },
      run: (c, args) => {
        const p: { downtimeLimitMs?: number; maxBandwidth?: number } = {};
        if (args["downtime-limit"] !== undefined) p.downtimeLimitMs = numberArg("migrate-set-parameters", "downtime-limit", args["downtime-limit"], 1, 2_000_000);
        if (args["max-bandwidth"] !== undefined) p.maxBandwidth = numberArg("migrate-set-parameters", "max-bandwidth", args["max-bandwidth"], 1 << 20, MAX_RATE);
        const now = capability(c, "setMigrationParameters")(p);
        return { "downtime-limit": now.downtimeLimitMs, "max-bandwidth": now.maxBandwidth };
      },
    },
  ],
  [
    "console-write",
    {
      args: { data: { type: "string", required: true } },
      run: (c, args) => {
        const bytes = decodeBase64(args.data as string);
        if (bytes === null) {
          throw new CommandFailure("InvalidArgument", 'The argument "data" must be base64 (RFC 4648, with padding).');
        }
        requireState(c, ["starting", "running", "paused"], "write to the console");
        return { bytes: c.controller.consoleWrite(bytes) };
      },
    },
  ],
  [
    "set-cpu-limits",
    {
      args: { cap: { type: "number", required: true, nullable: true } },
      run: (c, args) => {
        const cap = args.cap === null ? null : numberArg("set-cpu-limits", "cap", args.cap, 0, 100);
        capability(c, "setCpuLimits")(cap === 0 ? null : cap);
        return { cap: cap === 0 ? null : cap };
      },
    },
  ],
  [
    "set-disk-limits",
    {
      args: {
        disk: { type: "string", required: true },
        bps: { type: "number", required: false },
        iops: { type: "number", required: false },
        burst: { type: "number", required: false },
      },
      run: (c, args) => {
        const m = /^vd([a-z])$/.exec(args.disk as string);
        if (m === null) throw new CommandFailure("InvalidArgument", 'The argument "disk" must name a disk as the guest sees it: vda, vdb, ...');
        const limits: Record<string, number> = {};
        for (const key of ["bps", "iops", "burst"] as const) {
          if (args[key] !== undefined) limits[key] = Math.round(numberArg("set-disk-limits", key, args[key], 0, MAX_RATE));
        }
        if (limits.burst && !limits.bps) throw new CommandFailure("InvalidArgument", 'The argument "burst" of "set-disk-limits" needs a "bps" limit beside it.');
        try {
          capability(c, "setDiskLimits")(m[1]!.charCodeAt(0) - 0x61, limits);
        } catch (e) {
          if (e instanceof RangeError) throw new CommandFailure("InvalidArgument", e.message);
          throw e;
        }
        return {};
      },
    },
  ],
  [
    "set-link",
    {
      args: { nic: { type: "string", required: true }, up: { type: "boolean", required: true } },
      run: (c, args) => {
        requireState(c, ["starting", "running", "paused"], "change a link");
        if (c.controller.setLink === undefined) throw new CommandFailure("CommandNotFound", "This VM has no network support.");
        asInvalidArgument(() => c.controller.setLink!(args.nic as string, args.up as boolean));
        return {};
      },
    },
  ],
  [
    "console-resize",
    {
      args: { rows: { type: "number", required: true }, cols: { type: "number", required: true } },
      run: (c, args) => {
        const rows = numberArg("console-resize", "rows", args.rows, 1, 1000);
        const cols = numberArg("console-resize", "cols", args.cols, 1, 1000);
        requireState(c, ["starting", "running", "paused"], "resize the console");
        capability(c, "consoleResize")(Math.floor(rows), Math.floor(cols));
        return {};
      },
    },
  ],
  [
    "set-net-limits",
    {
      args: Object.fromEntries(["nic", ...NET_LIMIT_ARGS].map((k) => [k, { type: k === "nic" ? "string" : "number", required: k === "nic" }])) as Record<string, ArgSpec>,
      run: (c, args) => {
        requireState(c, ["starting", "running", "paused"], "change rate limits");
        if (c.controller.setNetLimits === undefined) throw new CommandFailure("CommandNotFound", "This VM has no network support.");
        const limits = netLimitsFrom(args);
        asInvalidArgument(() => c.controller.setNetLimits!(args.nic as string, limits));
        return {};
      },
    },
  ],
  [
    "balloon",
    {
      args: { value: { type: "number", required: true } },
      run: (c, args) => {
        requireState(c, ["starting", "running", "paused"], "change the balloon");
        asInvalidArgument(() => capability(c, "setBalloonTarget")(args.value as number));
        return {};
      },
    },
  ],
  ["query-balloon", { args: {}, run: (c) => ({ ...capability(c, "balloonInfo")() }) }],
  [
    "balloon-stats-interval",
    {
      args: { seconds: { type: "number", required: true } },
      run: (c, args) => {
        requireState(c, ["starting", "running", "paused"], "change the statistics interval");
        asInvalidArgument(() => capability(c, "setBalloonStatsInterval")(args.seconds as number));
        return {};
      },
    },
  ],
  [
    "console-attach",
    {
      args: {},
      run: (c) => {
        c.attachConsole();
        return {};
      },
    },
  ],
  [
    "console-detach",
    {
      args: {},
      run: (c) => {
        c.detachConsole();
        return {};
      },
    },
  ],
]);

function checkArguments(command: string, spec: CommandSpec, args: Record<string, unknown>): void {
  for (const name of Object.keys(args)) {
    if (!Object.hasOwn(spec.args, name)) {
      throw new CommandFailure("InvalidArgument", `The command "${command}" takes no argument "${name}".`);
    }
  }
  for (const [name, want] of Object.entries(spec.args)) {
    if (!Object.hasOwn(args, name)) {
      if (want.required) {
        throw new CommandFailure("InvalidArgument", `The command "${command}" needs the argument "${name}".`);
      }
      continue;
    }
    if (args[name] === null && want.nullable === true) continue;
    if (typeof args[name] !== want.type) {
      throw new CommandFailure("InvalidArgument", `The argument "${name}" of "${command}" must be a ${want.type}.`);
    }
  }
}

const REQUEST_MEMBERS = ["id", "execute", "arguments"];

/** One client: its line buffer, its subscriptions, and its replies. */
class ControlConnection {
  private readonly splitter = new LineSplitter(MAX_REQUEST_LINE_BYTES);
  private unsubscribeConsole: (() => void) | null = null;
  private unsubscribeEvents: (() => void) | null = null;
  private closing = false;

  constructor(
    private readonly socket: Socket,
    public controller: VmController,
    private readonly log: (m: string) => void,
    private readonly maxPendingOutput: number,
    private readonly onGone: (c: ControlConnection) => void,
  ) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (e) => this.log(`Control connection failed: ${e.message}.`));
    socket.on("close", () => this.cleanup());
  }

  start(greeting: ControlGreeting): void {
    this.send(greeting);
    this.unsubscribeEvents = this.controller.onEvent((e) => this.forwardEvent(e));
  }

  attachConsole(): void {
    if (this.unsubscribeConsole !== null) return;
    this.unsubscribeConsole = this.controller.onConsoleOutput((data) => this.forwardConsole(data));
  }

  detachConsole(): void {
    this.unsubscribeConsole?.();
    this.unsubscribeConsole = null;
  }

  /** From now on this client talks to `next`; its event and console subscriptions move with it. */
  switchTo(next: VmController): void {
    if (this.closing) return;
    const attached = this.unsubscribeConsole !== null;
    this.releaseSubscriptions();
    this.controller = next;
    this.unsubscribeEvents = next.onEvent((e) => this.forwardEvent(e));
    if (attached) this.attachConsole();
  }

  destroy(): void {
    this.socket.destroy();
    this.cleanup();
  }

  private receive(chunk: Buffer): void {
    if (this.closing) return;
    const { lines, overflow } = this.splitter.push(chunk);
    for (const line of lines) {
      if (this.closing) return;
      this.handleLine(line);
    }
    if (overflow) {
      this.fail(
        undefined,
        "GenericError",
        `The request line is longer than ${MAX_REQUEST_LINE_BYTES} bytes; the connection will be closed.`,
      );
      this.closeGracefully();
    }
  }

  private handleLine(line: Buffer): void {
    if (line.length === 0 || (line.length === 1 && line[0] === 0x0d)) return;
    const parsed = parseJsonLine(line);
    if (!parsed.ok) return this.fail(undefined, "GenericError", parsed.reason);
    const req = parsed.value;
    if (!isPlainObject(req)) {
      return this.fail(undefined, "GenericError", 'A request must be a JSON object such as {"execute": "query-status"}.');
    }
    const id = Object.hasOwn(req, "id") ? (req.id as JsonValue) : undefined;
    for (const key of Object.keys(req)) {
      if (!REQUEST_MEMBERS.includes(key)) {
        return this.fail(id, "GenericError", `The request has an unknown member "${key}"; only id, execute and arguments are allowed.`);
      }
    }
    if (typeof req.execute !== "string") {
      return this.fail(id, "GenericError", 'The request needs an "execute" member naming a command, as a string.');
    }
    const command = req.execute;
    const spec = COMMANDS.get(command);
    if (spec === undefined) {
      return this.fail(id, "CommandNotFound", `The command "${command.slice(0, 100)}" does not exist; query-commands lists them.`);
    }
    const args = Object.hasOwn(req, "arguments") ? req.arguments : {};
    if (!isPlainObject(args)) return this.fail(id, "InvalidArgument", 'The "arguments" member must be a JSON object.');
    this.run(id, command, spec, args);
  }

  private run(id: JsonValue | undefined, command: string, spec: CommandSpec, args: Record<string, unknown>): void {
    const failed = (e: unknown): void => {
      if (e instanceof CommandFailure) return this.fail(id, e.errorClass, e.desc);
      if ((e as Error)?.name === "ConfigError") return this.fail(id, "GenericError", (e as Error).message);
      const reason = e instanceof Error ? e.message : String(e);
      this.log(`Control command "${command}" failed: ${reason}`);
      return this.fail(id, "GenericError", `The command "${command}" failed: ${reason}`);
    };
    let result: Record<string, unknown> | Promise<Record<string, unknown>>;
    try {
      checkArguments(command, spec, args);
      result = spec.run(this, args);
    } catch (e) {
      return failed(e);
    }
    if (result instanceof Promise) {
      result.then((r) => this.write(encodeLine(withId(id, { return: r }))), failed);
      return;
    }
    this.write(encodeLine(withId(id, { return: result })));
  }

  private fail(id: JsonValue | undefined, errorClass: ErrorClass, desc: string): void {
    this.send(withId(id, { error: { class: errorClass, desc } }));
  }

  private forwardEvent(e: VmEvent): void {
    if (typeof e?.event !== "string") return;
    this.send({ event: e.event, timestamp: Date.now(), data: isPlainObject(e.data) ? e.data : {} });
  }

  private forwardConsole(data: Uint8Array): void {
    for (let at = 0; at < data.length; at += CONSOLE_SLICE_BYTES) {
      const slice = data.subarray(at, Math.min(data.length, at + CONSOLE_SLICE_BYTES));
      const encoded = Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength).toString("base64");
      this.send({ event: CONSOLE_EVENT, timestamp: Date.now(), data: { data: encoded } });
    }
  }

  private send(message: ServerMessage): void {
    let line: string;
    try {
      line = encodeLine(message);
    } catch (e) {
      // Only a controller bug (a BigInt, a cycle) can get here; the client still gets an answer.
      this.log(`Cannot encode a control message: ${(e as Error).message}`);
      const id = "id" in message ? message.id : undefined;
      line = encodeLine(withId(id, { error: { class: "GenericError", desc: "The VM produced a reply that cannot be encoded as JSON." } }));
    }
    this.write(line);
  }

  private write(line: string): void {
    if (this.closing || this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(line);
    if (this.socket.writableLength > this.maxPendingOutput) {
      this.log(`Dropping a control client that left ${this.socket.writableLength} bytes unread.`);
      this.destroy();
    }
  }

  /** Sends what is queued, then closes. */
  end(): void {
    this.closeGracefully();
  }

  private closeGracefully(): void {
    if (this.closing) return;
    this.closing = true;
    this.releaseSubscriptions();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private releaseSubscriptions(): void {
    this.detachConsole();
    this.unsubscribeEvents?.();
    this.unsubscribeEvents = null;
  }

  private cleanup(): void {
    this.closing = true;
    this.releaseSubscriptions();
    this.onGone(this);
  }
}

function withId<T extends object>(id: JsonValue | undefined, body: T): T & { id?: JsonValue } {
  return id === undefined ? body : { id, ...body };
}

/** True when something accepts connections at `path`; false when the socket file is stale. */
function probeSocket(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const timer = setTimeout(() => finish(() => resolve(true)), PROBE_TIMEOUT_MS);
    const finish = (then: () => void): void => {
      clearTimeout(timer);
      s.destroy();
      then();
    };
    s.once("connect", () => finish(() => resolve(true)));
    s.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNREFUSED" || e.code === "ENOENT") finish(() => resolve(false));
      else finish(() => reject(new ControlServerError(`Cannot check the existing socket "${path}": ${e.message}.`)));
    });
  });
}

async function clearSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (!isSocket) {
    throw new ControlServerError(`Cannot listen on "${path}": a file that is not a socket is there; remove it or choose another path.`);
  }
  if (await probeSocket(path)) {
    throw new ControlServerError(`Cannot listen on "${path}": another control server answers there; stop that VM or choose another path.`);
  }
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

export class ControlServer {
  private readonly path: string;
  private controller: VmController;
  private readonly version: string;
  private readonly log: (m: string) => void;
  private readonly maxPendingOutput: number;
  private readonly connections = new Set<ControlConnection>();
  private server: Server | null = null;
  // False once close() began: late connections are refused.
  private accepting = true;
  // Inode of our socket file, so close() never deletes a file some other server put there.
  private socketIno: number | null = null;
  private connected = false;
  private readonly connectedWaiters: (() => void)[] = [];

  constructor(opts: ControlServerOptions) {
    this.path = opts.path;
    this.controller = opts.controller;
    this.version = opts.version ?? DEFAULT_VERSION;
    this.log = opts.log ?? (() => {});
    this.maxPendingOutput = opts.maxPendingOutputBytes ?? DEFAULT_MAX_PENDING_OUTPUT;
  }

  async listen(): Promise<void> {
    if (this.server !== null) throw new ControlServerError(`The control server on "${this.path}" is already listening.`);
    const pathBytes = Buffer.byteLength(this.path);
    if (pathBytes > MAX_SOCKET_PATH_BYTES) {
      throw new ControlServerError(
        `Cannot listen on "${this.path}": the path is ${pathBytes} bytes and UNIX sockets allow ${MAX_SOCKET_PATH_BYTES}; choose a shorter path.`,
      );
    }
    await clearSocketPath(this.path);
    const server = createServer((socket) => this.accept(socket));
    server.on("error", (e) => this.log(`Control server error: ${e.message}.`));
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new ControlServerError(`Cannot listen on "${this.path}": ${e.message}.`));
      server.once("error", onError);
      // The socket is created 0600 (bind happens inside listen()), so no other user can connect
      // in the moment before the chmod below; clients waiting for the file can connect at once.
      const umask = process.umask(0o177);
      try {
        server.listen(this.path, () => {
          server.off("error", onError);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    this.server = server;
    try {
      this.socketIno = (await lstat(this.path)).ino;
      await chmod(this.path, 0o600);
    } catch (e) {
      await this.close();
      throw new ControlServerError(`Cannot secure the socket "${this.path}": ${(e as Error).message}.`);
    }
  }

  async close(): Promise<void> {
    this.accepting = false;
    const server = this.server;
    this.server = null;
    // Ended, not destroyed: the reply to `quit` and the SHUTDOWN event still reach the clients
    // (each connection is destroyed after CLOSE_GRACE_MS if its peer does not read).
    for (const c of [...this.connections]) c.end();
    if (server === null) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const ino = this.socketIno;
    this.socketIno = null;
    try {
      if ((await lstat(this.path)).ino === ino) await unlink(this.path);
    } catch {
      // Already gone: nothing to clean up.
    }
  }

  /**
   * Puts `next` behind the socket for every client, connected or to come: a `run --restore-wait`
   * process hands its clients from the waiting stand-in to the VM it restored.
   */
  replaceController(next: VmController): void {
    this.controller = next;
    for (const c of this.connections) c.switchTo(next);
  }

  /** Resolves once a client has connected (at once if one has already). */
  untilConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  private accept(socket: Socket): void {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    this.connected = true;
    for (const resolve of this.connectedWaiters.splice(0)) resolve();
    const conn = new ControlConnection(socket, this.controller, this.log, this.maxPendingOutput, (c) =>
      this.connections.delete(c),
    );
    this.connections.add(conn);
    conn.start({ nodevisor: { version: this.version, protocol: PROTOCOL_VERSION }, capabilities: [...CAPABILITIES] });
  }
}
