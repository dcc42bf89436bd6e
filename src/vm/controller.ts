// What the control socket (and the CLI) may ask of a running VM. The VM process implements
// this; the control server translates JSON-lines requests into calls on it. This interface,
// not the VM's internals, is what the daemon will depend on.

import type { NicLimits } from "../net/shaper.js";
import type { LatencySnapshot } from "../devices/virtio/block/latency.js";
import type { PlicView } from "../devices/plic.js";
import type { Uart16550 } from "../devices/uart16550.js";
import type { Hart } from "../cpu/hart.js";

/** "inmigrate": a `run --restore-wait` process that has no VM until snapshot-load (QEMU's name for it). */
export type VmRunState = "inmigrate" | "starting" | "running" | "paused" | "shutdown" | "crashed";

export interface VmStatus {
  state: VmRunState;
  /** Set once the VM has stopped: the guest's exit code (test device / SBI reset / command status). */
  exitCode: number | null;
  /** Why the VM stopped ("poweroff", "reset", "quit", "guest-panic", "error"), when it has. */
  reason: string | null;
  uptimeMs: number;
  vcpus: number;
  memoryBytes: number;
}

export interface DeviceStats {
  name: string;
  kind: string;
  requests: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
  /** Device-specific counters (virtio-net: packets, bytes, drops by reason, link state). */
  counters?: Record<string, number>;
  /** Disks: requests on the backend now and at most so far. */
  queueDepth?: { current: number; max: number };
  /** Disks: request latency from leaving the ring to completing, as a histogram. */
  latency?: LatencySnapshot;
}

export interface VmStats {
  instructionsRetired: number;
  /** Guest instructions per second over the last sampling window, in millions. */
  mips: number;
  /** Wall time all vCPUs spent parked in WFI since start. */
  idleMs: number;
  /** Traps taken by the guest, keyed by cause name (e.g. "ecall-from-s", "load-page-fault", "supervisor-timer"). */
  trapsByCause: Record<string, number>;
  devices: DeviceStats[];
  /** Host CPU time the vCPUs ran (src/vm/pacing.ts). */
  cpuMs?: number;
  /** Time the vCPUs wanted to run but were held back by the cap or by host contention. */
  stealMs?: number;
  /** The part of stealMs due to the CPU cap. */
  throttledMs?: number;
  /** The CPU cap in per cent of a core per vCPU; null when uncapped. */
  cpuCap?: number | null;
  /** Guest RAM the host has backed with pages (what the guest touched); null when unknown. */
  memoryTouchedBytes?: number | null;
  /** The execution tier: "interp", or "jit" (then `jit` holds its figures). */
  cpuTier?: "interp" | "jit";
  jit?: JitStatsReport;
  /** The memory balloon: target, size, guest statistics, pages reported and returned. */
  balloon?: BalloonInfo;
}

/** The JIT's code cache (src/cpu/jit/block_cache.ts), as query-stats reports it. */
export interface JitStatsReport {
  /** Guest blocks with live compiled code, and the wasm bytes of their modules. */
  blocks: number;
  codeBytes: number;
  /** Modules compiled since start (a page's first compile, then batches of missed entries) and the vCPU thread's time on them (V8 compiles in the background). */
  compiles: number;
  compileMs: number;
  /** Background compiles dropped on arrival because their page was written meanwhile. */
  staleCompiles: number;
  /** Modules answered with one the compile thread kept: another vCPU thread's of the same page bytes, or an earlier one of them. */
  reusedCompiles: number;
  /** Pages whose code was dropped because the guest or a device wrote them; whole-cache flushes. */
  invalidations: number;
  flushes: number;
  /** Instructions retired in compiled code, and their share of all instructions retired. */
  instructionsCompiled: number;
  compiledShare: number;
  /** Instructions compiled code handed to the interpreter; entries into compiled pages that had no block there. */
  handBacks: number;
  missedEntries: number;
  /** Most blocks the cache keeps before it flushes everything. */
  maxBlocks: number;
}

