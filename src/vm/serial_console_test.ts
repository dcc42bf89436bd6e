import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONSOLE_INPUT_QUEUE_BYTES, SerialConsole, type SerialReceiver } from "./serial_console.js";

/** A UART whose receive FIFO holds `room` bytes until drained. */
function fakeUart(room: number): SerialReceiver & { got: number[] } {
  const got: number[] = [];
  return {
    got,
    receiveSpace: () => room - got.length,
    receive: (b) => {
      const n = Math.min(b.length, room - got.length);
      for (let i = 0; i < n; i++) got.push(b[i]!);
      return n;
    },
  };
}

test("output goes out at a flush: to the tail hook first, then the log file and the listeners", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-serial-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const order: string[] = [];
  const serial = new SerialConsole({ onNewText: (tail) => order.push(`tail:${tail}`), log: () => {} });
  serial.openLog(join(dir, "console.log"));
  const stop = serial.onOutput((d) => order.push(`out:${Buffer.from(d).toString("latin1")}`));
  serial.put(0x68);
  serial.putAll(new TextEncoder().encode("i\n"));
  assert.deepEqual(order, [], "nothing before the flush");
  serial.flush();
  serial.flush(); // nothing new: nothing happens
  assert.deepEqual(order, ["tail:hi\n", "out:hi\n"]);
  stop();
  serial.putAll(new TextEncoder().encode("x".repeat(10_000)));
  serial.flush();
  assert.equal(serial.tail.length, 8192, "the tail keeps the last 8 KiB");
  serial.closeLog();
  assert.equal(readFileSync(join(dir, "console.log"), "latin1"), "hi\n" + "x".repeat(10_000));
  assert.throws(() => serial.openLog(join(dir, "missing", "c.log")), /Cannot write the console log ".*c\.log": its folder does not exist\. Give --console-log/);
});

test("console input is queued up to its bound and fed to the UART as its FIFO makes room", () => {
  const serial = new SerialConsole({ onNewText: () => {}, log: () => {} });
  assert.equal(serial.queueInput(new Uint8Array(CONSOLE_INPUT_QUEUE_BYTES - 3).fill(1)), CONSOLE_INPUT_QUEUE_BYTES - 3);
  assert.equal(serial.queueInput(new Uint8Array([2, 3, 4, 5, 6])), 3, "only what fits the queue is accepted");
  const uart = fakeUart(CONSOLE_INPUT_QUEUE_BYTES - 1);
  serial.feedInput(uart);
  assert.equal(uart.got.length, CONSOLE_INPUT_QUEUE_BYTES - 1);
  assert.equal(serial.queueInput(new Uint8Array([7])), 1, "the FIFO took bytes, so the queue has room again");
  const next = fakeUart(16);
  serial.feedInput(next);
  assert.deepEqual(uart.got.slice(-2), [2, 3]);
  assert.deepEqual(next.got, [4, 7], "the rest follows in order");
});
