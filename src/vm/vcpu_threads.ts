// The device thread's side of threaded vCPUs (docs/vcpu-threads.md): one worker per hart
// (vcpu_worker.ts), all on the board's shared guest RAM. This side serves the harts' MMIO exits
// on the board's bus as they arrive (Atomics.waitAsync on each mailbox: no polling), drives the
// PLIC's interrupt outputs into the harts' control blocks, and pauses, resumes and stops them.

import { Worker } from "node:worker_threads";
import { workerEntry } from "./worker_entry.js";
import type { Board } from "../machine/board.js";
import type { HartState } from "../cpu/hart.js";
import { MIP_SSIP } from "../cpu/constants.js";
import type { InterruptTarget } from "../seams/interrupts.js";
import type { VirtualClock } from "./clock.js";
import type { PacingStats } from "./pacing.js";
import type { VcpuRunner } from "./vcpu_runner.js";
import type { LazyPagesShared } from "./snapshot/lazy_pages.js";
import type { VcpuWorkerData, VcpuWorkerMessage } from "./vcpu_worker.js";
import { CodeShootdown } from "../cpu/jit/code_shootdown.js";
import { startCompilePool } from "../cpu/jit/compile_service.js";
import { TAKEN_MAP_BYTES } from "../cpu/jit/block_scan.js";
import { MAX_MODULE_BLOCKS, type JitStats } from "../cpu/jit/block_cache.js";
import type { JitProfile } from "../cpu/jit/jit_profile.js";
import {
  HartControl, HartFigure, HartWord, JIT_FIGURES, MAILBOX_REPLY, MAILBOX_REQUEST, RUNNING, STOPPED, VmControl, VmWord,
} from "./vcpu_control.js";

/** Atomics.waitAsync (Node 16+; TypeScript's lib has it only from es2024). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** Instructions a vCPU runs between looks at its control block (~0.1-0.3 ms of guest time). */
const QUANTUM = 20_000;
/** How long a stopping VM's workers get to leave their loops before they are terminated. */
const STOP_GRACE_MS = 200;

export interface ThreadedVcpuHooks {
  /** Device work after guest activity: flush console output, feed console input. */
  afterSlice: () => void;
  /** Debug-console (SBI DBCN) output. */
  consoleWrite: (bytes: Uint8Array) => void;
  onSystemReset: (kind: "shutdown" | "reboot", exitCode: number) => void;
  /** A worker failed (a VMM bug): the VM must stop as crashed. */
  onCrash: (message: string) => void;
  /** On the JIT tier (each worker compiles its own hart's hot code): the profile of earlier runs, if any. */
  jit?: { profile?: JitProfile };
  /** Each worker warms its interpreter up before its hart runs (interpreter_warm_up.ts). */
  warmUp?: boolean;
}

export class ThreadedVcpus implements VcpuRunner {
  readonly controls: HartControl[];
  /** What the PLIC drives, one per hart: its outputs become control-block words. */
  readonly interruptTargets: InterruptTarget[];
  private readonly vm = new VmControl();
  private readonly workers: Worker[] = [];
  /** On the JIT tier, the compile thread every worker's code cache shares. */
  private compiler: Worker | null = null;
  private board: Board | null = null;
  private stopped = false;
  private tickQueued = false;
  private capPercent: number | null = null;
  private readonly startedCpu = process.cpuUsage();
  /** Set before begin() for a lazy restore: each worker loads the pages it touches first. */
  lazyPages: LazyPagesShared | undefined;
  /** The workers' shootdown words on the JIT tier (code_shootdown.ts), else null. */
  private readonly shootdown: SharedArrayBuffer | null;

  constructor(
    cpus: number,
    private readonly clock: VirtualClock,
    private readonly hooks: ThreadedVcpuHooks,
  ) {
    this.controls = Array.from({ length: cpus }, () => new HartControl());
    this.shootdown = hooks.jit === undefined ? null : CodeShootdown.create();
    this.interruptTargets = this.controls.map((c) => ({
      setInterruptPending: (bit: number, level: boolean) => c.setExternalLevel(bit, level),
    }));
  }

