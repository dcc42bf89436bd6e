// The JIT tier on the real guest: Debian's kernel boots, busybox runs a shell loop hot enough to
// be compiled, and the answers are the interpreter's (the loop's value is computed here).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { nodevisor, ensureTestImage } from "./helpers.js";

before(ensureTestImage, { timeout: 600_000 });

const LOOP = "i=0; s=0; while [ $i -lt 4000 ]; do s=$(( (s * 31 + i) % 1000003 )); i=$((i+1)); done; echo $s";

function expected(): number {
  let s = 0;
  for (let i = 0; i < 4000; i++) s = (s * 31 + i) % 1000003;
  return s;
}

test("with --cpu-tier jit the default image boots, runs a hot shell loop compiled, and gets the interpreter's answers", async () => {
  const r = await nodevisor(["run", "--cpu-tier", "jit", "--", "sh", "-c", `uname -m; ${LOOP}`], {
    env: { NODEVISOR_JIT_DEBUG: "1" },
    timeoutMs: 600_000,
  });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  assert.equal(r.stdout, `riscv64\n${expected()}\n`);
  const m = /^jit: (\{.*\})$/m.exec(r.stderr);
  assert.ok(m, `no JIT figures on stderr: ${r.stderr.slice(-2000)}`);
  const jit = JSON.parse(m[1]!) as { compiles: number; instructionsCompiled: number; compiledShare: number };
  assert.ok(jit.compiles > 0 && jit.instructionsCompiled > 10_000_000, `the guest ran compiled code (${m[1]})`);
});

test("--cpu-tier refuses an unknown tier with a sentence", async () => {
  const r = await nodevisor(["run", "--cpu-tier", "turbo", "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CPU tier "turbo": choose interp or jit/);
});
