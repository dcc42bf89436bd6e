import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteWriter, I32, I64, OP, buildModule, type FunctionBody } from "./wasm_module.js";

/** A function (i64, i32, i32) -> i32 returning param 2 + `k`, with `pad` no-op pairs (a body of any size) and locals in runs. */
function body(k: number, pad: number): FunctionBody {
  const w = new ByteWriter(16); // small: the body grows through several doublings
  for (let i = 0; i < pad; i++) w.byte(OP.i32Const).s32(i).byte(OP.drop);
  w.byte(OP.localGet).u32(2).byte(OP.i32Const).s32(k).byte(OP.i32Add);
  return { locals: [I64, I64, I32, I64, I32, I32], body: w };
}

function instantiate(wasm: Uint8Array<ArrayBuffer>, pages: number): Record<string, (a: bigint, b: number, c: number) => number> {
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const go = (): number => 0;
  return new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem, go } }).exports as never;
}

const spec = (functions: FunctionBody[]) => ({ params: [I64, I32, I32], results: [I32], functions, importFunctions: ["go"] });

test("buildModule: bodies past 64 KiB and 128-byte LEB128 boundaries, locals in runs, every function callable", () => {
  const fns = [body(1, 0), body(2, 40), body(3, 30_000), body(4, 5)];
  const wasm = buildModule(spec(fns), 1);
  assert.ok(WebAssembly.validate(wasm));
  const ex = instantiate(wasm, 1);
  for (let i = 0; i < fns.length; i++) assert.equal(ex[`f${i}`]!(0n, 0, 10), 11 + i);
});

test("buildModule reuses scratch writers: an earlier module's bytes do not change when the next is built", () => {
  const first = buildModule(spec([body(7, 100), body(8, 3)]), 1);
  const copy = first.slice();
  const second = buildModule(spec([body(9, 20_000)]), 1);
  assert.deepEqual(first, copy);
  assert.notDeepEqual(first, second);
  assert.equal(instantiate(first, 1).f1!(0n, 0, 1), 9);
  assert.equal(instantiate(second, 1).f0!(0n, 0, 1), 10);
});

test("buildModule with tableFunctions: one export, a table of the first functions in order (with or without an imported table)", () => {
  const fns = [body(1, 0), body(2, 3), body(3, 0)];
  for (const importTable of [false, true]) {
    const wasm = buildModule({ ...spec(fns), tableFunctions: 2, importTable }, 1);
    assert.ok(WebAssembly.validate(wasm));
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const tbl = new WebAssembly.Table({ element: "anyfunc", initial: 0 });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem, go: (): number => 0, tbl } }).exports;
    assert.deepEqual(Object.keys(ex), ["t"], "no export per function");
    const t = ex["t"] as WebAssembly.Table;
    assert.equal(t.length, 2, "the first two functions only");
    for (let i = 0; i < 2; i++) assert.equal((t.get(i) as (a: bigint, b: number, c: number) => number)(0n, 0, 10), 11 + i);
  }
});
