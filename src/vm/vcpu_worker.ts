// One vCPU on its own worker thread (docs/vcpu-threads.md). The hart runs guest code in quanta;
// between quanta it takes its cross-thread inputs from its control block. MMIO exits go to the
// device thread through the mailbox (this thread blocks until the reply); SBI calls are answered
// here by a firmware instance whose other harts are proxies over their control blocks, so the
// frequent calls (set_timer, IPIs, fences) never leave the vCPU threads. On the JIT tier the
// thread has a code cache of its own (docs/jit.md, "Several vCPU threads"): at each slice boundary
// it drops its write-TLB entries of pages other threads compiled, and it counts as parked while it
// waits, so their compiles need not wait for it.

import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { Hart, type HartState } from "../cpu/hart.js";
import { EXIT_MMIO, EXIT_SBI, EXIT_STOPPED, EXIT_WFI } from "../cpu/exit.js";
import { IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER } from "../cpu/constants.js";
import { Bus } from "../machine/bus.js";
import { attachLazyPages, type LazyPagesShared } from "./snapshot/lazy_pages.js";
import { GuestRam } from "../seams/guest_ram.js";
import { SbiFirmware, type SbiHart } from "../firmware/sbi.js";
import { VirtualClock } from "./clock.js";
import { VcpuPacer } from "./pacing.js";
import { BlockCache } from "../cpu/jit/block_cache.js";
import { warmUpInterpreter } from "../cpu/interpreter_warm_up.js";
import type { CodeShootdown, ShootdownTarget } from "../cpu/jit/code_shootdown.js";
import type { JitProfile } from "../cpu/jit/jit_profile.js";
import type { CompileChannel } from "../cpu/jit/compile_service.js";
import {
  HartControl, HartFigure, HartWord, JIT_FIGURES, MAILBOX_IDLE, MAILBOX_REPLY, MAILBOX_REQUEST, RUNNING, STOPPED, VmControl, VmWord,
} from "./vcpu_control.js";

export interface VcpuWorkerData {
  entry?: string;
  hartId: number;
  ramBase: number;
  ramSize: number;
  ramMemory: WebAssembly.Memory;
  /** The dirty log every thread marks (seams/guest_ram.ts). */
  ramDirty: SharedArrayBuffer;
  /** A lazy restore's pages, loaded on first touch from this thread too. */
  lazyPages?: LazyPagesShared;
  clock: SharedArrayBuffer;
  vm: SharedArrayBuffer;
  harts: SharedArrayBuffer[];
  state: HartState;
  /** Instructions per run() between looks at the control block. */
  quantum: number;
  /** On the JIT tier: the VM's shootdown words (code_shootdown.ts) and the profile of earlier runs. */
  jit?: { shootdown: SharedArrayBuffer; profile?: JitProfile; compiler: CompileChannel };
  /** Warm the interpreter up first (not before a restore or an incoming migration, whose figure of merit is time to running). */
  warmUp?: boolean;
}

/** What a vCPU worker tells the device thread, besides MMIO exits. */
export type VcpuWorkerMessage =
  | { type: "console"; bytes: Uint8Array }
  | { type: "system-reset"; kind: "shutdown" | "reboot"; exitCode: number }
  | { type: "crash"; message: string; pc: number };

/** Lines other threads drive: MSIP and MTIP (the CLINT), SEIP and MEIP (the PLIC). */
const EXT_BITS = [IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_M_EXT];
const EXT_MASK = EXT_BITS.reduce((m, bit) => m | (1 << bit), 0);
/** Longest sleep without a look at the inputs: a missed notify can cost no more than this. */
const MAX_SLEEP_MS = 50;
/** How often the trap counts are copied out for query-stats. */
const PUBLISH_MS = 50;
/**
 * Fault injection for the crash-handling test: NODEVISOR_INJECT_FAULT=vcpu makes a vCPU thread
 * throw at its first SBI call, as a VMM bug would.
 */
const INJECT_FAULT = process.env.NODEVISOR_INJECT_FAULT === "vcpu";

/** Another hart, as the firmware on this thread drives it: every effect is a control-block write. */
class RemoteHart implements SbiHart {
  privilege: 0 | 1 | 3 = 1;
  waiting = false;
  stimecmp = Infinity;

  constructor(
    readonly hartId: number,
    private readonly control: HartControl,
    private readonly local: VcpuThread,
  ) {}

  get stopped(): boolean {
    return this.control.stopped;
  }

  set stopped(_v: boolean) {
    // Only a hart stops itself; a start is requestStart() below.
  }

  getX(): bigint {
    throw new Error(`hart ${this.hartId}'s registers live on its own thread`);
  }