  /** Starts one worker per hart from the harts' boot state (boot() ran on this thread's harts). */
  begin(board: Board): void {
    this.board = board;
    const { url, entry } = workerEntry("vm/vcpu_worker");
    const harts = this.controls.map((c) => c.shared);
    // One compile thread for all the workers' caches: it compiles a page once for every thread running the same code (compile_service.ts).
    const pool = this.shootdown === null ? null : startCompilePool(board.ram.memory, board.ram.size, MAX_MODULE_BLOCKS, board.harts.map((_, i) => i),
      process.env.NODEVISOR_JIT_TAKEN === "0" ? null : new SharedArrayBuffer(TAKEN_MAP_BYTES), this.shootdown);
    if (pool !== null) {
      this.compiler = pool.worker;
      pool.worker.on("error", (e) => process.stderr.write(`nodevisor: JIT: the compile thread failed, the vCPUs interpret what it had not compiled: ${e.stack ?? e.message}\n`));
    }
    board.harts.forEach((hart, i) => {
      const c = this.controls[i]!;
      c.words[HartWord.RUN_STATE] = hart.stopped ? STOPPED : RUNNING;
      const data: VcpuWorkerData = {
        entry,
        hartId: i,
        ramBase: board.ram.base,
        ramSize: board.ram.size,
        ramMemory: board.ram.memory,
        ramDirty: board.ram.dirty.buffer as SharedArrayBuffer,
        lazyPages: this.lazyPages,
        clock: this.clock.shared,
        vm: this.vm.shared,
        harts,
        state: hart.save(),
        quantum: QUANTUM,
        jit: pool === null ? undefined : { shootdown: this.shootdown!, profile: this.hooks.jit?.profile, compiler: pool.channels[i]! },
        warmUp: this.hooks.warmUp,
      };
      const worker = new Worker(url, { workerData: data, name: `vcpu${i}`, transferList: pool === null ? [] : [pool.channels[i]!.replies] });
      worker.on("message", (m: VcpuWorkerMessage) => this.onMessage(i, m));
      worker.on("error", (e) => this.crash(`vCPU ${i}'s thread failed: ${e.stack ?? e.message}`));
      worker.on("exit", (code) => {
        if (!this.stopped) this.crash(`vCPU ${i}'s thread exited (status ${code}) while the VM ran`);
      });
      this.workers.push(worker);
      void this.serveMailbox(i);
    });
  }

  /** The JIT's figures summed over the workers' code caches (as last published); null on the interpreter. */
  jitStats(): JitStats | null {
    if (this.shootdown === null) return null;
    return Object.fromEntries(JIT_FIGURES.map((key, i) => [key, this.sum(HartFigure.JIT + i)])) as unknown as JitStats;
  }

  get instructions(): number {
    return this.sum(HartFigure.INSTRET);
  }

  get mmioExits(): number {
    return this.sum(HartFigure.MMIO_EXITS);
  }

  get sbiExits(): number {
    return this.sum(HartFigure.SBI_EXITS);
  }

  /** Mean time a vCPU slept in WFI. */
  get idleMs(): number {
    return this.sum(HartFigure.IDLE_MS) / this.controls.length;
  }

  /** Device state changed (console input, an interrupt): do the device work soon. */
  kick(): void {
    this.queueTick();
  }

  pause(): void {
    Atomics.store(this.vm.words, VmWord.PAUSE, 1);
    for (const c of this.controls) c.wake();
  }

  resume(): void {
    Atomics.store(this.vm.words, VmWord.PAUSE, 0);
    for (const c of this.controls) c.wake();
  }

  /**
   * Every hart's state, taken at an instruction boundary: the harts must be paused. Each hart's
   * state block is shared memory, so once every hart has parked (an atomic count, after its last
   * write) this thread reads the blocks through the board's hart objects. An IPI sent to a hart
   * that parked before taking it is still in its control word: it goes into the state too, or a
   * restored guest would wait forever for the other CPU to answer (a lost reschedule or call).
   */
  async collectHartStates(): Promise<HartState[]> {
    if (!this.vm.paused) throw new Error("collectHartStates needs the vCPUs paused first");
    const words = this.vm.words;
    for (;;) {
      if (this.stopped) throw new Error("the vCPUs stopped before they parked");
      const parked = Atomics.load(words, VmWord.PARKED);
      if (parked === this.controls.length) break;
      const wait = waitAsync(words, VmWord.PARKED, parked);
      if (wait.async) await Promise.race([wait.value, new Promise((r) => setTimeout(r, 5))]);
    }
    return this.board!.harts.map((h, i) => withWaitingIpi(h.save(), this.controls[i]!));
  }

  /**
   * Every hart drops its TLB entries (dirty logging: the next store to a page fills again and
   * marks it). Resolves once each hart flushed; sleeping, parked and stopped harts answer too.
   */
  async flushTlbs(): Promise<void> {
    const asked = this.controls.map((c) => c.requestFence());
    for (let i = 0; i < this.controls.length; i++) {
      const c = this.controls[i]!;
      while (!c.fenceDone(asked[i]!) && !this.stopped) {
        const wait = waitAsync(c.words, HartWord.FENCE_DONE, Atomics.load(c.words, HartWord.FENCE_DONE));
        if (wait.async) await Promise.race([wait.value, new Promise((r) => setTimeout(r, 5))]);
      }
    }
  }

