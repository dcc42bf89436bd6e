import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestRam, PAGE_ABSENT, PAGE_PRESENT } from "../../seams/guest_ram.js";
import { makeMachine, load, runTo, RAM_BASE } from "../../cpu/testing/machine.js";
import { Asm } from "../../cpu/testing/asm.js";
import { BackgroundPageLoader, lazyPagesFor } from "./lazy_pages.js";
import { RAM_AT, readSnapshotInfo, SnapshotError, writeSnapshotFile } from "./snapshot_file.js";

const BASE = RAM_BASE;

async function saved(dir: string, fill: (ram: GuestRam) => void, size = 4 << 20): Promise<string> {
  const ram = new GuestRam(BASE, size);
  fill(ram);
  const path = join(dir, "s.snap");
  await writeSnapshotFile(path, {}, ram);
  return path;
}

test("a lazily restored RAM loads a page when a device or a vCPU first touches it, and only then", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-lazy-"));
  try {
    const path = await saved(dir, (ram) => {
      ram.writeU32(BASE + 0x10_0000, 0xdeadbeef);
      ram.writeU32(BASE + 0x20_0000, 0x1234_5678);
      ram.writeU32(BASE + 0x30_0000, 7);
    });
    const m = makeMachine(4 << 20);
    const shared = lazyPagesFor(path, await readSnapshotInfo(path), m.ram);
    const state = new Int32Array(shared.state);
    const page = (addr: number) => (addr - BASE) / 4096;
    assert.equal(state[page(BASE + 0x10_0000)], PAGE_ABSENT);
    assert.equal(m.ram.readU32(BASE + 0x10_0000), 0xdeadbeef, "a device read brings the page in");
    assert.equal(state[page(BASE + 0x10_0000)], PAGE_PRESENT);
    assert.equal(state[page(BASE + 0x20_0000)], PAGE_ABSENT, "untouched pages stay in the file");
    // A vCPU load from the page: the TLB fill brings it in.
    const a = new Asm(BASE);
    a.li(20, BASE + 0x20_0000).load(2, 5, 20, 0);
    const end = a.here;
    m.ram.lazyState = null; // put the program in place without loading anything
    load(m, a);
    m.ram.lazyState = state;
    runTo(m, end);
    assert.equal(m.hart.getX(5), 0x1234_5678n);
    assert.equal(state[page(BASE + 0x30_0000)], PAGE_ABSENT);
    // The rest comes in the background.
    const loader = new BackgroundPageLoader(m.ram, shared, (e) => assert.fail(e));
    loader.start();
    while (m.ram.lazyState !== null) await new Promise((r) => setImmediate(r));
    assert.equal(m.ram.readU32(BASE + 0x30_0000), 7);
    assert.ok(state.every((s) => s === PAGE_PRESENT));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a damaged page is refused with a sentence when it is touched", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-lazy-"));
  try {
    const path = await saved(dir, (ram) => ram.writeU32(BASE + 5 * 4096, 1));
    const b = readFileSync(path);
    b[RAM_AT + 5 * 4096 + 100] ^= 0x40;
    writeFileSync(path, b);
    const ram = new GuestRam(BASE, 4 << 20);
    lazyPagesFor(path, await readSnapshotInfo(path), ram);
    assert.equal(ram.readU32(BASE), 0, "a page the snapshot did not store is zero, with no read");
    assert.throws(() => ram.readU32(BASE + 5 * 4096), (e: Error) => e instanceof SnapshotError && /RAM page 5 does not match its checksum/.test(e.message));
    const info = await readSnapshotInfo(path);
    assert.throws(() => lazyPagesFor(path, info, new GuestRam(BASE, 1 << 20)), /holds 4 MiB of RAM for a VM of 1 MiB/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
