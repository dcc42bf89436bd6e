import { test } from "node:test";
import assert from "node:assert/strict";
import { VmGenId } from "./vmgenid.js";

const readId = (d: VmGenId): string =>
  [0, 4, 8, 12].map((o) => d.read(o, 4).toString(16).padStart(8, "0")).join("");

test("a new generation changes the ID and raises the interrupt until the guest reads the ID", () => {
  const levels: boolean[] = [];
  const d = new VmGenId({ set: (l) => levels.push(l) });
  const first = readId(d);
  assert.equal(first, readId(d), "the ID is stable between generations");
  d.newGeneration();
  assert.deepEqual(levels, [true]);
  const second = readId(d);
  assert.notEqual(second, first);
  assert.deepEqual(levels, [true, false], "reading the new ID lowers the line");
  assert.equal(d.read(16, 4), 0, "beyond the 16 bytes reads zero");
});

test("save and restore keep the ID and a notification the guest has not read", () => {
  const a = new VmGenId({ set: () => {} });
  a.newGeneration();
  const levels: boolean[] = [];
  const b = new VmGenId({ set: (l) => levels.push(l) });
  b.restore(a.save());
  assert.deepEqual(levels, [true]);
  assert.equal(readId(b), readId(a));
});
