// Compiles the JIT's modules on a thread of their own (compile_worker.ts), so the vCPU thread goes
// on interpreting while a hot page compiles. Waking a sleeping thread costs 0.3-1 ms of the
// waker's time on these machines (postMessage and Atomics.notify alike), so nothing here wakes
// anyone in the common case: requests go into slots of a shared pool the compile thread polls
// (every millisecond while busy; it sleeps deeper when idle, and only then is it notified), and
// replies come back on a message port the vCPU thread reads synchronously
// (receiveMessageOnPort) when a shared counter says one is there. The compile thread takes the
// waiting request the interpreter has run the most instructions in since it was made (its heat),
// the oldest among equals: a hot page waiting behind colder ones is interpreted all that time.
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { workerEntry } from "../../vm/worker_entry.js";
import type { CompiledPart } from "./compile_block.js";

/** Requests in flight at most: the pool's slots. */
export const RING_SLOTS = 64;
/** A slot's state (slotState[slot]; its heat is at slotState[RING_SLOTS + slot]): free, written and waiting, being compiled, replied to (freed when the reply is taken). */
export const SLOT_FREE = 0, SLOT_READY = 1, SLOT_TAKEN = 2, SLOT_REPLIED = 3;
/** Heat stops here (a request that wrapped negative would never be taken). */
const HEAT_MAX = 0x3fffffff;
/** int32s per slot: [id, pageOff, nWork, nHave, tail, maxBlocks, nSeeds, marks, announced, work..., have...]. */
export const SLOT_INTS = 1024;
export const SLOT_HEADER = 9;
/** Work and have entries a request carries at most (more have: the worker may emit blocks the page has; install skips them). */
export const SLOT_LIST_MAX = (SLOT_INTS - SLOT_HEADER) >> 1;

/** Control words (int32): requests written (vCPU thread), replies posted, compile thread asleep. */
export const C_WRITTEN = 0, C_POSTED = 2, C_ASLEEP = 3;

export interface CompileWorkerData {
  entry?: string;
  memory: WebAssembly.Memory;
  wasmPages: number;
  maxModuleBlocks: number;
  replies: MessagePort;
  control: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  slotState: SharedArrayBuffer;
  /** The taken-transfer map the interpreter writes (block_scan.ts takenBefore); null: compile every target. */
  taken: SharedArrayBuffer | null;
  /** With harts on several threads, the shootdown words (code_shootdown.ts): a request waits until its page's announcement settles. */
  shootdown: SharedArrayBuffer | null;
  /** The JIT thread whose requests these are (its announcements). */
  thread: number;
}

/** One request's share of a reply: its page's blocks in the module (none when there was nothing to compile). */
export interface ReplyPart extends CompiledPart {
  id: number;
  /** The request's slot (freed when the reply is taken). */
  slot: number;
}

/** The module compiled for one or more requests that waited together; no `module` when none had anything to compile or it failed. */
export interface CompileReply {
  parts: ReplyPart[];
  module?: WebAssembly.Module;
  error?: string;
}

export class CompileService {
  private readonly worker: Worker;
  private readonly replies: MessagePort;
  private readonly control: Int32Array;
  private readonly ring: Int32Array;
  /** Per slot its state, then per slot its heat. */
  private readonly slotState: Int32Array;
  private nextSlot = 0;
  private taken = 0;
  private nextId = 1;
  /** Set when the thread failed: the cache then compiles on the vCPU thread. */
  failure: string | null = null;

