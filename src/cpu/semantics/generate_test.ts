// The interpreter loops must be what the instruction table says: a hand edit of a generated case,
// or a table edit without `npm run gen:interpreter`, fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { expandBody, generateCases, LOOP_FILES, regenerate, type LoopKind } from "./generate.js";

for (const kind of ["fast", "slow"] as LoopKind[]) {
  test(`exec_${kind}.ts holds the cases generated from instructions.ts`, () => {
    const source = readFileSync(LOOP_FILES[kind], "utf8");
    assert.ok(regenerate(source, kind) === source, `exec_${kind}.ts is out of date: run "npm run gen:interpreter"`);
  });
}

test("markers expand per loop: the fast loop declines what the slow loop executes", () => {
  const body = "if (f3 === 7) $ILLEGAL;\n#slow\nslowOnly();\n#fast\nfastOnly();\n#end\nif (miss) $MISS;\n$BRANCH(imm);\nconst l = $NPC;";
  assert.deepEqual(expandBody(body, "fast"), ["if (f3 === 7) break loop;", "fastOnly();", "if (miss) break loop;", "npo = po + (imm);", "const l = (page + npo);"]);
  assert.deepEqual(expandBody(body, "slow"), [
    "if (f3 === 7) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }", "slowOnly();", "if (miss) break hit;", "npc = pc + (imm);", "const l = npc;",
  ]);
  assert.throws(() => expandBody("$TYPO;", "slow"), /Unknown marker/);
});

test("slow-only instructions have no case in the fast loop", () => {
  const fast = generateCases("fast"), slow = generateCases("slow");
  assert.match(slow, /case 28:/);
  assert.doesNotMatch(fast, /case 28:/);
});
