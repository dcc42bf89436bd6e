import { test } from "node:test";
import assert from "node:assert/strict";
import { KeyedMutex } from "./keyed_mutex.js";

test("calls on one key run in order, calls on other keys do not wait, and a failure does not block the next", async () => {
  const m = new KeyedMutex();
  const log: string[] = [];
  let releaseA!: () => void;
  const a1 = m.run("a", () => new Promise<void>((r) => (releaseA = () => (log.push("a1"), r()))));
  const a2 = m.run("a", async () => void log.push("a2"));
  const a3 = m.run("a", async () => {
    throw new Error("boom");
  });
  const a4 = m.run("a", async () => void log.push("a4"));
  await m.run("b", async () => void log.push("b1"));
  assert.deepEqual(log, ["b1"]);
  releaseA();
  await Promise.all([a1, a2, a4, assert.rejects(a3, /boom/)]);
  assert.deepEqual(log, ["b1", "a1", "a2", "a4"]);
});
