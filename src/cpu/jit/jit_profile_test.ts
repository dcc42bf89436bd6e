import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache, PROFILE_EARLY, PROFILED_VISITS } from "./block_cache.js";
import { PREFETCH_RETRY } from "./profile_prefetch.js";
import { loadProfile, pageKey, PROFILE_MAX_AGE, profilePath, PROFILES_KEPT, saveProfile, type JitProfile } from "./jit_profile.js";

const RAM_BASE = 0x8000_0000;

test("a page's key follows its code: equal bytes, equal keys; one byte changed, another key", () => {
  const u16 = new Uint16Array(3 * 2048);
  for (let i = 0; i < 2048; i++) u16[i] = u16[2048 + i] = (i * 2654435761) & 0xffff;
  assert.equal(pageKey(u16, 0), pageKey(u16, 4096));
  u16[2048 + 700] ^= 0x100;
  assert.notEqual(pageKey(u16, 0), pageKey(u16, 4096));
  assert.notEqual(pageKey(u16, 0), pageKey(u16, 8192)); // a page of zeros
});

test("a profile survives a save and load; a missing, foreign or corrupt file is an empty profile", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-jit-profile-"));
  try {
    const file = join(dir, "sub", "p.json");
    const p: JitProfile = new Map([["a.b", { entries: [0, 2, 100], ages: [0, 2, 1], blocks: 7, hotAt: 0, ram: 5 }], ["c.d", { entries: [4094], ages: [0], blocks: 1, hotAt: 312.5, ram: -1 }]]);
    assert.equal(saveProfile(file, p), true);
    assert.deepEqual(loadProfile(file), p);
    assert.equal(loadProfile(join(dir, "none.json")).size, 0);
    writeFileSync(file, "{ not json");
    assert.equal(loadProfile(file).size, 0);
    writeFileSync(file, JSON.stringify({ format: 1, pages: { "a.b": [0] } }));
    assert.equal(loadProfile(file).size, 0, "another format version is not read");
    writeFileSync(file, JSON.stringify({ format: 3, pages: { "a.b": { entries: [8], blocks: 1 } } }));
    assert.equal(loadProfile(file).size, 0, "format 3 (a block start wherever slices ended) is not read");
    // Offsets that cannot be block starts are dropped (a profile is only a hint, but stays in range); without ages, all are 0.
    writeFileSync(file, JSON.stringify({ format: 4, pages: { "a.b": { entries: [1, -2, 4096, 8, "x"], blocks: 3 }, "c.d": "no", "e.f": { entries: [], blocks: 1 }, "g.h": { entries: [2], blocks: 0 } } }));
    assert.deepEqual(loadProfile(file), new Map([["a.b", { entries: [8], ages: [0], blocks: 3, hotAt: 0, ram: -1 }]]));
    writeFileSync(file, JSON.stringify({ format: 4, pages: { "a.b": { entries: [8, 10, 12], ages: [1, -1, "x"], blocks: 3 } } }));
    assert.deepEqual(loadProfile(file), new Map([["a.b", { entries: [8, 10, 12], ages: [1, 0, 0], blocks: 3, hotAt: 0, ram: -1 }]]), "an age out of range is 0; no hotAt or ram (older files): 0 and unknown");
    writeFileSync(file, JSON.stringify({ format: 4, pages: { "a.b": { entries: [8], blocks: 1, hotAt: -5 }, "c.d": { entries: [8], blocks: 1, hotAt: "soon" }, "e.f": { entries: [8], blocks: 1, hotAt: 7.5 } } }));
    assert.deepEqual([...loadProfile(file).values()].map((pg) => pg.hotAt), [0, 0, 7.5], "a hotAt that is not a positive number is 0");
    writeFileSync(file, JSON.stringify({ format: 4, pages: { "a.b": { entries: [8], blocks: 1, ram: -3 }, "c.d": { entries: [8], blocks: 1, ram: 2.5 }, "e.f": { entries: [8], blocks: 1, ram: 40 } } }));
    assert.deepEqual([...loadProfile(file).values()].map((pg) => pg.ram), [-1, -1, 40], "a ram that is not a page number is unknown");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an empty profile is not written; the cache keeps the PROFILES_KEPT newest profiles and nothing else is touched", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-jit-profile-"));
  try {
    assert.equal(saveProfile(join(dir, "empty.json"), new Map()), false);
    assert.equal(existsSync(join(dir, "empty.json")), false);
    const name = (i: number): string => `${i.toString(16).padStart(24, "0")}.json`;
    for (let i = 0; i < PROFILES_KEPT + 3; i++) {
      writeFileSync(join(dir, name(i)), "{}");
      utimesSync(join(dir, name(i)), 1000 + i, 1000 + i); // file i is the i-th oldest
    }
    writeFileSync(join(dir, "mine.json"), "a user's file");
    const p: JitProfile = new Map([["a.b", { entries: [0], ages: [0], blocks: 1, hotAt: 0, ram: 0 }]]);
    assert.equal(saveProfile(join(dir, name(999)), p), true);
    const left = readdirSync(dir).sort();
    assert.equal(left.length, PROFILES_KEPT + 1, left.join(" "));
    assert.ok(left.includes("mine.json") && left.includes(name(999)));
    for (let i = 0; i < 4; i++) assert.ok(!left.includes(name(i)), `the oldest, ${name(i)}, went`);
    assert.ok(left.includes(name(4)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("profilePath: one file per kernel and initrd by default (or with NODEVISOR_JIT_PROFILE=1), a file of one's own with a path, none with 0", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-jit-profile-"));
  const saved = { ...process.env };
  try {
    const kernel = join(dir, "k"), initrd = join(dir, "i");
    writeFileSync(kernel, "kernel");
    writeFileSync(initrd, "initrd");
    const cache = join(dir, "cache");
    delete process.env.NODEVISOR_JIT_PROFILE;
    const a = profilePath(cache, kernel, initrd);
    assert.ok(a !== null && a.startsWith(join(cache, "jit-profiles")), String(a));
    process.env.NODEVISOR_JIT_PROFILE = "1";
    assert.equal(profilePath(cache, kernel, initrd), a, "1 is the default");
    assert.notEqual(profilePath(cache, kernel, null), a, "another initrd, another profile");
    writeFileSync(kernel, "another kernel");
    assert.notEqual(profilePath(cache, kernel, initrd), a, "another kernel, another profile");
    assert.equal(profilePath(cache, null, null), null);
    assert.equal(profilePath(cache, join(dir, "missing"), null), null);
    process.env.NODEVISOR_JIT_PROFILE = "0";
    assert.equal(profilePath(cache, kernel, initrd), null);
    process.env.NODEVISOR_JIT_PROFILE = join(dir, "mine.json");
    assert.equal(profilePath(cache, kernel, initrd), join(dir, "mine.json"));
  } finally {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A program in one page: a loop calling two functions, whose return sites are entries of their own,
 * then a loop calling a third (entered only after the page has compiled, from a profile too), and a
 * function `h` it never calls.
 */
function machine(profile?: JitProfile, prefetch = false): { hart: Hart; cache: BlockCache; done: number; unused: number; loop: number } {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BlockCache(ram, { profile, threshold: 64, prefetch });
  hart.useJit(cache);
  const a = new Asm(RAM_BASE);
  a.li(5, 0).li(6, 3000).li(10, 0);
  const loop = a.here - RAM_BASE;
  a.label("loop").jal(1, "f").jal(1, "g").addi(5, 5, 1).blt(5, 6, "loop");
  a.li(5, 0);
  a.label("loop2").jal(1, "k").addi(5, 5, 1).blt(5, 6, "loop2");
  const done = a.here;
  a.label("done").jal(0, "done");
  a.label("f").addi(10, 10, 3).slli(11, 10, 1).jalr(0, 1, 0);
  a.label("g").xori(10, 10, 5).add(10, 10, 11).jalr(0, 1, 0);
  a.label("k").addi(10, 10, 1).jalr(0, 1, 0);
  const unused = a.here - RAM_BASE;
  a.label("h").addi(12, 12, 7).jalr(0, 1, 0);
  ram.write(RAM_BASE, a.bytesOut());
  hart.setPc(RAM_BASE);
  return { hart, cache, done, unused, loop };
}

/** `profile` with every page hot only after 10 M instructions in the recorded run (hotAt 10). */
function hotLate(profile: JitProfile): JitProfile {
  return new Map([...profile].map(([k, pg]) => [k, { ...pg, hotAt: 10 }] as const));
}

/** Runs machine `m`'s program to its end (its `done` loop), at most 2,000 slices of 64 instructions. */
function runToDone(m: { hart: Hart; done: number }): void {
  for (let i = 0; i < 2000 && m.hart.getPc() !== m.done; i++) m.hart.run(64);
}

/** The program run to its end without a profile (`cold`), and the profile that run records. */
function recordedRun(): { cold: ReturnType<typeof machine>; recorded: JitProfile } {
  const cold = machine();
  runToDone(cold);
  return { cold, recorded: cold.cache.exportProfile() };
}

test("with a profile, a page compiles at its PROFILED_VISITS-th visit, with the blocks the recorded run had, and computes the same", () => {
  const cold = machine();
  const page = (RAM_BASE - RAM_BASE) >>> 12;
  runToDone(cold);
  assert.equal(cold.hart.getPc(), cold.done);
  const coldInfo = cold.cache.page(page);
  assert.ok(coldInfo.blocks !== null && coldInfo.blocks.size >= 3, "the cold run compiled the page");
  const profile = cold.cache.exportProfile();
  assert.equal(profile.size, 1);
  const recorded = [...profile.values()][0]!;
  assert.equal(recorded.blocks, coldInfo.blocks.size);
  assert.ok(recorded.entries.length > 0);
  for (const po of recorded.entries) assert.ok(coldInfo.blocks.has(po), `entry ${po} was a block start`);

  const warm = machine(profile);
  const info = warm.cache.page(page);
  for (let v = 1; v < PROFILED_VISITS; v++) {
    warm.hart.run(8); // one visit
    assert.equal(info.blocks, null, `not compiled at visit ${v}`);
  }
  warm.hart.run(8);
  assert.ok(info.blocks !== null, `compiled at visit ${PROFILED_VISITS}`);
  for (const po of recorded.entries) assert.ok(info.blocks.has(po), `the block at ${po} is there from the first compile`);
  assert.ok(info.blocks.size >= Math.min(recorded.blocks, 24), `${info.blocks.size} blocks at once, against ${recorded.blocks} at the end of the recorded run`);
  runToDone(warm);
  assert.equal(warm.hart.getPc(), warm.done);
  assert.equal(warm.hart.getX(10), cold.hart.getX(10));
  assert.ok(warm.cache.stats.missedEntries <= cold.cache.stats.missedEntries, `missed entries ${warm.cache.stats.missedEntries} against ${cold.cache.stats.missedEntries}`);
  assert.ok(warm.cache.stats.instructionsCompiled > cold.cache.stats.instructionsCompiled, "more of the run was compiled");
});

test("a profile whose page code differs is not used: that page waits for the threshold as without one", () => {
  const cold = machine();
  runToDone(cold);
  const profile: JitProfile = new Map([...cold.cache.exportProfile()].map(([k, v]) => [`${k}x`, v] as const));
  const warm = machine(profile);
  for (let v = 0; v < PROFILED_VISITS; v++) warm.hart.run(8);
  assert.equal(warm.cache.page(0).blocks, null);
});

test("a page patched after its first visit is looked up again by its new code: the profile's record of it is used", () => {
  const { cold, recorded: profile } = recordedRun();
  const warm = machine(profile);
  const h = RAM_BASE + warm.unused;
  const original = warm.hart.ram.read(h, 4).slice();
  warm.hart.ram.write(h, Uint8Array.of(0x13, 0, 0, 0)); // as the kernel's text before it patches itself: a nop where the recorded run had its code
  warm.hart.run(8); // the first visit: the page's record is made from the code as it is then
  const info = warm.cache.page(0);
  assert.equal(info.profiled, null, "not in the profile by its code of the first visit");
  warm.hart.ram.write(h, original); // patched to what the recorded run ran
  let visits = 1;
  while (info.blocks === null && visits < 200) {
    warm.hart.run(8);
    visits++;
  }
  assert.ok(info.blocks !== null && info.audit !== null, "compiled from the profile");
  assert.ok(visits <= PROFILED_VISITS + 1, `compiled at visit ${visits}, not at the threshold's 64`);
  runToDone(warm);
  assert.equal(warm.hart.getX(10), cold.hart.getX(10));
});

test("a page hot only late in the recorded run compiles early from the profile only once the hart retired PROFILE_EARLY of that; before, at the threshold", () => {
  const { cold, recorded } = recordedRun();
  assert.deepEqual([...recorded.values()].map((pg) => pg.hotAt), [0], "hot from the start (well within the first 100,000 instructions)");
  const late = hotLate(recorded);

  const early = machine(late); // a run still before that: the page waits for the threshold (64)
  const info = early.cache.page(0);
  let visits = 0;
  while (info.blocks === null && visits < 200) {
    early.hart.run(8);
    visits++;
  }
  assert.ok(info.blocks !== null, "compiled");
  assert.ok(visits >= 64, `compiled at visit ${visits}, the threshold's`);
  assert.deepEqual([...early.cache.exportProfile().values()].map((pg) => pg.hotAt), [0], "the time it turned hot in this run");

  const later = machine(late); // a run past it: from the profile at its PROFILED_VISITS-th visit
  later.hart.instret = 10e6 * PROFILE_EARLY;
  const laterInfo = later.cache.page(0);
  for (let v = 0; v < PROFILED_VISITS; v++) later.hart.run(8);
  assert.ok(laterInfo.blocks !== null && laterInfo.audit !== null, "compiled from the profile");
  runToDone(later);
  assert.equal(later.hart.getX(10), cold.hart.getX(10));
  assert.deepEqual([...later.cache.exportProfile().values()].map((pg) => pg.hotAt), [10], "a compile from the profile keeps its time: it came before the page could turn hot by itself");
});

test("a page whose code a store or a device dropped stays in the profile under the key of the code it was compiled from", () => {
  for (const writer of ["store", "device"] as const) {
    const cold = machine();
    runToDone(cold);
    const [key, recorded] = [...cold.cache.exportProfile()][0]!;
    if (writer === "store") cold.cache.invalidatePage(0); // as the hart's store reaches the page (the kernel reusing its freed init code)
    cold.hart.ram.write(RAM_BASE + cold.unused, Uint8Array.of(0x13, 0, 0, 0)); // a device's write drops the code itself
    assert.notEqual(pageKey(cold.hart.ram.u16, 0), key, "the page's code changed");
    const after = cold.cache.exportProfile();
    assert.deepEqual(after.get(key)?.entries, recorded.entries, `${writer}: kept under the key it was compiled from`);
    assert.equal(after.size, 1);
  }
});

test("a profile's entries are audited: one whose block does not run after the compile ages a run at a time and goes after PROFILE_MAX_AGE runs, those that run stay", () => {
  const { cold, recorded: first } = recordedRun();
  let profile = first;
  const key = [...profile.keys()][0]!;
  const recorded = profile.get(key)!;
  assert.ok(recorded.ages.every((a) => a === 0), "a run's own entries are new");
  assert.ok(!recorded.entries.includes(cold.unused));
  assert.ok(recorded.entries.some((po) => po < cold.loop) && recorded.entries.some((po) => po >= cold.loop));
  // An entry of another workload: a function this program never calls.
  profile.set(key, { ...recorded, entries: [...recorded.entries, cold.unused], ages: [...recorded.ages, 0], blocks: recorded.blocks + 1 });
  for (let run = 1; run <= PROFILE_MAX_AGE; run++) {
    const warm = machine(profile);
    runToDone(warm);
    assert.equal(warm.hart.getX(10), cold.hart.getX(10));
    const audit = warm.cache.page(0).audit;
    assert.ok(audit !== null && audit.marks >= 0 && audit.entries.includes(cold.unused), "the compile took the profile's entries, with marks");
    for (const po of recorded.entries) assert.ok(audit.entries.includes(po), `entry ${po} is audited`);
    profile = warm.cache.exportProfile();
    const page = profile.get(key)!;
    const at = page.entries.indexOf(cold.unused);
    if (run < PROFILE_MAX_AGE) assert.equal(page.ages[at], run, `after ${run} runs without it`);
    else assert.equal(at, -1, `gone after ${run} runs without it`);
    for (const po of recorded.entries) {
      if (po >= cold.loop) assert.equal(page.ages[page.entries.indexOf(po)], 0, `entry ${po} of the loops ran: it stays, new`);
      else if (run === PROFILE_MAX_AGE) assert.ok(!page.entries.includes(po), `entry ${po} of the setup ran before the compile only: it goes too`);
    }
  }
});

test("prefetch: a profiled page compiles before its first visit once the hart reaches its time, where its RAM page holds its code; other code there is looked at again later", () => {
  const { cold, recorded } = recordedRun();
  assert.deepEqual([...recorded.values()].map((pg) => pg.ram), [0], "the RAM page its code was in");
  const late = hotLate(recorded);
  const due = 10e6 * PROFILE_EARLY;

  const before = machine(late, true); // before its time: as without prefetch
  before.hart.run(8);
  assert.equal(before.cache.page(0).blocks, null);

  const warm = machine(late, true);
  warm.hart.instret = due;
  warm.hart.run(8); // the first entry
  const info = warm.cache.page(0);
  assert.ok(info.blocks !== null && info.audit !== null, "compiled from the profile");
  assert.ok(info.visits <= 1, `before the interpreter visited it (${info.visits} visits)`);
  for (const po of recorded.values().next().value!.entries) assert.ok(info.blocks.has(po), `the block at entry ${po} is there`);
  runToDone(warm);
  assert.equal(warm.hart.getX(10), cold.hart.getX(10));

  const patched = machine(late, true); // the kernel patches its text as it boots: the code is not there yet at first
  const h = RAM_BASE + patched.unused;
  const original = patched.hart.ram.read(h, 4).slice();
  patched.hart.ram.write(h, Uint8Array.of(0x13, 0, 0, 0));
  patched.hart.instret = due;
  patched.hart.run(8);
  assert.equal(patched.cache.page(0).blocks, null, "other code in the page: not compiled");
  patched.hart.ram.write(h, original);
  patched.hart.instret = due + PREFETCH_RETRY - 1;
  patched.hart.run(1);
  assert.equal(patched.cache.page(0).audit, null, "not looked at again yet");
  patched.hart.instret = due + PREFETCH_RETRY;
  patched.hart.run(1);
  assert.ok(patched.cache.page(0).audit !== null, "looked at again PREFETCH_RETRY instructions later: compiled from the profile");
});

test("prefetch: a page compiled ahead of the guest that the run never enters keeps its record as it was; one it runs is audited", () => {
  const { cold, recorded } = recordedRun();
  const profile = hotLate(recorded);
  const other = new Asm(RAM_BASE + 4096); // a second page of code, of another workload: this program never goes there
  const code = other.addi(12, 12, 7).jalr(0, 1, 0).bytesOut();
  const page1 = new Uint16Array(2048);
  new Uint8Array(page1.buffer).set(code);
  const otherKey = pageKey(page1, 0);
  profile.set(otherKey, { entries: [0], ages: [1], blocks: 1, hotAt: 10, ram: 1 });
  const run = machine(profile, true);
  run.hart.ram.write(RAM_BASE + 4096, code);
  run.hart.instret = 10e6 * PROFILE_EARLY;
  runToDone(run);
  assert.ok(run.cache.page(1).audit?.prefetched === true && run.cache.page(1).blocks !== null, "the other page was compiled ahead");
  const after = run.cache.exportProfile();
  assert.deepEqual(after.get(otherKey), { entries: [0], ages: [1], blocks: 1, hotAt: 10, ram: 1 }, "as it was: not one run older");
  const [key] = [...recorded.keys()];
  assert.ok(after.get(key)!.ages.some((a) => a === 0), "the page the program runs was audited");
});