  constructor(memory: WebAssembly.Memory, maxModuleBlocks: number, taken: Uint8Array | null, shootdown: SharedArrayBuffer | null, thread: number, onFailure: (message: string) => void) {
    const channel = new MessageChannel();
    this.replies = channel.port1;
    const control = new SharedArrayBuffer(16);
    const ring = new SharedArrayBuffer(4 * RING_SLOTS * SLOT_INTS);
    const slotState = new SharedArrayBuffer(4 * 2 * RING_SLOTS);
    this.control = new Int32Array(control);
    this.ring = new Int32Array(ring);
    this.slotState = new Int32Array(slotState);
    const { url, entry } = workerEntry("cpu/jit/compile_worker");
    const data: CompileWorkerData = { entry, memory, wasmPages: memory.buffer.byteLength / 65536, maxModuleBlocks, replies: channel.port2, control, ring, slotState, taken: taken === null ? null : (taken.buffer as SharedArrayBuffer), shootdown, thread };
    this.worker = new Worker(url, { workerData: data, transferList: [channel.port2], name: "jit-compile" });
    this.worker.unref(); // never what keeps a process alive
    this.worker.on("error", (e) => {
      this.failure = e.stack ?? e.message;
      onFailure(this.failure);
    });
  }

  /**
   * Asks for the module of the page at RAM offset `pageOff`: the blocks reachable from `work`,
   * except those at `have`, at most `maxBlocks` (`tail`, `seeds`, `marks`: PageRequest's), once
   * the page's shootdown announcement `announced` settles (0: none). Returns the id its reply
   * carries and its slot (for heat()), or null when every slot is in use.
   */
  request(pageOff: number, work: number[], have: Iterable<number>, tail: number, maxBlocks: number, seeds = work.length, marks = -1, announced = 0): { id: number; slot: number } | null {
    const c = this.control, state = this.slotState;
    let slot = -1;
    for (let i = 0; i < RING_SLOTS && slot < 0; i++) {
      const s = (this.nextSlot + i) % RING_SLOTS;
      if (Atomics.load(state, s) === SLOT_FREE) slot = s;
    }
    if (slot < 0) return null;
    this.nextSlot = (slot + 1) % RING_SLOTS;
    const base = slot * SLOT_INTS;
    const r = this.ring;
    const id = this.nextId++;
    let k = base + SLOT_HEADER;
    let nWork = 0, nHave = 0;
    for (const po of work) { if (nWork === SLOT_LIST_MAX) break; r[k++] = po; nWork++; }
    for (const po of have) { if (nHave === SLOT_LIST_MAX) break; r[k++] = po; nHave++; }
    r[base] = id;
    r[base + 1] = pageOff;
    r[base + 2] = nWork;
    r[base + 3] = nHave;
    r[base + 4] = tail;
    r[base + 5] = maxBlocks;
    r[base + 6] = Math.min(seeds, nWork);
    r[base + 7] = marks;
    r[base + 8] = announced;
    state[RING_SLOTS + slot] = 0;
    Atomics.store(state, slot, SLOT_READY);
    Atomics.add(c, C_WRITTEN, 1);
    if (Atomics.load(c, C_ASLEEP) === 1) Atomics.notify(c, C_WRITTEN); // only after a long idle spell
    return { id, slot };
  }

  /** The interpreter ran `instructions` more in the page a waiting request in `slot` compiles. */
  heat(slot: number, instructions: number): void {
    const h = this.slotState[RING_SLOTS + slot]! + instructions;
    this.slotState[RING_SLOTS + slot] = h < HEAT_MAX ? h : HEAT_MAX; // a hint, so no atomics; saturated, never wrapped negative
  }

  /** True when a reply may be waiting: one load from shared memory. */
  get ready(): boolean {
    return Atomics.load(this.control, C_POSTED) !== this.taken;
  }

  /** The replies that arrived since the last call. */
  take(): CompileReply[] {
    const out: CompileReply[] = [];
    const posted = Atomics.load(this.control, C_POSTED);
    while (this.taken !== posted) { // the counter says how many: no last call to find the port empty
      const m = receiveMessageOnPort(this.replies);
      if (m === undefined) return out;
      this.taken++;
      const reply = m.message as CompileReply;
      for (const part of reply.parts) Atomics.store(this.slotState, part.slot, SLOT_FREE);
      out.push(reply);
    }
    return out;
  }

  close(): void {
    void this.worker.terminate();
    this.replies.close();
  }
}
