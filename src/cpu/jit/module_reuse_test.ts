import { test } from "node:test";
import assert from "node:assert/strict";
import { ModuleReuse, REUSE_MAX } from "./module_reuse.js";
import type { ReplyPart } from "./compile_service.js";

const NONE: ReadonlySet<number> = new Set();
const EMPTY_MODULE = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
const part = (starts: number[], first = 0): ReplyPart => ({ id: 7, slot: 3, starts, linked: [], bytes: 100, first });

function ramWithCode(): Int32Array {
  const ram = new Int32Array(4 * 1024);
  for (let i = 0; i < ram.length; i++) ram[i] = i * 2654435761;
  return ram;
}

test("a kept module is found for the same page bytes and entries, with only the asked-for part carrying the request", () => {
  const ram = ramWithCode();
  const reuse = new ModuleReuse(ram);
  const pageOff = 4096;
  const parts = [part([0, 0x20], 0), part([0x10, 0x40, 0x80], 2)];
  reuse.keep(pageOff, reuse.copy(pageOff), 0x1234, EMPTY_MODULE, parts, 1);
  const found = reuse.find(pageOff, 0x1234, [0x40, 0x10], NONE, 99, 5);
  assert.ok(found);
  assert.equal(found.module, EMPTY_MODULE);
  assert.deepEqual(found.parts.map((p) => [p.id, p.slot, p.first]), [[-1, -1, 0], [99, 5, 2]], "the other part is installed by none");
});

test("nothing is reused when the page's bytes differ or the module has a block at none of the entries; the most entries, then the tail, choose", () => {
  const ram = ramWithCode();
  const reuse = new ModuleReuse(ram);
  const other = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
  reuse.keep(0, reuse.copy(0), 5, EMPTY_MODULE, [part([0, 8])], 0);
  reuse.keep(0, reuse.copy(0), 6, other, [part([0, 16])], 0);
  assert.equal(reuse.find(0, 5, [12], NONE, 1, 1), null, "no block at the entry");
  assert.equal(reuse.find(0, 5, [0, 12], NONE, 1, 1)?.module, EMPTY_MODULE, "one entry of two, the tail breaking the tie");
  assert.equal(reuse.find(0, 6, [0, 12], NONE, 1, 1)?.module, other);
  assert.equal(reuse.find(0, 5, [0, 16], NONE, 1, 1)?.module, other, "two entries beat the tail");
  assert.equal(reuse.find(4096, 5, [0], NONE, 1, 1), null, "another page");
  ram[1023] ^= 1; // the page's last word changed
  assert.equal(reuse.find(0, 5, [0], NONE, 1, 1), null, "other bytes");
  ram[1023] ^= 1; // and back: the same bytes again
  assert.ok(reuse.find(0, 5, [0], NONE, 1, 1));
});

test("a module of missed entries is reused only by a requester with blocks at every offset it links to, the newest first", () => {
  const ram = ramWithCode();
  const reuse = new ModuleReuse(ram);
  reuse.keep(0, reuse.copy(0), 0, EMPTY_MODULE, [part([0])], 0);
  const links: ReplyPart = { ...part([0x40]), linked: [0] };
  const second = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
  reuse.keep(0, reuse.copy(0), 0, second, [links], 0);
  assert.equal(reuse.find(0, 0, [0x40], NONE, 1, 1), null, "no block at 0 to link to");
  assert.equal(reuse.find(0, 0, [0x40], new Set([0]), 1, 1)?.module, second);
  assert.equal(reuse.find(0, 0, [0], NONE, 1, 1)?.module, EMPTY_MODULE, "the first compile's, for a thread without blocks there");
  ram[5] ^= 1;
  reuse.keep(0, reuse.copy(0), 0, second, [part([8])], 0);
  assert.equal(reuse.find(0, 0, [0], NONE, 1, 1), null, "new bytes: the modules of the old ones are gone");
  assert.ok(reuse.find(0, 0, [8], NONE, 1, 1));
});

test("the kept modules are bounded: the oldest go first", () => {
  const ram = new Int32Array((REUSE_MAX + 2) * 1024);
  const reuse = new ModuleReuse(ram);
  for (let p = 0; p <= REUSE_MAX; p++) reuse.keep(p * 4096, reuse.copy(p * 4096), 0, EMPTY_MODULE, [part([0])], 0);
  assert.equal(reuse.find(0, 0, [0], NONE, 1, 1), null, "the first kept is gone");
  assert.ok(reuse.find(REUSE_MAX * 4096, 0, [0], NONE, 1, 1));
  assert.ok(reuse.find(4096, 0, [0], NONE, 1, 1));
});
