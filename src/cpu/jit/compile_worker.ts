// The JIT's compile thread (compile_service.ts is the other side): it takes the hottest waiting
// request from the shared pool of slots, scans the page's code in the shared guest RAM, emits the
// module of its blocks and has V8 compile it, then posts the compiled module back and counts the
// reply in shared memory. It never returns to its event loop: it polls the pool, every
// millisecond while there is work about, and sleeps longer (asking to be notified) after a quiet spell.
import { setFlagsFromString } from "node:v8";
import { workerData, type MessagePort } from "node:worker_threads";
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
const replies: MessagePort = data.replies;
const control = new Int32Array(data.control);
const ring = new Int32Array(data.ring);
const slotState = new Int32Array(data.slotState);
const taken = data.taken === null ? null : new Uint8Array(data.taken);
const shootdown = data.shootdown === null ? null : new Int32Array(data.shootdown);
/** Requests that wait for their page's announcement to settle were seen in the last look: poll on, do not sleep. */
let unsettled = false;

/** The waiting request with the most heat, the oldest (lowest id) among equals; -1 when none waits. */
function hottest(): number {
  let best = -1, bestHeat = -1, bestId = 0;
  for (let s = 0; s < RING_SLOTS; s++) {
    if (Atomics.load(slotState, s) !== SLOT_READY) continue;
    // Another thread's hart may still store to the page through an old write-TLB entry: not yet (code_shootdown.ts).
    if (shootdown !== null && !CodeShootdown.settled(shootdown, data.thread, ring[s * SLOT_INTS + 8]!)) { unsettled = true; continue; }
    const heat = slotState[RING_SLOTS + s]!, id = ring[s * SLOT_INTS]!;
    if (heat > bestHeat || (heat === bestHeat && id < bestId)) {
      best = s;
      bestHeat = heat;
      bestId = id;
    }
  }
  return best;
}

/** The request in `slot`, as compileModules takes it. */
function request(slot: number): PageRequest {
  const base = slot * SLOT_INTS;
  const pageOff = ring[base + 1]!, nWork = ring[base + 2]!, nHave = ring[base + 3]!, tail = ring[base + 4]!, maxBlocks = ring[base + 5]!, seeds = ring[base + 6]!, marks = ring[base + 7]!;
  const list = base + SLOT_HEADER;
  const work = Array.from(ring.subarray(list, list + nWork));
  const have = new Set(ring.subarray(list + nWork, list + nWork + nHave));
  return { pageOff, work, have, tail, maxBlocks, seeds, marks, taken };
}

function compile(slots: number[]): CompileReply {
  const empty = (): ReplyPart[] => slots.map((slot) => ({ id: ring[slot * SLOT_INTS]!, slot, starts: [], linked: [], bytes: 0, first: 0 }));
  try {
    // Guest code may change while this runs: the vCPU thread drops a part whose page was written meanwhile.
    const reqs = slots.map(request);
    if (DUMP !== "") dumpRequests(DUMP, u16, reqs, data.maxModuleBlocks, data.wasmPages);
    const compiled = compileModules(u16, reqs, data.maxModuleBlocks, data.wasmPages, shootdown !== null); // other threads' harts: FENCE is a host barrier
    if (compiled === null) return { parts: empty() };
    return { module: compiled.module, parts: compiled.parts.map((p, i) => ({ id: ring[slots[i]! * SLOT_INTS]!, slot: slots[i]!, ...p })) };
  } catch (e) {
    return { parts: empty(), error: e instanceof Error ? e.stack ?? e.message : String(e) };
  }
}

// Type feedback for every instruction path before the first request (emitter_warm_up.ts says why).
warmUpEmitter(data.wasmPages);

let quiet = 0;
for (;;) {
  const written = Atomics.load(control, C_WRITTEN);
  unsettled = false;
  const slot = hottest();
  if (slot < 0) {
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
  const slots = [slot];
  Atomics.store(slotState, slot, SLOT_TAKEN);
  for (let more = hottest(); more >= 0 && slots.length < BATCH_MAX; more = hottest()) { // others waiting: the same module
    Atomics.store(slotState, more, SLOT_TAKEN);
    slots.push(more);
  }
  const reply = compile(slots);
  for (const s of slots) Atomics.store(slotState, s, SLOT_REPLIED); // the vCPU thread frees them when it takes the reply
  replies.postMessage(reply);
  Atomics.add(control, C_POSTED, 1);
}
