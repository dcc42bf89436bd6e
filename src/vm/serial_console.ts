// The serial console as the VMM sees it: what the guest wrote during a slice (UART or SBI
// console) is collected and handed out after it, to listeners, the --console-log file and a
// tail kept for error reports; input waits in a bounded queue until the UART's FIFO has room.

import { closeSync, openSync, writeSync } from "node:fs";
import { ConfigError } from "./config.js";

/** Console input the host may queue ahead of the guest's UART FIFO; console-write reports what fit. */
export const CONSOLE_INPUT_QUEUE_BYTES = 1 << 20;
const SERIAL_TAIL_BYTES = 8192;

/** The receive side of the UART, as console input needs it. */
export interface SerialReceiver {
  receiveSpace(): number;
  /** Takes bytes into the FIFO; returns how many it took. */
  receive(bytes: Uint8Array): number;
}

export interface SerialConsoleOptions {
  /** Called after new output reached the tail, before it goes to the log and the listeners. */
  onNewText: (tail: string) => void;
  log: (msg: string) => void;
}

export class SerialConsole {
  private pending: number[] = [];
  private tailText = "";
  private logFd: number | null = null;
  private logPath: string | null = null;
  private readonly listeners = new Set<(d: Uint8Array) => void>();
  private readonly input: Uint8Array[] = [];
  private inputBytes = 0;

  constructor(private readonly o: SerialConsoleOptions) {}

  /** A byte the guest wrote; it goes out at the next flush. */
  put(b: number): void {
    this.pending.push(b);
  }

  putAll(bytes: Uint8Array): void {
    this.pending.push(...bytes);
  }

  /** The last few KiB of output, for error reports. */
  get tail(): string {
    return this.tailText;
  }

  /** Opens (creates or truncates) the console log, or says in one sentence why it cannot. */
  openLog(path: string): void {
    try {
      this.logFd = openSync(path, "w");
      this.logPath = path;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT" ? "its folder does not exist" :
        code === "EISDIR" ? "it is a directory" :
        code === "EACCES" || code === "EPERM" ? "permission denied" :
        (e as Error).message;
      throw new ConfigError(`Cannot write the console log "${path}": ${why}. Give --console-log a file in an existing, writable folder.`);
    }
  }

  closeLog(): void {
    if (this.logFd !== null) closeQuietly(this.logFd);
    this.logFd = null;
  }

  onOutput(listener: (data: Uint8Array) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Hands out what the guest wrote since the last flush. */
  flush(): void {
    if (this.pending.length === 0) return;
    const bytes = Uint8Array.from(this.pending);
    this.pending = [];
    const text = Buffer.from(bytes).toString("latin1");
    this.tailText = (this.tailText + text).slice(-SERIAL_TAIL_BYTES);
    this.o.onNewText(this.tailText);
    this.writeLog(bytes);
    for (const l of [...this.listeners]) l(bytes);
  }

  /** Queues console input (bounded); returns how many bytes were accepted. */
  queueInput(data: Uint8Array): number {
    const accepted = Math.min(data.length, CONSOLE_INPUT_QUEUE_BYTES - this.inputBytes);
    if (accepted > 0) {
      this.input.push(data.slice(0, accepted));
      this.inputBytes += accepted;
    }
    return accepted;
  }

  /** Moves queued input into the UART's FIFO as far as it has room. */
  feedInput(uart: SerialReceiver): void {
    while (this.input.length > 0 && uart.receiveSpace() > 0) {
      const head = this.input[0]!;
      const n = uart.receive(head.subarray(0, uart.receiveSpace()));
      this.inputBytes -= n;
      if (n === head.length) this.input.shift();
      else this.input[0] = head.subarray(n);
    }
  }

  /** Appends output to --console-log; a write error (disk full) ends the log, not the VM. */
  private writeLog(bytes: Uint8Array): void {
    const fd = this.logFd;
    if (fd === null) return;
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    } catch (e) {
      this.logFd = null;
      closeQuietly(fd);
      this.o.log(`stopped writing the console log "${this.logPath}": ${(e as Error).message}. The VM keeps running.`);
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed or never valid: nothing to release
  }
}
