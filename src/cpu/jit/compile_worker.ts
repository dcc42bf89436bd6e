// The JIT's compile thread (compile_service.ts is the other side): it takes requests from the
// shared ring, scans the hot page's code in the shared guest RAM, emits the module of its blocks
// and has V8 compile it, then posts the compiled module back and counts the reply in shared
// memory. It never returns to its event loop: it polls the ring, every millisecond while there
// is work about, and sleeps longer (asking to be notified) after a quiet spell.
import { setFlagsFromString } from "node:v8";
import { workerData, type MessagePort } from "node:worker_threads";
import { compileModule } from "./compile_block.js";
import { C_ASLEEP, C_POSTED, C_READ, C_WRITTEN, RING_SLOTS, SLOT_HEADER, SLOT_INTS, type CompileReply, type CompileWorkerData } from "./compile_service.js";

/** Polls a quiet ring this many times (1 ms each) before sleeping until notified. */
const QUIET_POLLS = 200;
/** The longest sleep: a missed notify costs at most this much latency. */
const SLEEP_MS = 100;

// V8 compiles a module's functions when first called by default: on the vCPU thread. Eagerly, here.
setFlagsFromString("--no-wasm-lazy-compilation");

const data = workerData as CompileWorkerData;
const u16 = new Uint16Array(data.memory.buffer);
const replies: MessagePort = data.replies;
const control = new Int32Array(data.control);
const ring = new Int32Array(data.ring);

function compile(base: number): CompileReply {
  const id = ring[base]!, pageOff = ring[base + 1]!, nWork = ring[base + 2]!, nHave = ring[base + 3]!, tail = ring[base + 4]!;
  try {
    const list = base + SLOT_HEADER;
    const work = Array.from(ring.subarray(list, list + nWork));
    const have = new Set(ring.subarray(list + nWork, list + nWork + nHave));
    // Guest code may change while this runs: the vCPU thread drops a reply for a page written meanwhile.
    const compiled = compileModule(u16, pageOff, work, have, data.maxModuleBlocks, data.wasmPages, tail);
    return compiled === null ? { id, starts: [], linked: [], bytes: 0 } : { id, ...compiled };
  } catch (e) {
    return { id, starts: [], linked: [], bytes: 0, error: e instanceof Error ? e.stack ?? e.message : String(e) };
  }
}

let read = 0;
let quiet = 0;
for (;;) {
  const written = Atomics.load(control, C_WRITTEN);
  if (written === read) {
    if (quiet < QUIET_POLLS) {
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
  const reply = compile((read % RING_SLOTS) * SLOT_INTS);
  read++;
  Atomics.store(control, C_READ, read); // the slot is free again
  replies.postMessage(reply);
  Atomics.add(control, C_POSTED, 1);
}
