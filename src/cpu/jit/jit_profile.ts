// The JIT's profile: which code pages a guest compiled, and from which entries, kept between runs
// of the same kernel and initrd. A VM that boots a guest it has booted before compiles those pages
// when it first enters them, from all their recorded entries at once, instead of interpreting each
// page for 1,024 visits and then growing its code by missed entries (~1,300 small recompiles a
// boot). Pages are keyed by a hash of their 4 KiB of code, so a page whose code differs is simply
// not in the profile. The profile only decides when a page compiles and where its blocks start:
// the code is always compiled from the bytes in RAM then, so a stale or even corrupt profile cannot
// change what the guest computes (bad entries just compile blocks nothing enters).
// Every entry of a page's compile from the profile is audited: its block counts its runs, and an
// entry whose block did not run (or whose page was not hot) in PROFILE_MAX_AGE runs that compiled
// the page is dropped. So the profile follows what the guest's workloads run now instead of growing
// with every workload ever run (a profile of a boot and of many test VMs compiled twice the blocks
// of a boot's own, and the boot took 14% longer than with that of one boot).
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** Pages a profile keeps at most (a boot to the shell compiles ~1,700). */
export const PROFILE_MAX_PAGES = 16384;
/** Profiles of other kernels and initrds kept beside the one saved (the most recently saved): each is at most ~1 MB. */
export const PROFILES_KEPT = 32;
/** The names profilePath gives: only these are pruned, whatever else the directory holds. */
const PROFILE_NAME = /^[0-9a-f]{24}\.json$/;
/** 4: entries recorded since a run resumed inside a block stopped counting as one (exec_jit.ts resumeAt); a format-3 file has a block start at every instruction where slices ended in straight-line code, which its audit would keep alive. */
const FORMAT = 4;
/** Runs that compile its page an entry may go without its block running before the profile drops it. */
export const PROFILE_MAX_AGE = 3;
/** Runs of its block in a run that count an entry as used (fewer: it ages). */
export const PROFILE_HOT_RUNS = 1;
/**
 * Runs of a page's audited blocks in a run, in compile thresholds, that count the page as hot (fewer:
 * all its entries age). Block runs outnumber the interpreter's visits of a page (a loop inside it
 * runs its blocks, not visits), hence more than one threshold: against 1, the boot's compiled
 * blocks ~42,500 → ~41,000 (a profile aged from one of a boot and many test VMs).
 */
export const PROFILE_PAGE_THRESHOLDS = 4;

/** A page's key: two 32-bit multiplicative hashes of its code (RAM byte offset `pageOff`), as one string. */
export function pageKey(u16: Uint16Array, pageOff: number): string {
  const u32 = new Uint32Array(u16.buffer, u16.byteOffset + pageOff, 1024);
  let a = 0x811c9dc5, b = 0x9e3779b9;
  for (let i = 0; i < 1024; i++) {
    const w = u32[i]!;
    a = Math.imul(a ^ w, 0x01000193);
    b = Math.imul(b + w, 0x85ebca6b) ^ (b >>> 13);
  }
  return `${(a >>> 0).toString(36)}.${(b >>> 0).toString(36)}`;
}

/**
 * What a run knew of one page: where execution entered it (the interpreter's entries and missed
 * entries it compiled, sorted), per entry the runs since its block last ran (0: in the run that
 * saved it), and the blocks it came to have (for reading only: a compile from the profile is
 * sized by its entries).
 */
export interface ProfiledPage {
  entries: number[];
  ages: number[];
  blocks: number;
  /**
   * Millions of instructions the hart had retired when the page turned hot in the last run it was
   * hot in (0: from the start). A profile holds the pages of every workload the guest ran, and most
   * pages of a later workload are lukewarm in the boot every run starts with: compiled early there,
   * they made the boot to /init ~13% slower (block_cache.ts, PROFILE_EARLY).
   */
  hotAt: number;
  /** The RAM page the code was in when the run that saved the record compiled it (-1: unknown), where a later run looks for it first (profile_prefetch.ts). */
  ram: number;
}

/** Page key -> the page's record. */
export type JitProfile = Map<string, ProfiledPage>;