  setX(): void {
    throw new Error(`hart ${this.hartId}'s registers live on its own thread`);
  }

  setInterruptPending(bit: number, level: boolean): void {
    if (bit === IRQ_S_SOFT && level) this.control.raiseSoftwareInterrupt();
  }

  enterSupervisorBoot(pc: number, _a0: bigint, a1: bigint): void {
    this.control.requestStart(pc, a1);
  }

  flushTlb(): void {
    this.local.remoteFence(this.control);
  }

  flushIcache(): void {
    this.local.remoteFence(this.control);
  }
}

class VcpuThread {
  private readonly hart: Hart;
  private readonly self: HartControl;
  private readonly vm: VmControl;
  private readonly clock: VirtualClock;
  private readonly sbi: SbiFirmware;
  private readonly w: Int32Array;
  private readonly fig: Float64Array;
  private readonly pacer: VcpuPacer;
  /** The external levels the hart holds now (a restored hart starts with its saved ones). */
  private extLevels = 0;
  private fenceApplied = 0;
  private runMs = 0;
  private lastPublish = 0;
  /** This thread's code cache on the JIT tier, else null. */
  private readonly jit: BlockCache | null = null;
  private readonly shootdown: CodeShootdown | null = null;
  /** What other threads' announcements drop: this hart's write-TLB entries. */
  private readonly writeMappings: ShootdownTarget;

  constructor(private readonly d: VcpuWorkerData) {
    this.clock = new VirtualClock(d.clock);
    // The interpreter's type feedback before the guest's (interpreter_warm_up.ts): this isolate has its own.
    if (d.warmUp === true) warmUpInterpreter(this.clock, d.jit !== undefined);
    const ram = new GuestRam(d.ramBase, d.ramSize, d.ramMemory, d.ramDirty);
    if (d.lazyPages !== undefined) attachLazyPages(ram, d.lazyPages);
    // No in-vCPU devices: on this thread every device access, the PLIC's too, is an MMIO exit.
    // The hart runs in its state block above RAM: the board's hart object on the device thread
    // reads the same block while this one is parked (hart_layout.ts).
    this.hart = new Hart({ hartId: d.hartId, ram, vcpuDevices: new Bus(), time: this.clock, stateBlock: true });
    this.hart.restore(d.state);
    this.hart.sbiExits = true;
    this.hart.hostFences = true; // the other harts run on other threads: FENCE orders this thread against theirs
    const hart = this.hart;
    this.writeMappings = { dropWriteMappings: (p) => hart.dropWriteMappings(p), dropAllWriteMappings: () => hart.flushTlb() };
    if (d.jit !== undefined) {
      this.jit = new BlockCache(ram, { background: true, profile: d.jit.profile, thread: d.hartId, shootdown: d.jit.shootdown, compiler: d.jit.compiler });
      hart.useJit(this.jit);
      this.shootdown = this.jit.shootdown;
      this.shootdown!.unpark(this.writeMappings);
    }
    this.extLevels = this.hart.mip() & EXT_MASK;
    this.vm = new VmControl(d.vm);
    const controls = d.harts.map((s) => new HartControl(s));
    this.self = controls[d.hartId]!;
    this.w = this.self.words;
    this.fig = this.self.figures;
    // From what was answered, not what was asked: a fence asked before this thread started (a
    // snapshot of a VM whose workers are still loading) must be answered, or its asker waits forever.
    this.fenceApplied = Atomics.load(this.w, HartWord.FENCE_DONE);
    const harts: SbiHart[] = controls.map((c, i) => (i === d.hartId ? this.hart : new RemoteHart(i, c, this)));
    this.sbi = new SbiFirmware({
      harts,
      ram,
      consoleWrite: (bytes) => post({ type: "console", bytes: bytes.slice() }),
      onSystemReset: (kind, exitCode) => {
        post({ type: "system-reset", kind, exitCode });
        this.hart.stopped = true;
      },
    });
    this.pacer = new VcpuPacer(1, 1, { now: () => performance.now(), cpuMs: () => this.runMs });
  }

