import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_BLOCK, planBlocks } from "./block_scan.js";
import { warmUpEmitter, warmUpPage } from "./emitter_warm_up.js";

test("the emitter's warm-up page is compiled whole: no instruction in it goes to the interpreter", () => {
  const p = warmUpPage();
  const shapes = planBlocks(p.u16, 0, [...p.work], p.have, MAX_BLOCK, p.tail);
  assert.ok(shapes.length >= 4, `${shapes.length} blocks`);
  for (const s of shapes) assert.equal(s.jitLen, s.interpLen, `the block at ${s.start} stops before an instruction the compiler does not do`);
  assert.ok(shapes.some((s) => s.start === 4094 && s.tail !== -1), "the instruction across the page end is compiled, with its guard");
});

test("the warm-up emits a valid module that links a block of an earlier module", () => {
  const wasm = warmUpEmitter(1, 1);
  assert.ok(WebAssembly.validate(wasm));
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(wasm)).map((i) => i.name);
  assert.ok(imports.some((n) => /^b0_\d+$/.test(n)), `imports: ${imports.join(", ")}`);
});
