import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "../testing/asm.js";
import { encR } from "../encode.js";
import { MAX_BLOCK, fastLoopDeclines, planBlocks, type BlockShape } from "./block_scan.js";

/** A page of guest code at RAM offset 0 from `asm` (origin 0). */
function page(asm: Asm): Uint16Array {
  const u8 = new Uint8Array(4096);
  u8.set(asm.bytesOut());
  return new Uint16Array(u8.buffer);
}

/** How many times each page offset is compiled across `shapes`. */
function copies(shapes: BlockShape[]): Map<number, number> {
  const seen = new Map<number, number>();
  for (const s of shapes) {
    let at = s.start;
    for (let k = 0; k < s.jitLen; k++) {
      seen.set(at, (seen.get(at) ?? 0) + 1);
      at += s.lens[k]!;
    }
  }
  return seen;
}

// 0: a forward branch inside the block, 8/12 its fall-through path, 16 its target, a loop back to 4,
// then a call out of the page and its return site at 28.
const code = (): Asm => new Asm(0)
  .addi(5, 5, 1) // 0
  .label("head")
  .beq(5, 6, "skip") // 4
  .addi(7, 7, 1) // 8
  .addi(8, 8, 1) // 12
  .label("skip")
  .addi(9, 9, 1) // 16
  .bne(9, 10, "head") // 20
  .jal(1, 0x2000) // 24: out of the page
  .addi(11, 11, 1) // 28: the return site
  .jalr(0, 1, 0); // 32

test("a block's forward branch, fall-through and loop stay inside its function: each instruction is compiled once", () => {
  const shapes = planBlocks(page(code()), 0, [0], null, MAX_BLOCK);
  assert.deepEqual(shapes.map((s) => s.start), [0, 28], "the block and the call's return site; nothing at 4, 8 or 16");
  const [first] = shapes;
  assert.deepEqual([...first!.heads], [1], "the loop head at 4");
  assert.deepEqual([...first!.forward], [[1, 4]], "beq at 4 goes forward to instruction 4 (offset 16)");
  for (const [at, n] of copies(shapes)) assert.equal(n, 1, `offset ${at} compiled ${n} times`);
});

test("an offset the interpreter ran from inside a planned block is run by that block, not compiled again", () => {
  // 16 is inside the block from 0 (its forward target), 8 on its fall-through path.
  const shapes = planBlocks(page(code()), 0, [0, 16, 8], null, MAX_BLOCK);
  assert.deepEqual(shapes.map((s) => s.start), [0, 28]);
  for (const [at, n] of copies(shapes)) assert.equal(n, 1, `offset ${at} compiled ${n} times`);
});

test("a forward branch into a loop from before its head keeps its target's own block (wasm cannot jump into a loop)", () => {
  const asm = new Asm(0)
    .beq(5, 6, "inside") // 0: into the loop below
    .label("head")
    .addi(7, 7, 1) // 4
    .label("inside")
    .addi(8, 8, 1) // 8
    .bne(8, 9, "head") // 12
    .jalr(0, 1, 0); // 16
  const shapes = planBlocks(page(asm), 0, [0], null, MAX_BLOCK);
  const first = shapes.find((s) => s.start === 0)!;
  assert.equal(first.forward.size, 0);
  assert.ok(shapes.some((s) => s.start === 8), `blocks at ${shapes.map((s) => s.start).join(",")}`);
});

test("fastLoopDeclines names what only the full interpreter runs: SYSTEM and FP arithmetic, not loads, stores or ALU ops", () => {
  const a = new Asm(0)
    .csrrw(4, 0x140, 4) // 0: the trap vector's sscratch swap
    .sret() // 4
    .sfenceVma(10, 0) // 8
    .word(encR(0x53, 1, 7, 2, 3, 0x01)) // 12: fadd.d
    .word(0x0000_0043 | (1 << 7)) // 16: fmadd.s
    .addi(5, 5, 1) // 20
    .ld(6, 2, 8) // 24
    .fld(1, 2, 8) // 28
    .half(0x0505); // 32: c.addi
  const u16 = page(a);
  assert.deepEqual([0, 4, 8, 12, 16, 20, 24, 28, 32].map((off) => fastLoopDeclines(u16, off)), [true, true, true, true, true, false, false, false, false]);
});
