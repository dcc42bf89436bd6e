// AMOs and LR/SC are atomic across threads: harts on two worker threads hammer the same words of
// the shared guest RAM, and every increment must survive. Plain aligned doubleword loads and
// stores are single-copy atomic: a reader on another thread never sees half of a store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { GuestRam } from "../seams/guest_ram.js";
import { Asm } from "./testing/asm.js";
import { AMO_ADD, AMO_LR, AMO_MAXU, AMO_SC } from "./atomics.js";
import { CSR_MSTATUS, MSTATUS_FS } from "./constants.js";

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

interface HartJob { hartId: number; pc: number; end: number; slowPathOnly?: boolean }

/** Runs one hart per job, each on its own worker thread over `ram`, until it reaches its `end`. */
async function runHarts(ram: GuestRam, jobs: HartJob[]): Promise<number[]> {
  const entry = new URL("./testing/atomic_worker.ts", import.meta.url).href;
  const boot = new URL("../vm/testing/ts_worker.mjs", import.meta.url);
  return Promise.all(jobs.map((job) =>
    new Promise<number>((resolve, reject) => {
      const w = new Worker(boot, { workerData: { entry, memory: ram.memory, base: BASE, size: ram.size, ...job } });
      w.once("message", (n: number) => void w.terminate().then(() => resolve(n)));
      w.once("error", reject);
    })));
}

test("amoadd.w, amoadd.d and lr.d/sc.d loops on two threads lose no increment", async () => {
  const ram = new GuestRam(BASE, 4 << 20);
  const { bytes, end } = program();
  ram.write(BASE, bytes);
  await runHarts(ram, [{ hartId: 1, pc: BASE, end }, { hartId: 2, pc: BASE, end }]);
  assert.equal(ram.readU32(COUNTERS), 2 * ITERATIONS, "amoadd.w");
  assert.equal(ram.readU64(COUNTERS + 8), 2 * ITERATIONS, "amoadd.d");
  assert.equal(ram.readU64(COUNTERS + 16), 2 * ITERATIONS, "lr.d/sc.d");
  assert.equal(ram.readU32(COUNTERS + 24), 2, "amomaxu.w");
});

// Doubleword tearing: the writer alternates 0 and -1 in one doubleword (sd, c.sd, fsd) until the
// reader is done; the reader loads it (ld, c.ld, fld) and counts values that are neither.
const SHARED = BASE + 0x20_0000;
const STOP = SHARED + 64;
const RESULTS = SHARED + 128; // [0] torn reads, [8] reads of -1
const ONES = SHARED + 256;
const READS = 400_000;

const cSd = (rs2: number, rs1: number): number => (7 << 13) | ((rs1 - 8) << 7) | ((rs2 - 8) << 2); // c.sd rs2', 0(rs1')
const cLd = (rd: number, rs1: number): number => (3 << 13) | ((rs1 - 8) << 7) | ((rd - 8) << 2); // c.ld rd', 0(rs1')
const fmvXD = (rd: number, fs: number): number => 0xe2000053 | (rd << 7) | (fs << 15);

function enableFpu(a: Asm): Asm {
  return a.li(14, MSTATUS_FS).csrrs(0, CSR_MSTATUS, 14);
}

function writerProgram(origin: number): { bytes: Uint8Array; end: number } {
  const a = new Asm(origin);
  enableFpu(a).li(9, SHARED).li(11, -1).li(12, 0).li(13, STOP);
  a.li(14, ONES).sd(11, 14, 0).fld(1, 14, 0).sd(0, 14, 0).fld(2, 14, 0);
  a.label("loop");
  a.sd(11, 9, 0).sd(12, 9, 0);
  a.half(cSd(11, 9)).half(cSd(12, 9));
  a.fsd(1, 9, 0).fsd(2, 9, 0);
  a.lw(14, 13, 0).beq(14, 0, "loop");
  const end = a.here;
  a.label("spin").jal(0, "spin");
  return { bytes: a.bytesOut(), end };
}

function readerProgram(origin: number): { bytes: Uint8Array; end: number } {
  const a = new Asm(origin);
  let checks = 0;
  // x15 is 0 or -1 when whole; anything else is a torn read (x21 counts those, x22 the -1s).
  const check = (): void => {
    const ok = `ok${checks}`, ones = `ones${checks++}`;
    a.beq(15, 0, ok).addi(16, 15, 1).beq(16, 0, ones).addi(21, 21, 1).jal(0, ok);
    a.label(ones).addi(22, 22, 1).label(ok);
  };
  enableFpu(a).li(9, SHARED).li(13, STOP).li(20, READS).li(21, 0).li(22, 0);
  a.label("wait").ld(15, 9, 0).beq(15, 0, "wait");
  a.label("loop");
  a.ld(15, 9, 0); check();
  a.half(cLd(15, 9)); check();
  a.fld(3, 9, 0).word(fmvXD(15, 3)); check();
  a.addi(20, 20, -1).bne(20, 0, "loop");
  a.li(14, RESULTS).sd(21, 14, 0).sd(22, 14, 8);
  a.li(14, 1).sw(14, 13, 0);
  const end = a.here;
  a.label("spin").jal(0, "spin");
  return { bytes: a.bytesOut(), end };
}

for (const slowPathOnly of [false, true]) {
  test(`aligned doubleword stores are never seen torn by another thread (${slowPathOnly ? "execSlow" : "execFast"})`, async () => {
    const ram = new GuestRam(BASE, 4 << 20);
    const writer = writerProgram(BASE);
    const reader = readerProgram(BASE + 0x1000);
    ram.write(BASE, writer.bytes);
    ram.write(BASE + 0x1000, reader.bytes);
    await runHarts(ram, [
      { hartId: 1, pc: BASE, end: writer.end, slowPathOnly },
      { hartId: 2, pc: BASE + 0x1000, end: reader.end, slowPathOnly },
    ]);
    const ones = ram.readU64(RESULTS + 8);
    assert.ok(ones > 0 && ones < 3 * READS, `the reader saw only one value (${ones} of ${3 * READS} were -1): the threads never overlapped`);
    assert.equal(ram.readU64(RESULTS), 0, "torn doubleword reads");
  });
}
