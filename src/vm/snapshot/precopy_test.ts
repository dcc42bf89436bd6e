import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { freezePages, mergePages, precopy, PrecopyCancelled } from "./precopy.js";

const BASE = 0x8000_0000;

/** A fake guest that writes `per100` pages (round robin over `span`) for every 100 pages the sink takes, at 1 ms per 100 pages. */
function setup(o: { per100: number; span: number }) {
  const ram = new GuestRam(BASE, 4 << 20);
  for (let p = 0; p < 600; p++) ram.u8[p * 4096 + 1] = 1;
  const copy = new Uint8Array(ram.size);
  let clock = 0;
  let next = 0;
  const throttles: Array<number | null> = [];
  let rate = o.per100;
  const guestWrites = (sent: number): void => {
    for (let i = 0; i < Math.ceil((rate * sent) / 100); i++) {
      const page = next++ % o.span;
      ram.writeU32(BASE + page * 4096 + 8, next);
    }
  };
  const send = async (pages: Uint32Array): Promise<void> => {
    for (const p of pages) copy.set(ram.u8.subarray(p * 4096, (p + 1) * 4096), p * 4096);
    clock += pages.length / 100;
    guestWrites(pages.length);
  };
  return {
    ram, copy, throttles,
    options: {
      ram, send, flushTlbs: async () => {}, now: () => clock,
      throttle: (cap: number | null) => { throttles.push(cap); if (cap !== null) rate = Math.floor((o.per100 * cap) / 100); },
    },
  };
}

test("pre-copy converges: rounds shrink to the downtime limit, and pending + the rest rebuild RAM exactly", async () => {
  const s = setup({ per100: 20, span: 300 });
  const { pending, progress } = await precopy({ ...s.options, downtimeLimitMs: 0.1, maxRounds: 30 });
  assert.ok(progress.rounds >= 2, `${progress.rounds} rounds`);
  assert.ok(progress.expectedDowntimeMs <= 0.1, JSON.stringify(progress));
  // The final step: the guest is stopped; send pending plus whatever it dirtied since.
  const last = mergePages(pending, s.ram.takeDirtyPages());
  for (const p of last) s.copy.set(s.ram.u8.subarray(p * 4096, (p + 1) * 4096), p * 4096);
  assert.deepEqual(s.copy, s.ram.u8.subarray(0, s.ram.size));
  assert.deepEqual(s.throttles, [], "a guest slower than the link is never paced");
});

test("a guest dirtying faster than the link is paced, lower each round, until it fits", async () => {
  const s = setup({ per100: 150, span: 1024 });
  const { progress } = await precopy({ ...s.options, downtimeLimitMs: 2, maxRounds: 20 });
  assert.ok(s.throttles.length >= 2, `throttled ${JSON.stringify(s.throttles)}`);
  for (let i = 1; i < s.throttles.length; i++) assert.ok(s.throttles[i]! < s.throttles[i - 1]!, "each step holds the vCPUs lower");
  assert.ok(progress.expectedDowntimeMs <= 2, JSON.stringify(progress));
});

test("a cancel stops the copy between batches", async () => {
  const s = setup({ per100: 100, span: 100 });
  let batches = 0;
  await assert.rejects(
    precopy({ ...s.options, send: async (p) => { batches++; await s.options.send(p); }, downtimeLimitMs: 0, maxRounds: 100, cancelled: () => batches >= 2 }),
    PrecopyCancelled,
  );
});

test("mergePages is the sorted union", () => {
  assert.deepEqual([...mergePages(Uint32Array.of(1, 4, 9), Uint32Array.of(0, 4, 10))], [0, 1, 4, 9, 10]);
  assert.deepEqual([...mergePages(Uint32Array.of(), Uint32Array.of(3))], [3]);
});

test("frozen pages keep what RAM held when they were frozen, runs of neighbours and strays alike", () => {
  const ram = new GuestRam(BASE, 1 << 20);
  const pages = Uint32Array.of(3, 4, 5, 9, 200);
  for (const p of pages) ram.writeU32(BASE + p * 4096 + 100, 0x1000 + p);
  const frozen = freezePages(ram, pages);
  for (const p of pages) ram.writeU32(BASE + p * 4096 + 100, 0xdead); // a device writes after the freeze
  assert.equal(frozen.data.length, pages.length * 4096);
  pages.forEach((p, i) => {
    const word = new DataView(frozen.data.buffer, frozen.data.byteOffset + i * 4096 + 100, 4).getUint32(0, true);
    assert.equal(word, 0x1000 + p, `page ${p}`);
  });
});
