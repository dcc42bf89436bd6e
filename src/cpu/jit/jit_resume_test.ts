// Where a run stops inside a compiled block (its budget ran out, or an instruction went to the
// interpreter), the next run continues that block: it is no missed entry, and no block is compiled
// there. Before, every slice end in long straight-line code (the kernel's sha256 rounds) became a
// block start of its own: ~500 blocks and 25 modules for one page of a boot's `modprobe ext4`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache } from "./block_cache.js";
import { MAX_BLOCK } from "./block_scan.js";

const RAM_BASE = 0x8000_0000;
/** Straight-line instructions in the loop's body: several blocks of MAX_BLOCK. */
const BODY = 5 * MAX_BLOCK + 17;

function hart(cache: BlockCache | null, ram: GuestRam): Hart {
  const h = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (cache !== null) h.useJit(cache);
  return h;
}

/** A counted loop around BODY instructions of arithmetic that mixes x10..x15, like a hash's rounds. */
function program(iterations: number): { a: Asm; done: number } {
  const a = new Asm(RAM_BASE);
  a.li(5, iterations).li(10, 1).li(11, 2).li(12, 3).li(13, 4).li(14, 5).li(15, 6);
  a.label("round");
  for (let i = 0; i < BODY; i++) {
    const rd = 10 + (i % 6), rs = 10 + ((i + 1) % 6);
    if (i % 3 === 0) a.add(rd, rd, rs);
    else if (i % 3 === 1) a.op("xor", rd, rd, rs);
    else a.slli(rd, rs, (i % 7) + 1);
  }
  a.addi(5, 5, -1).bne(5, 0, "round");
  const done = a.here;
  a.label("done").jal(0, "done");
  return { a, done };
}

/** Runs the program on a JIT hart in slices of `sizes` (cycled) until it reaches its end; the hart and its cache. */
function runInSlices(iterations: number, sizes: number[]): { h: Hart; cache: BlockCache; done: number } {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const { a, done } = program(iterations);
  ram.write(a.origin, a.bytesOut());
  const cache = new BlockCache(ram, { threshold: 2, background: false });
  const h = hart(cache, ram);
  h.setPc(RAM_BASE);
  for (let i = 0; h.getPc() !== done; i++) {
    h.run(sizes[i % sizes.length]!);
    if (i > 10_000_000) throw new Error("the program did not finish");
  }
  return { h, cache, done };
}

test("slices ending anywhere in long straight-line code continue its blocks: no block per slice end, and the interpreter's result", () => {
  const iterations = 6000;
  // Slice sizes prime to the loop's length, so that the budget runs out at every instruction of the body over the run.
  const { h, cache } = runInSlices(iterations, [1009, 97, 4099, 331]);
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const { a } = program(iterations);
  ram.write(a.origin, a.bytesOut());
  const interp = hart(null, ram);
  interp.setPc(RAM_BASE);
  interp.run(Number(h.instret));
  for (let r = 1; r < 32; r++) assert.equal(h.getX(r), interp.getX(r), `x${r}`);
  assert.equal(h.instret, interp.instret);
  const s = cache.stats;
  // The page's first compile plans every block the loop needs; slice ends add none (before: 3 more modules, 39 blocks in all).
  assert.equal(s.compiledTotal, 1, `modules compiled: ${s.compiledTotal}, blocks ${s.blocks}`);
  assert.ok(s.missedEntries <= 2, `missed entries: ${s.missedEntries} (slice ends are continuations, not missed entries)`);
  assert.ok(s.instructionsCompiled / Number(h.instret) > 0.9, `share run compiled: ${(s.instructionsCompiled / Number(h.instret)).toFixed(3)}`);
});

test("a loop inside a block, entered mid-way by a resumed run, still gets compiled: a continuation is bounded", () => {
  // The loop's head is inside the block that starts at the program's start (a wasm loop there), so no block starts at it.
  const a = new Asm(RAM_BASE);
  a.li(5, 100_000).li(6, 0);
  a.label("loop").addi(6, 6, 1).bne(6, 5, "loop");
  const done = a.here;
  a.label("done").jal(0, "done");
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  ram.write(a.origin, a.bytesOut());
  const cache = new BlockCache(ram, { threshold: 2, background: false });
  const h = hart(cache, ram);
  h.setPc(RAM_BASE);
  // Runs of one instruction: each stops where the next resumes, inside the loop once the page has its block.
  for (let i = 0; i < 200; i++) h.run(1);
  assert.ok(cache.stats.blocks > 0, "the page was compiled during the short runs");
  const before = cache.stats.instructionsCompiled;
  while (h.getPc() !== done) h.run(1_000_000);
  const share = (cache.stats.instructionsCompiled - before) / (Number(h.instret) - 200);
  assert.ok(share > 0.9, `share of the loop run compiled: ${share.toFixed(3)} (a continuation without a bound interprets it all)`);
  assert.equal(h.getX(6), 100_000n);
});
