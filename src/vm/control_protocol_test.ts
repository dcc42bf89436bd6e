import { test } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter, decodeBase64, parseJsonLine } from "./control_protocol.js";

const text = (lines: Buffer[]): string[] => lines.map((l) => l.toString("utf8"));

test("LineSplitter joins lines split across chunks and keeps multi-byte characters whole", () => {
  const s = new LineSplitter(100);
  const bytes = Buffer.from('{"a":"é"}\n{"b":1}\n{"c"');
  const cut = bytes.indexOf(Buffer.from("é")) + 1; // between the two bytes of é
  assert.deepEqual(text(s.push(bytes.subarray(0, cut)).lines), []);
  const r = s.push(bytes.subarray(cut));
  assert.deepEqual(text(r.lines), ['{"a":"é"}', '{"b":1}']);
  assert.equal(r.overflow, false);
  assert.deepEqual(text(s.push(Buffer.from(":2}\n")).lines), ['{"c":2}']);
});

test("LineSplitter accepts a line of exactly the limit and refuses one byte more", () => {
  const ok = new LineSplitter(8);
  assert.deepEqual(text(ok.push(Buffer.from("12345678\n")).lines), ["12345678"]);
  const pieces = new LineSplitter(8);
  assert.equal(pieces.push(Buffer.from("1234")).overflow, false);
  assert.equal(pieces.push(Buffer.from("5678")).overflow, false);
  assert.equal(pieces.push(Buffer.from("9")).overflow, true);
  // Once overflowed, the stream stays unusable.
  assert.deepEqual(pieces.push(Buffer.from("\nx\n")), { lines: [], overflow: true });
});

test("LineSplitter returns the lines before an oversize one in the same chunk", () => {
  const s = new LineSplitter(4);
  const r = s.push(Buffer.from("ab\ncdefgh\nij\n"));
  assert.deepEqual(text(r.lines), ["ab"]);
  assert.equal(r.overflow, true);
});

test("parseJsonLine rejects invalid UTF-8 and invalid JSON with sentences, tolerates \\r", () => {
  assert.deepEqual(parseJsonLine(Buffer.from('{"x":1}\r')), { ok: true, value: { x: 1 } });
  const bad = parseJsonLine(Buffer.from([0x7b, 0xff, 0x7d]));
  assert.equal(bad.ok, false);
  assert.match((bad as { reason: string }).reason, /not valid UTF-8/);
  const notJson = parseJsonLine(Buffer.from("{nope"));
  assert.equal(notJson.ok, false);
  assert.match((notJson as { reason: string }).reason, /not valid JSON/);
});

test("decodeBase64 is strict", () => {
  assert.deepEqual(decodeBase64("aGk="), new Uint8Array([0x68, 0x69]));
  assert.deepEqual(decodeBase64(""), new Uint8Array(0));
  assert.equal(decodeBase64("aGk"), null);
  assert.equal(decodeBase64("a!k="), null);
  assert.equal(decodeBase64("aG=k"), null);
});
