// The host's reader of the status console (hvc2), where /init reports the command's exit status
// ("exit N") and that an interactive guest listens for requests. The protocol is defined with
// /init in src/image/init_script.ts.

import { LISTENING_LINE, parseExitLine } from "../image/init_script.js";

/** Longest line kept from the status console; /init's lines there are a few bytes. */
const STATUS_LINE_MAX = 64;

export class StatusConsoleReader {
  /** The command's exit status as /init reported it, if it did. */
  commandStatus: number | null = null;
  /** The interactive guest listens for requests (console size, powerdown, network renewal). */
  guestListening = false;
  private readonly line = new Uint8Array(STATUS_LINE_MAX);
  private length = 0;

  constructor(private readonly onListening: () => void) {}

  /** Parses output a line at a time, keeping at most one short line (the guest may flood it). */
  read(d: Uint8Array): void {
    const line = this.line;
    let len = this.length;
    for (let i = 0; i < d.length && this.commandStatus === null; i++) {
      const b = d[i]!;
      if (b === 10) {
        // Only lines that start like "exit N" are worth decoding.
        if (len > 0 && line[0] === 0x65) this.commandStatus = parseExitLine(`${Buffer.from(line.subarray(0, len)).toString("latin1")}\n`);
        else if (!this.guestListening && len > 0 && Buffer.from(line.subarray(0, len)).toString("latin1").replace(/\r$/, "") === LISTENING_LINE) {
          this.guestListening = true;
          this.onListening();
        }
        len = 0;
      } else if (len >= 0) {
        if (len === STATUS_LINE_MAX) len = -1;
        else line[len++] = b;
      }
    }
    this.length = len;
  }
}
