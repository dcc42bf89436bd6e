// The JIT's compile thread (compile_service.ts is the other side): it takes the hottest waiting
// request from its clients' shared pools of slots (one client per JIT thread), scans the page's
// code in the shared guest RAM, emits the module of its blocks and has V8 compile it — or reuses
// a module it kept of the same page bytes (module_reuse.ts) — then posts the module back to the client and
// counts the reply in shared memory. It never returns to its event loop: it polls the pools, every
// millisecond while there is work about, and sleeps longer (asking to be notified) after a quiet spell.
import { setFlagsFromString } from "node:v8";
import { workerData, type MessagePort } from "node:worker_threads";
import { ModuleReuse } from "./module_reuse.js";
import { compileModules, type PageRequest } from "./compile_block.js";
import { CodeShootdown } from "./code_shootdown.js";
import { warmUpEmitter } from "./emitter_warm_up.js";
import { dumpRequests } from "./compile_dump.js";
import { C_ASLEEP, C_POSTED, C_WRITTEN, RING_SLOTS, SLOT_HEADER, SLOT_INTS, SLOT_READY, SLOT_REPLIED, SLOT_TAKEN, type CompileReply, type CompileWorkerData, type ReplyPart } from "./compile_service.js";

/** Polls a quiet ring this many times (1 ms each) before sleeping until notified. */
const QUIET_POLLS = 200;
/** The longest sleep: a missed notify costs at most this much latency. */
const SLEEP_MS = 100;
/**
 * Requests waiting together compiled into one module, at most: V8's cost per module (a
 * NativeModule with its code space and jump table, an instantiation on the vCPU thread) is then
 * paid once for them. Against 1, boot to the shell: the compile thread's CPU 1.90 → 1.69 s, the
 * vCPU thread's 3.96 → 3.63 s (medians of 6 interleaved pairs; 6 was no better).
 * NODEVISOR_JIT_BATCH overrides it, for tuning.
 */
const BATCH_MAX = Math.max(1, Number(process.env.NODEVISOR_JIT_BATCH) || 3);
/** NODEVISOR_JIT_DUMP=FILE records each module's requests there, for bench_compile.ts. */
const DUMP = process.env.NODEVISOR_JIT_DUMP ?? "";

// V8 compiles a module's functions when first called by default: on the vCPU thread. Eagerly, here.
setFlagsFromString("--no-wasm-lazy-compilation");

const data = workerData as CompileWorkerData;
const u16 = new Uint16Array(data.memory.buffer);
const control = new Int32Array(data.control);
const taken = data.taken === null ? null : new Uint8Array(data.taken);
const shootdown = data.shootdown === null ? null : new Int32Array(data.shootdown);
/** codePages (seams/guest_ram.ts): a byte per RAM page, a bit per JIT thread whose code depends on it; a store clears them all. */
const codePages = new Uint8Array(data.memory.buffer, data.ramBytes, data.ramBytes / 4096);
const reuse = new ModuleReuse(new Int32Array(data.memory.buffer));

interface Client {
  /** Its index: its C_POSTED word. */
  index: number;
  thread: number;
  ring: Int32Array;
  slotState: Int32Array;
  replies: MessagePort;
}
const clients: Client[] = data.clients.map((c, index) => ({ index, thread: c.thread, ring: new Int32Array(c.ring), slotState: new Int32Array(c.slotState), replies: c.replies }));
/** Requests that wait for their page's announcement to settle were seen in the last look: poll on, do not sleep. */
let unsettled = false;

/** Client `c`'s waiting request with the most heat, the oldest (lowest id) among equals; -1 when none waits. */
function hottest(c: Client): number {
  const { ring, slotState } = c;
  let best = -1, bestHeat = -1, bestId = 0;
  for (let s = 0; s < RING_SLOTS; s++) {
    if (Atomics.load(slotState, s) !== SLOT_READY) continue;
    // Another thread's hart may still store to the page through an old write-TLB entry: not yet (code_shootdown.ts).
    if (shootdown !== null && !CodeShootdown.settled(shootdown, c.thread, ring[s * SLOT_INTS + 8]!)) { unsettled = true; continue; }
    const heat = slotState[RING_SLOTS + s]!, id = ring[s * SLOT_INTS]!;
    if (heat > bestHeat || (heat === bestHeat && id < bestId)) {
      best = s;
      bestHeat = heat;
      bestId = id;
    }
  }
  return best;
}

