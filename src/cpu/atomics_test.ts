// AMOs and LR/SC are atomic across threads: harts on two worker threads hammer the same words of
// the shared guest RAM, and every increment must survive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { GuestRam } from "../seams/guest_ram.js";
import { Asm } from "./test_asm.js";
import { AMO_ADD, AMO_LR, AMO_MAXU, AMO_SC } from "./atomics.js";

const BASE = 0x8000_0000;
const COUNTERS = BASE + 0x10_0000;
const ITERATIONS = 200_000;

/** Each iteration: amoadd.w, amoadd.d, an lr.d/sc.d increment loop, and amomaxu.w of the hart id. */
function program(): { bytes: Uint8Array; end: number } {
  const a = new Asm(BASE);
  a.li(5, COUNTERS).li(6, 1).li(7, ITERATIONS);
  a.label("loop");
  a.amo(AMO_ADD, 4, 0, 5, 6);
  a.addi(28, 5, 8).amo(AMO_ADD, 8, 0, 28, 6);
  a.addi(29, 5, 16);
  a.label("retry").amo(AMO_LR, 8, 30, 29, 0).addi(30, 30, 1).amo(AMO_SC, 8, 31, 29, 30).bne(31, 0, "retry");
  a.addi(28, 5, 24).amo(AMO_MAXU, 4, 0, 28, 10);
  a.addi(7, 7, -1).bne(7, 0, "loop");
  const end = a.here;
  a.label("spin").jal(0, "spin");
  return { bytes: a.bytesOut(), end };
}

test("amoadd.w, amoadd.d and lr.d/sc.d loops on two threads lose no increment", async () => {
  const ram = new GuestRam(BASE, 4 << 20);
  const { bytes, end } = program();
  ram.write(BASE, bytes);
  const entry = new URL("./testing/atomic_worker.ts", import.meta.url).href;
  const boot = new URL("../vm/testing/ts_worker.mjs", import.meta.url);
  const run = (hartId: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const w = new Worker(boot, { workerData: { entry, memory: ram.memory, base: BASE, size: ram.size, hartId, pc: BASE, end } });
      w.once("message", (n: number) => void w.terminate().then(() => resolve(n)));
      w.once("error", reject);
    });
  await Promise.all([run(1), run(2)]);
  assert.equal(ram.readU32(COUNTERS), 2 * ITERATIONS, "amoadd.w");
  assert.equal(ram.readU64(COUNTERS + 8), 2 * ITERATIONS, "amoadd.d");
  assert.equal(ram.readU64(COUNTERS + 16), 2 * ITERATIONS, "lr.d/sc.d");
  assert.equal(ram.readU32(COUNTERS + 24), 2, "amomaxu.w");
});
