// A bare-metal program given as --firmware (no kernel) runs in M-mode from the start of RAM,
// and the VM's exit status comes from the test device, as ISA test suites expect.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Asm } from "../src/cpu/testing/asm.js";
import { nodevisor } from "./helpers.js";

const TEST_DEVICE = 0x10_0000;
const UART = 0x1000_0000;

/** Prints `text` on the UART, then writes `finisher` to the test device. */
function program(text: string, finisher: number): Uint8Array {
  const a = new Asm(0x8000_0000);
  a.li(5, UART);
  for (const ch of Buffer.from(text)) {
    a.li(6, ch);
    a.sb(6, 5, 0);
  }
  a.li(5, TEST_DEVICE);
  a.li(6, finisher);
  a.sw(6, 5, 0);
  a.label("spin").jal(0, "spin");
  return a.bytesOut();
}

for (const [name, finisher, status] of [
  ["pass (0x5555) exits 0", 0x5555, 0],
  ["fail with code 5 (0x3333 | 5 << 16) exits 5", 0x3333 | (5 << 16), 5],
] as const) {
  test(`bare-metal firmware: ${name}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "nodevisor-fw-"));
    try {
      const fw = join(dir, "fw.bin");
      writeFileSync(fw, program("hello from M-mode\n", finisher));
      const r = await nodevisor(["run", "--firmware", fw], { timeoutMs: 60_000 });
      assert.equal(r.status, status, r.stderr);
      assert.equal(r.stdout, "hello from M-mode\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