  run(): void {
    const hart = this.hart;
    while (!this.vm.stopping) {
      if (this.vm.paused) {
        this.park();
        continue;
      }
      this.takeInputs();
      if (hart.stopped) {
        this.publishStopped();
        this.sleep(Infinity);
        this.takeStart();
        continue;
      }
      const cap = this.vm.capPercent;
      if (cap !== this.pacer.cap) this.pacer.setCap(cap);
      this.pacer.sliceStarted();
      this.shootdown?.catchUp(this.writeMappings); // pages other threads compiled: no store of this hart may skip translate() there
      const t0 = performance.now();
      const n = hart.run(this.d.quantum);
      const t1 = performance.now();
      this.runMs += t1 - t0;
      this.fig[HartFigure.INSTRET] += n;
      switch (hart.exit.reason) {
        case EXIT_MMIO:
          this.fig[HartFigure.MMIO_EXITS]++;
          this.mmio();
          break;
        case EXIT_SBI:
          if (INJECT_FAULT) throw new Error("fault injected by NODEVISOR_INJECT_FAULT=vcpu");
          this.fig[HartFigure.SBI_EXITS]++;
          this.sbi.handle(hart);
          hart.completeSbi();
          this.fig[HartFigure.INSTRET]++;
          if (hart.stopped) this.publishStopped();
          break;
        case EXIT_WFI: {
          this.takeInputs();
          if (!hart.waiting) break;
          const until = hart.stimecmp === Infinity ? Infinity : this.clock.msUntil(hart.stimecmp);
          const slept = performance.now();
          this.sleep(until);
          this.fig[HartFigure.IDLE_MS] += performance.now() - slept;
          if (hart.stimecmp <= this.clock.now()) hart.setInterruptPending(IRQ_S_TIMER, true);
          break;
        }
        case EXIT_STOPPED:
          this.publishStopped();
          break;
        default:
          break;
      }
      const hold = this.pacer.sliceEnded();
      if (hold >= 1) this.hold(hold);
      if (t1 - this.lastPublish >= PUBLISH_MS) this.publish(t1);
    }
    this.publish(performance.now());
    this.shootdown?.park(); // gone: other threads' compiles do not wait for it
    this.jit?.close();
  }

  /** Atomics.wait, parked for the JIT's shootdown meanwhile (no guest store runs while this thread waits). */
  private wait(words: Int32Array, index: number, value: number, ms: number): void {
    const sd = this.shootdown;
    if (sd === null) { Atomics.wait(words, index, value, ms); return; }
    sd.park();
    Atomics.wait(words, index, value, ms);
    sd.unpark(this.writeMappings);
  }

  /** Applies what other threads asked since the last look: interrupt levels, IPIs, fences. */
  private takeInputs(): void {
    const w = this.w;
    const ext = Atomics.load(w, HartWord.EXT_LEVELS);
    if (ext !== this.extLevels) {
      for (const bit of EXT_BITS) {
        const m = 1 << bit;
        if ((ext & m) !== (this.extLevels & m)) this.hart.setInterruptPending(bit, (ext & m) !== 0);
      }
      this.extLevels = ext;
    }
    if (w[HartWord.SSIP] !== 0 && Atomics.exchange(w, HartWord.SSIP, 0) !== 0) this.hart.setInterruptPending(IRQ_S_SOFT, true);
    this.applyFences();
  }

  private applyFences(): void {
    const requested = Atomics.load(this.w, HartWord.FENCE_REQUESTED);
    if (requested === this.fenceApplied) return;
    this.hart.flushTlb();
    this.hart.flushIcache();
    this.fenceApplied = requested;
    Atomics.store(this.w, HartWord.FENCE_DONE, requested);
    Atomics.notify(this.w, HartWord.FENCE_DONE);
  }

  /**
   * Remote SFENCE.VMA / FENCE.I: returns once the target flushed (SBI's RFENCE completes before
   * the call returns). Meanwhile this hart keeps answering fences asked of it, so two harts that
   * fence each other never deadlock.
   */
  remoteFence(target: HartControl): void {
    const n = target.requestFence();
    while (!target.fenceDone(n)) {
      if (target.stopped || this.vm.stopping) return; // a stopped hart flushes when it starts
      this.applyFences();
      this.wait(target.words, HartWord.FENCE_DONE, Atomics.load(target.words, HartWord.FENCE_DONE), 1);
    }
  }

  /** Hands the MMIO exit to the device thread and blocks until it answers. */
  private mmio(): void {
    const e = this.hart.exit;
    const w = this.w;
    w[HartWord.MB_ADDR_LO] = e.mmioAddr % 2 ** 32 | 0;
    w[HartWord.MB_ADDR_HI] = Math.floor(e.mmioAddr / 2 ** 32);
    w[HartWord.MB_SIZE] = e.mmioSize;
    w[HartWord.MB_WRITE] = e.mmioWrite ? 1 : 0;
    w[HartWord.MB_VALUE_LO] = e.mmioValueLo;
    w[HartWord.MB_VALUE_HI] = e.mmioValueHi;
    Atomics.store(w, HartWord.MB_STATE, MAILBOX_REQUEST);
    Atomics.notify(w, HartWord.MB_STATE);
    while (Atomics.load(w, HartWord.MB_STATE) !== MAILBOX_REPLY) {
      if (this.vm.stopping) return;
      this.applyFences();
      this.wait(w, HartWord.MB_STATE, MAILBOX_REQUEST, MAX_SLEEP_MS);
    }
    const fault = w[HartWord.MB_FAULT] !== 0;
    const lo = w[HartWord.MB_VALUE_LO]!;
    const hi = w[HartWord.MB_VALUE_HI]!;
    Atomics.store(w, HartWord.MB_STATE, MAILBOX_IDLE);
    this.fig[HartFigure.INSTRET] += this.hart.completeMmio(lo, hi, fault); // retires here: a pause may park the hart next
    this.takeInputs(); // a device access (a PLIC claim, above all) changes interrupt levels
  }

