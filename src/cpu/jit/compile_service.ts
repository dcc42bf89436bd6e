// Compiles the JIT's modules on a thread of their own (compile_worker.ts), so the vCPU thread goes
// on interpreting while a hot page compiles. Waking a sleeping thread costs 0.3-1 ms of the
// waker's time on these machines (postMessage and Atomics.notify alike), so nothing here wakes
// anyone in the common case: requests go into slots of a shared pool the compile thread polls
// (every millisecond while busy; it sleeps deeper when idle, and only then is it notified), and
// replies come back on a message port the vCPU thread reads synchronously
// (receiveMessageOnPort) when a shared counter says one is there. The compile thread takes the
// waiting request the interpreter has run the most instructions in since it was made (its heat),
// the oldest among equals: a hot page waiting behind colder ones is interpreted all that time.
//
// One compile thread serves every JIT thread of a VM (vCPU threads each have a client: a pool of
// slots and a reply port of their own), and a page's first module is reused for another thread
// whose page holds the same bytes (compile_worker.ts): the harts of an SMP guest run the same
// kernel, which would otherwise be compiled once per vCPU thread.
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

/** Control words (int32, one buffer per compile thread): requests written (any client), compile thread asleep, then client i's replies posted at C_POSTED + i. */
export const C_WRITTEN = 0, C_ASLEEP = 1, C_POSTED = 2;

/** One JIT thread's link to the compile thread: structured-cloneable (its port transferred) to a vCPU worker. */
export interface CompileChannel {
  /** The client's index: its C_POSTED word. */
  client: number;
  /** The JIT thread whose requests these are (its shootdown announcements, its bit in codePages). */
  thread: number;
  control: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  slotState: SharedArrayBuffer;
  replies: MessagePort;
  /** The taken-transfer map the compile thread reads (block_scan.ts takenBefore), shared by the clients; null: compile every target. */
  taken: SharedArrayBuffer | null;
}

export interface CompileWorkerData {
  entry?: string;
  memory: WebAssembly.Memory;
  wasmPages: number;
  maxModuleBlocks: number;
  /** Bytes of guest RAM: codePages follows it in the memory (seams/guest_ram.ts). */
  ramBytes: number;
  control: SharedArrayBuffer;
  /** Each client's pool and reply port (the other side's). */
  clients: Array<{ thread: number; ring: SharedArrayBuffer; slotState: SharedArrayBuffer; replies: MessagePort }>;
  taken: SharedArrayBuffer | null;
  /** With harts on several threads, the shootdown words (code_shootdown.ts): a request waits until its page's announcement settles. */
  shootdown: SharedArrayBuffer | null;
}

/** A started compile thread: the worker, and a channel per client (new CompileService(channel)). */
export interface CompilePool {
  worker: Worker;
  channels: CompileChannel[];
}

/**
 * Starts a compile thread for the JIT threads `threads` (one client each) over `memory`; `taken`
 * is the taken-transfer map they share (null: compile every target), `shootdown` the VM's
 * shootdown words when harts run on several threads.
 */
export function startCompilePool(memory: WebAssembly.Memory, ramBytes: number, maxModuleBlocks: number, threads: number[], taken: SharedArrayBuffer | null, shootdown: SharedArrayBuffer | null): CompilePool {
  const control = new SharedArrayBuffer(4 * (C_POSTED + threads.length));
  const channels: CompileChannel[] = [];
  const clients: CompileWorkerData["clients"] = [];
  threads.forEach((thread, client) => {
    const { port1, port2 } = new MessageChannel();
    const ring = new SharedArrayBuffer(4 * RING_SLOTS * SLOT_INTS);
    const slotState = new SharedArrayBuffer(4 * 2 * RING_SLOTS);
    channels.push({ client, thread, control, ring, slotState, replies: port1, taken });
    clients.push({ thread, ring, slotState, replies: port2 });
  });
  const { url, entry } = workerEntry("cpu/jit/compile_worker");
  const data: CompileWorkerData = { entry, memory, wasmPages: memory.buffer.byteLength / 65536, maxModuleBlocks, ramBytes, control, clients, taken, shootdown };
  const worker = new Worker(url, { workerData: data, transferList: clients.map((c) => c.replies), name: "jit-compile" });
  worker.unref(); // never what keeps a process alive
  return { worker, channels };
}

/** One request's share of a reply: its page's blocks in the module (none when there was nothing to compile). */
export interface ReplyPart extends CompiledPart {
  /** The request's id; -1 for a part of a reused module that another request asked for (installed by none). */
  id: number;
  /** The request's slot (freed when the reply is taken), -1 with id -1. */
  slot: number;
}

/** The module compiled for one or more requests that waited together; no `module` when none had anything to compile or it failed. */
export interface CompileReply {
  parts: ReplyPart[];
  /** The module is one the compile thread kept (module_reuse.ts), not compiled for this request. */
  reused?: boolean;
  module?: WebAssembly.Module;
  error?: string;
}

export class CompileService {
  /** The compile thread when this client started it (and stops it at close), else null. */
  private readonly worker: Worker | null;
  private readonly replies: MessagePort;
  private readonly posted: number;
  private readonly control: Int32Array;
  private readonly ring: Int32Array;
  /** Per slot its state, then per slot its heat. */
  private readonly slotState: Int32Array;
  private nextSlot = 0;
  private taken = 0;
  private nextId = 1;
  /** Set when the thread failed: the cache then compiles on the vCPU thread. */
  failure: string | null = null;

  /** A compile thread of its own for one JIT thread's harts. */
  static start(memory: WebAssembly.Memory, ramBytes: number, maxModuleBlocks: number, taken: Uint8Array | null, onFailure: (message: string) => void): CompileService {
    const pool = startCompilePool(memory, ramBytes, maxModuleBlocks, [0], taken === null ? null : (taken.buffer as SharedArrayBuffer), null);
    const service = new CompileService(pool.channels[0]!, pool.worker);
    pool.worker.on("error", (e) => {
      service.failure = e.stack ?? e.message;
      onFailure(service.failure);
    });
    return service;
  }

  /** A client of a compile thread (startCompilePool); `worker` when this client owns it. */
  constructor(channel: CompileChannel, worker: Worker | null = null) {
    this.worker = worker;
    this.replies = channel.replies;
    this.posted = C_POSTED + channel.client;
    this.control = new Int32Array(channel.control);
    this.ring = new Int32Array(channel.ring);
    this.slotState = new Int32Array(channel.slotState);
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
    return Atomics.load(this.control, this.posted) !== this.taken;
  }

  /** The replies that arrived since the last call. */
  take(): CompileReply[] {
    const out: CompileReply[] = [];
    const posted = Atomics.load(this.control, this.posted);
    while (this.taken !== posted) { // the counter says how many: no last call to find the port empty
      const m = receiveMessageOnPort(this.replies);
      if (m === undefined) return out;
      this.taken++;
      const reply = m.message as CompileReply;
      for (const part of reply.parts) if (part.slot >= 0) Atomics.store(this.slotState, part.slot, SLOT_FREE); // a reused module's other parts have none
      out.push(reply);
    }
    return out;
  }

  close(): void {
    if (this.worker !== null) void this.worker.terminate();
    this.replies.close();
  }
}
