// `npm run gen:interpreter`: rewrites the generated region (decode, `switch`, pc advance) of the interpreter loops
// (src/cpu/exec_fast.ts, src/cpu/exec_slow.ts) from src/cpu/semantics/decode.ts and instructions.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { LOOP_FILES, regenerate, type LoopKind } from "../src/cpu/semantics/generate.js";

for (const kind of ["fast", "slow"] as LoopKind[]) {
  const file = LOOP_FILES[kind];
  const before = readFileSync(file, "utf8");
  const after = regenerate(before, kind);
  if (after !== before) writeFileSync(file, after);
  console.log(`${file.pathname}: ${after === before ? "up to date" : "regenerated"}`);
}