/** The request in client `c`'s `slot`, as compileModules takes it. */
function request(c: Client, slot: number): PageRequest {
  const ring = c.ring, base = slot * SLOT_INTS;
  const pageOff = ring[base + 1]!, nWork = ring[base + 2]!, nHave = ring[base + 3]!, tail = ring[base + 4]!, maxBlocks = ring[base + 5]!, seeds = ring[base + 6]!, marks = ring[base + 7]!;
  const list = base + SLOT_HEADER;
  const work = Array.from(ring.subarray(list, list + nWork));
  const have = new Set(ring.subarray(list + nWork, list + nWork + nHave));
  return { pageOff, work, have, tail, maxBlocks, seeds, marks, taken };
}

/** Client `c`'s request in `slot` has no profile marks (each thread's are its own): its module may be kept and reused (module_reuse.ts). */
const reusable = (c: Client, slot: number): boolean => c.ring[slot * SLOT_INTS + 7]! < 0;

function compile(c: Client, slots: number[]): CompileReply {
  const ring = c.ring, bit = 1 << c.thread;
  const empty = (): ReplyPart[] => slots.map((slot) => ({ id: ring[slot * SLOT_INTS]!, slot, starts: [], linked: [], bytes: 0, first: 0 }));
  try {
    // Guest code may change while this runs: the vCPU thread drops a part whose page was written meanwhile.
    const reqs = slots.map((s) => request(c, s));
    if (DUMP !== "") dumpRequests(DUMP, u16, reqs, data.maxModuleBlocks, data.wasmPages);
    // Copies of the pages to keep the modules by: taken while the requests' bits say no store reached the page since.
    const copies = reqs.map((r, i) => (reusable(c, slots[i]!) && (Atomics.load(codePages, r.pageOff >>> 12) & bit) !== 0 ? reuse.copy(r.pageOff) : null));
    const compiled = compileModules(u16, reqs, data.maxModuleBlocks, data.wasmPages, shootdown !== null); // other threads' harts: FENCE is a host barrier
    if (compiled === null) return { parts: empty() };
    const parts = compiled.parts.map((p, i) => ({ id: ring[slots[i]! * SLOT_INTS]!, slot: slots[i]!, ...p }));
    reqs.forEach((r, i) => {
      // Still set: no store reached the page while it compiled, so the copy is what the module was compiled from.
      if (copies[i] !== null && parts[i]!.starts.length > 0 && (Atomics.load(codePages, r.pageOff >>> 12) & bit) !== 0) reuse.keep(r.pageOff, copies[i]!, r.tail, compiled.module, parts, i);
    });
    return { module: compiled.module, parts };
  } catch (e) {
    return { parts: empty(), error: e instanceof Error ? e.stack ?? e.message : String(e) };
  }
}

/** Client `c`'s request in `slot`, answered with a kept module when one fits; false when it needs a compile. */
function answerFromKept(c: Client, slot: number): boolean {
  if (!reusable(c, slot)) return false;
  const r = request(c, slot);
  const kept = reuse.find(r.pageOff, r.tail, r.work, r.have as Set<number>, c.ring[slot * SLOT_INTS]!, slot);
  if (kept === null) return false;
  reply(c, [slot], { ...kept, reused: true });
  return true;
}

function reply(c: Client, slots: number[], r: CompileReply): void {
  for (const s of slots) Atomics.store(c.slotState, s, SLOT_REPLIED); // the vCPU thread frees them when it takes the reply
  c.replies.postMessage(r);
  Atomics.add(control, C_POSTED + c.index, 1);
}

// Type feedback for every instruction path before the first request (emitter_warm_up.ts says why).
warmUpEmitter(data.wasmPages);

let quiet = 0;
let turn = 0;
for (;;) {
  const written = Atomics.load(control, C_WRITTEN);
  unsettled = false;
  // The clients in turn, from the one after the last served: one busy vCPU thread does not starve the others.
  let c: Client | null = null, slot = -1;
  for (let i = 0; i < clients.length && slot < 0; i++) {
    c = clients[(turn + i) % clients.length]!;
    slot = hottest(c);
  }
  if (slot < 0 || c === null) {
    if (quiet < QUIET_POLLS || unsettled) {
      quiet++;
      Atomics.wait(control, C_WRITTEN, written, 1);
    } else {
      Atomics.store(control, C_ASLEEP, 1);
      Atomics.wait(control, C_WRITTEN, written, SLEEP_MS);
      Atomics.store(control, C_ASLEEP, 0);
    }
    continue;
  }
  quiet = 0;
  turn = (c.index + 1) % clients.length;
  Atomics.store(c.slotState, slot, SLOT_TAKEN);
  if (answerFromKept(c, slot)) continue;
  const slots = [slot];
  for (let more = hottest(c); more >= 0 && slots.length < BATCH_MAX; more = hottest(c)) { // others of this client waiting: the same module
    Atomics.store(c.slotState, more, SLOT_TAKEN);
    if (!answerFromKept(c, more)) slots.push(more);
  }
  reply(c, slots, compile(c, slots));
}
