import { test } from "node:test";
import assert from "node:assert/strict";
import { limitedLog } from "./log_limiter.js";

test("a flood of lines is cut to the budget per window and the rest counted", () => {
  let t = 0;
  const out: string[] = [];
  const log = limitedLog((m) => out.push(m), { linesPerWindow: 3, windowMs: 1000, now: () => t });
  for (let i = 0; i < 1000; i++) log(`line ${i}`);
  assert.deepEqual(out, ["line 0", "line 1", "line 2"]);
  assert.equal(log.suppressed, 997);
  t = 1000;
  log("next window");
  assert.deepEqual(out.slice(3), ["997 more messages like these suppressed (at most 3 per 1 s)", "next window"]);
});

test("flush reports what was suppressed once, and long guest-made lines are cut", () => {
  const out: string[] = [];
  const log = limitedLog((m) => out.push(m), { linesPerWindow: 1, maxLineChars: 10, now: () => 0 });
  log("x".repeat(25));
  log("dropped");
  log.flush();
  log.flush();
  assert.deepEqual(out, ["xxxxxxxxxx… (15 more characters)", "1 more message like these suppressed (at most 1 per 1 s)"]);
});
