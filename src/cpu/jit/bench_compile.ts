// The compile thread's work without a guest: replays a NODEVISOR_JIT_DUMP record (compile_dump.ts)
// and prints, per round, the time planning the blocks (planBlocks), emitting the wasm
// (emitModules) and V8's compile of it (eager, as the compile thread's), with the modules and wasm
// bytes (every branch target: the record has no taken-transfer map, so it plans more blocks than
// the run did). The first round includes the warm-up of our code; later rounds are steady state. The
// emitted bytes are the same in every round (a change to the emitter that should not change its
// output can be checked by their count).
//   NODEVISOR_JIT_DUMP=/tmp/jit.dump npx nodevisor run -- true
//   node --import tsx src/cpu/jit/bench_compile.ts /tmp/jit.dump [ROUNDS]
import { setFlagsFromString } from "node:v8";
import { emitModules, profileMarks, type ModulePart } from "./compile_block.js";
import { planBlocks } from "./block_scan.js";
import { readDump } from "./compile_dump.js";

setFlagsFromString("--no-wasm-lazy-compilation");
const [file, roundsArg] = process.argv.slice(2);
if (!file) throw new Error("usage: node --import tsx src/cpu/jit/bench_compile.ts DUMP_FILE [ROUNDS]");
const recorded = readDump(file);
const u16 = new Uint16Array(Math.max(...recorded.map((m) => m.pages)) << 15);
for (let round = 0; round < Number(roundsArg ?? 3); round++) {
  let planMs = 0, emitMs = 0, compileMs = 0, bytes = 0, modules = 0;
  for (const m of recorded) {
    const t0 = performance.now();
    const parts: ModulePart[] = [];
    let blocks = 0;
    for (const r of m.load(u16)) {
      const marks = profileMarks(r);
      const shapes = planBlocks(u16, r.pageOff, r.work, r.have, r.maxBlocks ?? m.maxBlocks, r.tail, r.seeds ?? r.work.length);
      blocks += shapes.length;
      parts.push({ blocks: shapes, have: r.have, linked: [], marks });
    }
    const t1 = performance.now();
    planMs += t1 - t0;
    if (blocks === 0) continue;
    const { wasm } = emitModules(parts, m.pages);
    const t2 = performance.now();
    new WebAssembly.Module(wasm);
    compileMs += performance.now() - t2;
    emitMs += t2 - t1;
    bytes += wasm.length;
    modules++;
  }
  console.log(`round ${round}: ${modules} modules, ${(bytes / 2 ** 20).toFixed(1)} MiB of wasm (${bytes} bytes); plan ${planMs.toFixed(0)} ms, emit ${emitMs.toFixed(0)} ms, V8 compile ${compileMs.toFixed(0)} ms`);
}
