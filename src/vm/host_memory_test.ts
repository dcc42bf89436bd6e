import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { adviseHugePages, hostMemoryFor, tuneHostAllocator } from "./host_memory.js";

const rssAnonKiB = (): number => Number(/RssAnon:\s+(\d+)/.exec(readFileSync("/proc/self/status", "latin1"))?.[1]);

test("released pages of a shared WebAssembly.Memory read as zeros and leave the process's resident memory", { skip: process.platform !== "linux" }, () => {
  const mib = 1 << 20;
  const pages = (256 * mib) / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const u8 = new Uint8Array(memory.buffer);
  const host = hostMemoryFor(memory.buffer);
  assert.equal(host.mode, "madvise", host.reason ?? "");
  for (let i = 0; i < 128 * mib; i += 4096) u8[i] = 0xa5;
  const touched = rssAnonKiB();
  assert.equal(host.release(0, 96 * mib), true);
  const after = rssAnonKiB();
  assert.ok(touched - after > 80 * 1024, `RssAnon fell only from ${touched} to ${after} KiB`);
  assert.equal(u8[0], 0);
  assert.equal(u8[96 * mib - 4096], 0);
  assert.equal(u8[96 * mib], 0xa5, "the page after the range is untouched");
  assert.equal(host.release(4097, 4096), false, "unaligned ranges are refused");
  assert.equal(host.release(255 * mib, 2 * mib), false, "ranges past the memory are refused");
});

test("NODEVISOR_RECLAIM=accounting only counts, and says why", () => {
  process.env.NODEVISOR_RECLAIM = "accounting";
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    new Uint8Array(memory.buffer)[0] = 1;
    const host = hostMemoryFor(memory.buffer);
    assert.equal(host.mode, "accounting");
    assert.match(host.reason!, /NODEVISOR_RECLAIM/);
    assert.equal(host.release(0, 4096), false);
    assert.equal(new Uint8Array(memory.buffer)[0], 1);
  } finally {
    delete process.env.NODEVISOR_RECLAIM;
  }
});

/** The host's THP policy: "always", "madvise" or "never" (null where it cannot be read). */
function thpPolicy(): string | null {
  try {
    return /\[(\w+)\]/.exec(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "latin1"))?.[1] ?? null;
  } catch {
    return null;
  }
}

const anonHugeKiB = (): number => Number(/AnonHugePages:\s+(\d+)/.exec(readFileSync("/proc/self/smaps_rollup", "latin1"))?.[1]);

test("guest RAM advised for huge pages is backed by them, and a released 4 KiB page in one still reads as zeros", { skip: thpPolicy() === null || thpPolicy() === "never" ? "this host has no transparent huge pages" : false }, () => {
  const mib = 1 << 20;
  const pages = (64 * mib) / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const before = anonHugeKiB();
  assert.equal(adviseHugePages(memory.buffer), true);
  const u8 = new Uint8Array(memory.buffer);
  for (let i = 0; i < 32 * mib; i += 4096) u8[i] = 0x5a;
  const after = anonHugeKiB();
  assert.ok(after - before >= 8 * 1024, `AnonHugePages rose only from ${before} to ${after} KiB after touching 32 MiB`);
  const host = hostMemoryFor(memory.buffer);
  assert.equal(host.release(4 * mib, 4096), true);
  assert.equal(u8[4 * mib], 0, "the released page reads as zeros");
  assert.equal(u8[4 * mib + 4096], 0x5a, "its neighbours in the same huge page keep their data");
});

test("NODEVISOR_HUGE_PAGES=0 gives no advice", () => {
  process.env.NODEVISOR_HUGE_PAGES = "0";
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    assert.equal(adviseHugePages(memory.buffer), false);
  } finally {
    delete process.env.NODEVISOR_HUGE_PAGES;
  }
});

test("the VMM's malloc takes a fixed mmap threshold and trim threshold on glibc", { skip: process.platform !== "linux" || !(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ? "not glibc on Linux" : false }, () => {
  assert.equal(tuneHostAllocator(), true);
});
