// The goldfish RTC's alarm reaches a real guest: a program arms it through /dev/rtc0 and blocks
// until its interrupt, which only the VMM's device timers can raise (no guest access polls it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodevisor, ensureTestImage } from "./helpers.js";
import { buildGuestProgramDisk, runFromDisk } from "./testing/guest_programs.js";

test("a guest's RTC alarm fires and wakes the program waiting for it", async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-rtc-"));
  try {
    const disk = buildGuestProgramDisk("rtc_alarm", dir);
    const r = await nodevisor(["run", "--disk", `${disk},readonly`, "--", "sh", "-c", runFromDisk("/dev/vda")], { timeoutMs: 600_000 });
    assert.match(r.stdout, /alarm fired/, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