/** The balloon as query-balloon and query-stats report it (sizes in bytes). */
export interface BalloonInfo {
  /** QMP's meaning: the guest's memory size now, RAM minus the balloon. */
  actual: number;
  /** The guest memory size asked for (RAM minus the balloon's target). */
  target: number;
  /** Bytes in the balloon now, counted by the device from the pages the guest really gave up. */
  balloonBytes: number;
  balloonTargetBytes: number;
  /** What the guest driver says it holds (its `actual` config field); trust balloonBytes instead. */
  guestReportedBalloonBytes: number;
  /** False until the guest's driver has set the device up. */
  driverReady: boolean;
  reporting: boolean;
  deflateOnOom: boolean;
  statsIntervalSec: number;
  floorBytes: number;
  /** "madvise": returned pages leave the process's resident memory; "accounting": they are only counted (reclaimProblem says why). */
  reclaim: "madvise" | "accounting";
  reclaimProblem: string | null;
  pagesInflated: number;
  pagesDeflated: number;
  pagesDeflatedOnOom: number;
  pagesReported: number;
  /** Pages given back to the host OS (inflated or reported); with accounting reclaim, counted only. */
  pagesReturned: number;
  /** Guest input ignored: PFNs outside RAM, twice inflated, unknown deflates, ranges reported twice, statistics floods. */
  ignored: Record<string, number>;
  /** The guest's own figures (bytes, except fault counts) and when it sent them (ms since the epoch). */
  guestStats: { updatedAt: number | null; values: Record<string, number> };
}

/** Run-time limits for one disk: rates per second; 0 or absent means unlimited. */
export interface DiskLimits {
  bps?: number;
  iops?: number;
  burst?: number;
}

import type { MigrationParameters, MigrationStatus } from "./migration/outgoing.js";

export interface VmEvent {
  event: string;
  data?: Record<string, unknown>;
}

/** query-interrupts: a moment's view of the interrupt path, not taken at an instruction boundary. */
export interface InterruptsReport {
  plic: PlicView;
  uart: ReturnType<Uart16550["describe"]>;
  harts: Array<ReturnType<Hart["describeInterrupts"]> & { externalLevels?: string; softwareInterruptWaiting?: boolean }>;
}

export interface VmController {
  status(): VmStatus;
  stats(): VmStats;
  pause(): void;
  resume(): void;
  /** Ask the guest to shut down (ACPI-style power button: the guest decides). */
  powerdown(): void;
  /** Stop now, without asking the guest. */
  quit(): void;
  /** Bytes typed into the guest's serial console; returns how many were accepted (input waiting is bounded). */
  consoleWrite(data: Uint8Array): number;
  /** Caps each vCPU at `capPercent` of a host core (null: no cap); takes effect at once. */
  setCpuLimits?(capPercent: number | null): void;
  /** Replaces the rate limits of disk `index` (0 = vda); throws RangeError for a disk that does not exist. */
  setDiskLimits?(index: number, limits: DiskLimits): void;
  /** Tells the guest the console terminal's size (rows x columns). */
  consoleResize?(rows: number, cols: number): void;
  /** Pulls or plugs the virtual cable of a NIC ("net0", ...); absent on VMs without networking support. */
  setLink?(nic: string, up: boolean): void;
  /** Replaces a NIC's rate limits at run time. */
  setNetLimits?(nic: string, limits: NicLimits): void;
  /** Sets the guest's memory size (QMP balloon `value`, bytes); throws ConfigError for a size outside floor..RAM. */
  setBalloonTarget?(bytes: number): void;
  balloonInfo?(): BalloonInfo;
  /** How often the guest is asked for its memory statistics (seconds; 0: never). */
  setBalloonStatsInterval?(seconds: number): void;
  /** Writes a snapshot of the running (or paused) VM to `path` (docs/snapshots.md). */
  saveSnapshot?(path: string): Promise<{ path: string; bytes: number; ramPages: number; pausedMs: number }>;
  /** Live migration (docs/migration.md): starts it, copying the disks along with `blk`; its progress comes from queryMigration(). */
  migrate?(uri: string, opts?: { blk?: boolean }): void;
  /** A `run --restore-wait` process: restores the snapshot at `path`; resolves once the guest runs. */
  loadSnapshot?(path: string): Promise<{ path: string; loadMs: number }>;
  queryMigration?(): MigrationStatus;
  cancelMigration?(): void;
  setMigrationParameters?(p: Partial<MigrationParameters>): MigrationParameters;
  /** The interrupt path as it is now (PLIC, UART, each hart's pending and enabled bits): for a guest that seems to wait for an interrupt. */
  interrupts?(): InterruptsReport;
  /** Subscribe to serial console output; returns an unsubscribe function. */
  onConsoleOutput(listener: (data: Uint8Array) => void): () => void;
  /** Subscribe to lifecycle events (STOP, RESUME, SHUTDOWN, ...); returns an unsubscribe function. */
  onEvent(listener: (e: VmEvent) => void): () => void;
}
