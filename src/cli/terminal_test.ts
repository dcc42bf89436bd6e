import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { attachTerminal } from "./terminal.js";

/** A fake TTY: attachTerminal only treats Ctrl-A as an escape on a real terminal. */
function fakeTty(): NodeJS.ReadStream & PassThrough {
  const s = new PassThrough() as unknown as NodeJS.ReadStream & PassThrough;
  Object.assign(s, { isTTY: true, setRawMode: () => s });
  return s;
}

test("Ctrl-A X quits, Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-C goes to the guest", async () => {
  const input = fakeTty();
  const sent: number[] = [];
  let quit = 0;
  const t = attachTerminal({ input, write: (d) => sent.push(...d), onQuit: () => quit++ });
  input.write(Buffer.from([0x61, 0x03, 0x01, 0x01, 0x62]));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [0x61, 0x03, 0x01, 0x62]);
  assert.equal(quit, 0);
  input.write(Buffer.from([0x01]));
  input.write(Buffer.from([0x78]));
  await new Promise((r) => setImmediate(r));
  assert.equal(quit, 1);
  t.detach();
});

test("without a terminal, Ctrl-A is passed through as data", async () => {
  const input = new PassThrough() as unknown as NodeJS.ReadStream & PassThrough;
  const sent: number[] = [];
  const t = attachTerminal({ input, write: (d) => sent.push(...d), onQuit: () => assert.fail("must not quit") });
  input.write(Buffer.from([0x01, 0x78]));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [0x01, 0x78]);
  t.detach();
});

test("a resize of the terminal reaches the guest with the new size, until detach", () => {
  const input = fakeTty();
  const output = Object.assign(new PassThrough(), { isTTY: true, rows: 24, columns: 80 }) as unknown as NodeJS.WriteStream;
  const sizes: Array<[number, number]> = [];
  const t = attachTerminal({ input, output, write: () => {}, onQuit: () => {}, onResize: (r, c) => sizes.push([r, c]) });
  Object.assign(output, { rows: 50, columns: 132 });
  output.emit("resize");
  t.detach();
  output.emit("resize");
  assert.deepEqual(sizes, [[50, 132]]);
});