  /** Harts parked by pause() right now (all of them shortly after a pause). */
  get parked(): number {
    return Atomics.load(this.vm.words, VmWord.PARKED);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.vm.words, VmWord.STOP, 1);
    for (const c of this.controls) {
      c.wake();
      Atomics.notify(c.words, HartWord.MB_STATE); // ends serveMailbox's wait
    }
    for (const w of this.workers) {
      w.unref();
      setTimeout(() => void w.terminate(), STOP_GRACE_MS).unref();
    }
    void this.compiler?.terminate();
  }

  setCap(capPercent: number | null): void {
    this.capPercent = capPercent === 0 ? null : capPercent;
    Atomics.store(this.vm.words, VmWord.CAP, Math.round((this.capPercent ?? 0) * 100));
  }

  get cap(): number | null {
    return this.capPercent;
  }

  /** Steal here is only what the cap held back: a thread cannot see its own CPU time on Node 20. */
  pacingStats(): PacingStats {
    const u = process.cpuUsage(this.startedCpu);
    const throttledMs = this.sum(HartFigure.THROTTLED_MS) / this.controls.length;
    return { cpuMs: (u.user + u.system) / 1000, stealMs: throttledMs, throttledMs };
  }

  trapsByCause(): Map<string, number> {
    const all = new Map<string, number>();
    for (const c of this.controls) for (const [k, n] of c.trapCounts()) all.set(k, (all.get(k) ?? 0) + n);
    return all;
  }

  describeInputs(): Array<{ externalLevels: string; softwareInterruptWaiting: boolean }> {
    return this.controls.map((c) => ({ externalLevels: `0x${(Atomics.load(c.words, HartWord.EXT_LEVELS) >>> 0).toString(16)}`, softwareInterruptWaiting: c.softwareInterruptWaiting }));
  }

  describePcs(): string {
    return this.controls.map((c, i) => `hart ${i} near pc 0x${c.figures[HartFigure.PC]!.toString(16)}`).join(", ");
  }

  private sum(slot: number): number {
    let s = 0;
    for (const c of this.controls) s += c.figures[slot]!;
    return s;
  }

  /** Serves hart i's MMIO exits for as long as the VM runs. */
  private async serveMailbox(i: number): Promise<void> {
    const w = this.controls[i]!.words;
    while (!this.stopped) {
      const state = Atomics.load(w, HartWord.MB_STATE);
      if (state === MAILBOX_REQUEST) {
        try {
          this.serveMmio(w);
        } catch (e) {
          this.crash(`serving vCPU ${i}'s device access failed: ${(e as Error)?.stack ?? String(e)}`);
          return;
        }
        continue;
      }
      const wait = waitAsync(w, HartWord.MB_STATE, state);
      if (wait.async) await wait.value;
    }
  }

  private serveMmio(w: Int32Array): void {
    const bus = this.board!.bus;
    const addr = (w[HartWord.MB_ADDR_LO]! >>> 0) + w[HartWord.MB_ADDR_HI]! * 2 ** 32;
    const size = w[HartWord.MB_SIZE]! as 1 | 2 | 4 | 8;
    if (w[HartWord.MB_WRITE] !== 0) {
      bus.write(addr, size, w[HartWord.MB_VALUE_LO]!, w[HartWord.MB_VALUE_HI]!);
    } else {
      w[HartWord.MB_VALUE_LO] = bus.read(addr, size);
      w[HartWord.MB_VALUE_HI] = size === 8 ? bus.readHigh : 0;
    }
    w[HartWord.MB_FAULT] = bus.fault ? 1 : 0;
    Atomics.store(w, HartWord.MB_STATE, MAILBOX_REPLY);
    Atomics.notify(w, HartWord.MB_STATE);
    this.queueTick();
  }

  private queueTick(): void {
    if (this.tickQueued || this.stopped) return;
    this.tickQueued = true;
    setImmediate(() => {
      this.tickQueued = false;
      if (!this.stopped) this.hooks.afterSlice();
    });
  }

  private onMessage(i: number, m: VcpuWorkerMessage): void {
    if (this.stopped) return;
    switch (m.type) {
      case "console":
        this.hooks.consoleWrite(m.bytes);
        return;
      case "system-reset":
        this.hooks.onSystemReset(m.kind, m.exitCode);
        return;
      case "crash":
        this.crash(`vCPU ${i} at pc 0x${m.pc.toString(16)} failed: ${m.message}`);
        return;
    }
  }

  private crash(message: string): void {
    if (this.stopped) return;
    this.stop();
    this.hooks.onCrash(message);
  }
}

/** `state` with SSIP pending when the hart's control block holds an IPI it has not taken. */
export function withWaitingIpi(state: HartState, control: HartControl): HartState {
  return control.softwareInterruptWaiting ? { ...state, mipSoftware: state.mipSoftware | MIP_SSIP } : state;
}