/**
 * Where the profile of a guest lives: by default (or NODEVISOR_JIT_PROFILE=1) under `cacheDir`,
 * nodevisor's cache, named by the kernel's and initrd's paths, sizes and modification times —
 * another kernel, another profile; NODEVISOR_JIT_PROFILE=PATH: that file. Null when off
 * (NODEVISOR_JIT_PROFILE=0) or when there is no kernel to name it by.
 */
export function profilePath(cacheDir: string, kernel: string | null, initrd: string | null): string | null {
  const setting = process.env.NODEVISOR_JIT_PROFILE;
  if (setting === "0") return null;
  if (setting !== undefined && setting !== "" && setting !== "1") return resolve(setting);
  if (!kernel) return null;
  const id = createHash("sha256");
  for (const f of [kernel, initrd]) {
    if (!f) continue;
    try {
      const s = statSync(f);
      id.update(`${resolve(f)}\0${s.size}\0${s.mtimeMs}\0`);
    } catch {
      return null; // the VM reports the missing file
    }
  }
  return join(cacheDir, "jit-profiles", `${id.digest("hex").slice(0, 24)}.json`);
}

/** Reads a profile; an empty one when the file is missing or not a profile (it is only a hint). */
export function loadProfile(file: string): JitProfile {
  const profile: JitProfile = new Map();
  try {
    const data = JSON.parse(readFileSync(file, "utf8")) as { format?: number; pages?: Record<string, unknown> };
    if (data.format !== FORMAT || typeof data.pages !== "object" || data.pages === null) return profile;
    for (const [key, page] of Object.entries(data.pages)) {
      if (profile.size === PROFILE_MAX_PAGES) break;
      const { entries, ages, blocks, hotAt, ram } = (page ?? {}) as { entries?: unknown; ages?: unknown; blocks?: unknown; hotAt?: unknown; ram?: unknown };
      if (!Array.isArray(entries) || !Number.isInteger(blocks) || (blocks as number) < 1) continue;
      const valid: number[] = [], validAges: number[] = [];
      for (let i = 0; i < entries.length && valid.length < 2048; i++) {
        const po: unknown = entries[i], age: unknown = Array.isArray(ages) ? ages[i] : 0;
        if (!Number.isInteger(po) || (po as number) < 0 || (po as number) >= 4096 || (po as number) % 2 !== 0) continue;
        valid.push(po as number);
        validAges.push(Number.isInteger(age) && (age as number) >= 0 && (age as number) < PROFILE_MAX_AGE ? (age as number) : 0);
      }
      const at = typeof hotAt === "number" && Number.isFinite(hotAt) && hotAt > 0 ? hotAt : 0; // absent or not a time: hot from the start
      const where = Number.isInteger(ram) && (ram as number) >= 0 ? (ram as number) : -1; // absent or not a page: unknown
      if (valid.length > 0) profile.set(key, { entries: valid, ages: validAges, blocks: Math.min(blocks as number, 2048), hotAt: at, ram: where });
    }
  } catch {
    // no profile yet, or unreadable: start without one
  }
  return profile;
}

/** Writes a profile (atomically: another VM may be reading it); false, silently, if it cannot be written. */
export function saveProfile(file: string, profile: JitProfile): boolean {
  if (profile.size === 0) return false; // nothing compiled (a test program, a firmware): no file to litter the cache with
  const pages: Record<string, ProfiledPage> = {};
  let n = 0;
  for (const [key, page] of profile) {
    if (n++ === PROFILE_MAX_PAGES) break;
    pages[key] = page;
  }
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ format: FORMAT, pages }));
    renameSync(tmp, file);
  } catch {
    return false;
  }
  pruneProfiles(dirname(file));
  return true;
}

/**
 * Deletes all but the `keep` most recently saved profiles named as profilePath names them in `dir`
 * (a kernel rebuilt or an initrd regenerated leaves its old profile behind for good otherwise).
 */
export function pruneProfiles(dir: string, keep = PROFILES_KEPT): void {
  try {
    const named = readdirSync(dir).filter((n) => PROFILE_NAME.test(n)).map((n) => {
      const path = join(dir, n);
      return { path, mtime: statSync(path).mtimeMs };
    });
    if (named.length <= keep) return;
    named.sort((a, b) => b.mtime - a.mtime);
    for (const { path } of named.slice(keep)) rmSync(path, { force: true });
  } catch {
    // another VM pruning at the same moment, or an unreadable directory: the cache is only a hint
  }
}
