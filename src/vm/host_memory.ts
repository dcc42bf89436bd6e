// Gives guest RAM pages back to the host OS: madvise(MADV_DONTNEED) on the shared WebAssembly.Memory
// that holds guest RAM (a private anonymous mapping), so the VM process's resident memory falls and a
// page reads as zeros when the guest touches it again. Node has no madvise, so this one call goes
// through koffi (an FFI library that ships its binaries in its npm package). Where koffi or libc
// cannot load, or the platform is not Linux, pages are only counted: `mode` says which, and why.

import { createRequire } from "node:module";

/** MADV_DONTNEED on Linux (every architecture Node runs on). */
const MADV_DONTNEED = 4;
/** The host page size madvise needs addresses aligned to; balloon pages are 4 KiB, so bigger host pages are not handled. */
const HOST_PAGE = 4096;

export type ReclaimMode = "madvise" | "accounting";

export interface HostMemory {
  readonly mode: ReclaimMode;
  /** Why reclaim is accounting-only (null with madvise). */
  readonly reason: string | null;
  /** Returns [offset, offset+length) of `memory` to the OS; true if it really went back. */
  release(offset: number, length: number): boolean;
}

type Madvise = (addr: Uint8Array, len: number, advice: number) => number;

let madvise: Madvise | null | undefined;
let loadProblem: string | null = null;

function loadMadvise(): Madvise | null {
  if (madvise !== undefined) return madvise;
  madvise = null;
  if (process.platform !== "linux") {
    loadProblem = `madvise(MADV_DONTNEED) is used only on Linux, and this host runs ${process.platform}`;
    return null;
  }
  try {
    const koffi = createRequire(import.meta.url)("koffi") as { load(lib: string): { func(sig: string): Madvise } };
    madvise = koffi.load("libc.so.6").func("int madvise(void *addr, size_t len, int advice)");
  } catch (e) {
    loadProblem = `the koffi package or libc.so.6 did not load (${(e as Error).message.split("\n")[0]}); reinstall nodevisor's dependencies with npm ci`;
  }
  return madvise;
}

/** MADV_HUGEPAGE on Linux. */
const MADV_HUGEPAGE = 14;

/**
 * Asks the host for transparent huge pages under guest RAM, as QEMU does for its RAM blocks: far
 * fewer page faults as the guest first touches memory, and fewer host TLB misses on every guest
 * access. Balloon reclaim still works (returning a 4 KiB page splits its huge page). True when the
 * advice was taken; NODEVISOR_HUGE_PAGES=0 turns it off.
 */
export function adviseHugePages(buffer: SharedArrayBuffer | ArrayBuffer): boolean {
  if (process.env.NODEVISOR_HUGE_PAGES === "0") return false;
  const fn = loadMadvise();
  return fn !== null && fn(new Uint8Array(buffer), buffer.byteLength, MADV_HUGEPAGE) === 0;
}

/** glibc's mallopt parameters (malloc.h). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
/** Blocks this large and above get their own mapping; glibc's largest fixed threshold on 64-bit hosts. */
const MMAP_THRESHOLD_BYTES = 32 << 20;
/** Free memory at the top of an arena that stays in the process instead of going back to the OS. */
const TRIM_THRESHOLD_BYTES = 64 << 20;

/**
 * Keeps the VMM process's malloc from handing memory back to the host and asking for it again. V8's
 * compilers (TurboFan for the interpreter, Liftoff and TurboFan for the JIT's wasm) allocate and free
 * zones of a few hundred KiB to a few MiB all the time; under glibc's defaults each is a fresh mmap,
 * and first-touching fresh memory costs ~5 ms a MiB on hosts that are VMs themselves (PVM here).
 * A fixed 32 MiB mmap threshold with a 64 MiB trim threshold (as MALLOC_MMAP_THRESHOLD_ and
 * MALLOC_TRIM_THRESHOLD_ would set) took a boot from ~100,000 host page faults to ~56,000.
 * glibc on Linux only; true when both settings were taken. `nodevisor run` calls it unless
 * NODEVISOR_MALLOC_TUNING=0.
 */
export function tuneHostAllocator(): boolean {
  if (process.platform !== "linux" || loadMadvise() === null) return false;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as { load(lib: string): { func(sig: string): (param: number, value: number) => number } };
    const mallopt = koffi.load("libc.so.6").func("int mallopt(int param, int value)");
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) === 1 && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) === 1;
  } catch {
    return false; // not glibc (musl has no mallopt symbol): its allocator keeps its own policy
  }
}

/** Loads madvise now (koffi costs ~15 ms): a process waiting to restore a snapshot does it before the request comes. */
export function preloadReclaim(): void {
  loadMadvise();
}

/** Reclaim for `buffer` (guest RAM); NODEVISOR_RECLAIM=accounting forces the fallback (to compare, or to test it). */
export function hostMemoryFor(buffer: SharedArrayBuffer | ArrayBuffer): HostMemory {
  const forced = process.env.NODEVISOR_RECLAIM === "accounting";
  const fn = forced ? null : loadMadvise();
  if (fn === null) {
    const reason = forced ? "NODEVISOR_RECLAIM=accounting is set" : loadProblem ?? "madvise is unavailable";
    return { mode: "accounting", reason, release: () => false };
  }
  const bytes = new Uint8Array(buffer);
  let failed = false;
  return {
    mode: "madvise",
    reason: null,
    release(offset: number, length: number): boolean {
      if (failed || offset % HOST_PAGE !== 0 || length % HOST_PAGE !== 0 || offset < 0 || offset + length > bytes.length || length === 0) return false;
      // koffi passes a typed array's own memory to a pointer argument, not a copy: the address is guest RAM's.
      if (fn(bytes.subarray(offset, offset + length), length, MADV_DONTNEED) === 0) return true;
      failed = true; // EINVAL here means the mapping is not what we think: stop, and let the counters show it
      return false;
    },
  };
}