  /** Sleeps until an input changes or `ms` passes (bounded, so a lost notify costs little). */
  private sleep(ms: number): void {
    const seq = Atomics.load(this.w, HartWord.WAKE);
    this.takeInputs();
    if (this.vm.stopping || this.vm.paused) return;
    if (!this.hart.stopped && !this.hart.waiting) return;
    if (this.hart.stopped && Atomics.load(this.w, HartWord.START_PENDING) !== 0) return;
    if (ms <= 0) return;
    this.wait(this.w, HartWord.WAKE, seq, Math.min(ms, MAX_SLEEP_MS));
  }

  private takeStart(): void {
    const w = this.w;
    if (Atomics.exchange(w, HartWord.START_PENDING, 0) === 0) return;
    const pc = (w[HartWord.START_PC_LO]! >>> 0) + w[HartWord.START_PC_HI]! * 2 ** 32;
    const a1 = (BigInt(w[HartWord.START_A1_HI]!) << 32n) | BigInt(w[HartWord.START_A1_LO]! >>> 0);
    this.hart.enterSupervisorBoot(pc, BigInt(this.d.hartId), a1);
    this.hart.stimecmp = Infinity;
    Atomics.store(w, HartWord.RUN_STATE, RUNNING);
  }

  private publishStopped(): void {
    if (Atomics.load(this.w, HartWord.START_PENDING) === 0) Atomics.store(this.w, HartWord.RUN_STATE, STOPPED);
  }

  /**
   * Paused: count this hart as parked and wait for resume (still answering fences). While it is
   * parked, the device thread reads its state block (snapshots): nothing here writes it.
   */
  private park(): void {
    this.publish(performance.now());
    Atomics.add(this.vm.words, VmWord.PARKED, 1);
    Atomics.notify(this.vm.words, VmWord.PARKED);
    while (this.vm.paused && !this.vm.stopping) {
      const seq = Atomics.load(this.w, HartWord.WAKE);
      this.applyFences();
      if (!this.vm.paused) break;
      this.wait(this.w, HartWord.WAKE, seq, MAX_SLEEP_MS);
    }
    Atomics.sub(this.vm.words, VmWord.PARKED, 1);
  }

  /** The CPU cap holds this vCPU back: wait, but wake for pause and stop. */
  private hold(ms: number): void {
    const start = performance.now();
    this.pacer.holdStarted();
    // A new cap ends the hold (it was sized for the old one): the next slice sizes it anew.
    while (!this.vm.stopping && !this.vm.paused && this.vm.capPercent === this.pacer.cap) {
      const left = ms - (performance.now() - start);
      if (left <= 0) break;
      const seq = Atomics.load(this.w, HartWord.WAKE);
      this.applyFences();
      this.wait(this.w, HartWord.WAKE, seq, Math.min(left, MAX_SLEEP_MS));
    }
    this.pacer.holdEnded();
    this.fig[HartFigure.THROTTLED_MS] = this.pacer.stats().throttledMs;
  }

  pc(): number {
    return this.hart.getPc();
  }

  private publish(now: number): void {
    this.lastPublish = now;
    const fig = this.fig;
    fig[HartFigure.RUN_MS] = this.runMs;
    fig[HartFigure.PC] = this.hart.getPc();
    if (this.jit !== null) JIT_FIGURES.forEach((key, i) => { fig[HartFigure.JIT + i] = this.jit!.stats[key]; });
    for (const [key, n] of this.hart.stats.trapsByCause) {
      const [kind, cause] = key.split(":");
      fig[HartFigure.TRAPS + (kind === "interrupt" ? 32 : 0) + Number(cause)] = n;
    }
  }
}

function post(m: VcpuWorkerMessage): void {
  parentPort!.postMessage(m);
}

let thread: VcpuThread | null = null;
try {
  thread = new VcpuThread(workerData as VcpuWorkerData);
  thread.run();
} catch (e) {
  post({ type: "crash", message: (e as Error)?.stack ?? String(e), pc: thread?.pc() ?? NaN });
}
