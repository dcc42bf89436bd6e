// The serial console over WebSocket: any number of viewers per VM, one writer at a time.
// Binary frames carry console bytes both ways; text frames carry JSON control messages:
//   server → client  {"type":"hello","writer":bool}  {"type":"closed","message":...}  {"type":"error","message":...}
//   client → server  {"type":"resize","rows":N,"cols":N}   (the writer only)

import { openSync, readSync, fstatSync, closeSync } from "node:fs";
import type WebSocket from "ws";
import type { VmProcess } from "./vm_process.js";

/** Console output replayed to a viewer who joins, so it sees the prompt. */
const REPLAY_BYTES = 4096;

interface Session {
  proc: VmProcess;
  viewers: Set<WebSocket>;
  writer: WebSocket | null;
  onOutput: (data: { data?: unknown }) => void;
}

export class ConsoleHub {
  private readonly sessions = new Map<string, Session>();

  /** Joins `ws` to the console of VM `name`, whose process is `proc`. */
  async join(name: string, proc: VmProcess, ws: WebSocket, opts: { wantWrite: boolean; consoleLog: string }): Promise<void> {
    // Frames that arrive while the console is being attached are kept, not dropped (a first resize, say).
    const early: Array<[WebSocket.RawData, boolean]> = [];
    const keepEarly = (data: WebSocket.RawData, isBinary: boolean): void => void early.push([data, isBinary]);
    ws.on("message", keepEarly);
    let s = this.sessions.get(name);
    if (s === undefined || s.proc !== proc) {
      s = this.open(name, proc);
      await proc.client.execute("console-attach");
    }
    const session = s;
    const tail = readTail(opts.consoleLog, REPLAY_BYTES);
    if (tail.length > 0) ws.send(tail, { binary: true });
    session.viewers.add(ws);
    const writer = opts.wantWrite && session.writer === null;
    if (writer) session.writer = ws;
    ws.send(JSON.stringify({ type: "hello", writer }));
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (session.writer !== ws) {
        ws.send(JSON.stringify({ type: "error", message: "Another viewer is typing on this console; you can watch but not type. Reconnect when it has left." }));
        return;
      }
      if (isBinary) {
        proc.client.execute("console-write", { data: bytes.toString("base64") }).catch(() => {});
        return;
      }
      let msg: unknown;
      try {
        msg = JSON.parse(bytes.toString("utf8"));
      } catch {
        ws.send(JSON.stringify({ type: "error", message: "A text frame must be a JSON control message; send console input as binary frames." }));
        return;
      }
      const m = msg as { type?: unknown; rows?: unknown; cols?: unknown };
      if (m.type === "resize" && Number.isInteger(m.rows) && Number.isInteger(m.cols)) {
        proc.client.execute("console-resize", { rows: m.rows, cols: m.cols }).catch(() => {});
      } else {
        ws.send(JSON.stringify({ type: "error", message: 'Unknown control message; the only one is {"type":"resize","rows":N,"cols":N}.' }));
      }
    };
    ws.off("message", keepEarly);
    ws.on("message", onMessage);
    for (const [data, isBinary] of early) onMessage(data, isBinary);
    ws.on("close", () => this.leave(name, session, ws));
  }

  /** Tells every viewer of `name` that the VM has stopped and closes their sockets. */
  end(name: string, message: string): void {
    const s = this.sessions.get(name);
    if (s === undefined) return;
    this.sessions.delete(name);
    s.proc.client.off("CONSOLE", s.onOutput);
    for (const ws of s.viewers) {
      ws.send(JSON.stringify({ type: "closed", message }));
      ws.close(1000, "the VM stopped");
    }
  }

  viewers(name: string): number {
    return this.sessions.get(name)?.viewers.size ?? 0;
  }

  private open(name: string, proc: VmProcess): Session {
    const session: Session = {
      proc,
      viewers: new Set(),
      writer: null,
      onOutput: (data) => {
        if (typeof data.data !== "string") return;
        const bytes = Buffer.from(data.data, "base64");
        for (const v of session.viewers) v.send(bytes, { binary: true });
      },
    };
    proc.client.on("CONSOLE", session.onOutput);
    proc.client.onClose(() => this.end(name, `The console of VM ${name} closed: the VM stopped.`));
    this.sessions.set(name, session);
    return session;
  }

  private leave(name: string, s: Session, ws: WebSocket): void {
    s.viewers.delete(ws);
    if (s.writer === ws) s.writer = null;
    if (s.viewers.size > 0 || this.sessions.get(name) !== s) return;
    this.sessions.delete(name);
    s.proc.client.off("CONSOLE", s.onOutput);
    s.proc.client.execute("console-detach").catch(() => {});
  }
}

function readTail(path: string, bytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf;
  } finally {
    closeSync(fd);
  }
}
