import { test } from "node:test";
import assert from "node:assert/strict";
import { TouchedMemoryProbe, touchedBytesFromSmaps } from "./memory_touched.js";

const SMAPS = `55d0c0000000-55d0c0100000 r-xp 00000000 08:01 123 /usr/bin/node
Size:               1024 kB
Rss:                 900 kB
7f2272fbf000-7f2282fc0000 rw-p 00000000 00:00 0
Size:             262148 kB
KernelPageSize:        4 kB
Rss:               10240 kB
7f2282fff000-7f22a2e00000 ---p 00000000 00:00 0
Size:             522244 kB
Rss:                   0 kB
`;

test("the guest RAM mapping is found by its size and its resident size is reported", () => {
  assert.equal(touchedBytesFromSmaps(SMAPS, 256 * 2 ** 20), 10240 * 1024);
  assert.equal(touchedBytesFromSmaps(SMAPS, 128 * 2 ** 20), 10240 * 1024, "the smallest large-enough mapping, even when merged");
  assert.equal(touchedBytesFromSmaps(SMAPS, 1024 * 2 ** 20), null);
});

test("a real SharedArrayBuffer shows the pages written to it", () => {
  const size = 64 * 2 ** 20;
  const ram = new Uint8Array(new SharedArrayBuffer(size));
  for (let i = 0; i < 8 * 2 ** 20; i += 4096) ram[i] = 1;
  const touched = new TouchedMemoryProbe(size).bytes();
  assert.ok(touched !== null && touched >= 8 * 2 ** 20 && touched < 16 * 2 ** 20, `touched ${touched}`);
});

test("the probe samples at most once a second", () => {
  let reads = 0;
  const probe = new TouchedMemoryProbe(256 * 2 ** 20, () => (reads++, SMAPS));
  probe.bytes(0);
  probe.bytes(500);
  assert.equal(reads, 1);
  probe.bytes(1500);
  assert.equal(reads, 2);
});

test("an expensive read spaces the samples out, so the probe stays under 0.1% of a core", () => {
  let reads = 0;
  let clock = 0;
  // Each read takes 8 ms of the probe's clock: the next one waits 8 s.
  const probe = new TouchedMemoryProbe(256 * 2 ** 20, () => ((reads++, (clock += 8)), SMAPS), () => clock);
  assert.equal(probe.bytes(0), 10240 * 1024);
  probe.bytes(1500);
  probe.bytes(7900);
  assert.equal(reads, 1);
  probe.bytes(8000);
  assert.equal(reads, 2);
});

test("however slow a read, the figure is never more than 10 s old", () => {
  let reads = 0;
  let clock = 0;
  const probe = new TouchedMemoryProbe(256 * 2 ** 20, () => ((reads++, (clock += 50)), SMAPS), () => clock);
  probe.bytes(0);
  probe.bytes(9999);
  assert.equal(reads, 1);
  probe.bytes(10_000);
  assert.equal(reads, 2);
});
