// The daemon's heart: keeps the inventory and the VM processes in step. Every call on one VM
// runs under that VM's lock; the VM processes are driven only through their control sockets.

import { EventEmitter } from "node:events";
import { rmSync } from "node:fs";
import type { VmStats } from "../vm/controller.js";
import type { MigrationStatus } from "../vm/migration/outgoing.js";
import type { SnapshotResult } from "../vm/snapshot/vm_snapshot.js";
import { ControlCommandError } from "../vm/control_client.js";
import { admit, promised, type Allocation, type HostCapacity } from "./admission.js";
import { capsFromShares } from "./cpu_policy.js";
import { freemem } from "node:os";
import { formatSize } from "../storage/sizes.js";
import { changeOver, planBalloons, trimReadings, type MemoryPolicySettings, type Reading, type VmMemoryView } from "./memory_policy.js";
import { conflict, illegalTransition, invalid, notFound, vmFailed, ApiError } from "./errors.js";
import { KeyedMutex } from "./keyed_mutex.js";
import { vmPaths, type HostPaths } from "./paths.js";
import { checkSpec, withDefaults, type VmSpec } from "./spec.js";
import type { EventRecord, InventoryStore, ObservedState, VmRecord } from "./store.js";
import { VmStateOps } from "./vm_state_ops.js";
import { isAlive, truncateLogIfLarge, VmProcess, type VmCommand, type VmExitInfo } from "./vm_process.js";
import { checkRestorePatch, restoredSpec, restoreOverlay } from "./vm_state.js";

export type VmAction = "start" | "stop" | "kill" | "reboot" | "pause" | "resume";
export const VM_ACTIONS: readonly VmAction[] = ["start", "stop", "kill", "reboot", "pause", "resume"];

export interface VmManagerOptions {
  store: InventoryStore;
  paths: HostPaths;
  capacity: HostCapacity;
  command: VmCommand;
  /** Makes sure a guest image exists before a VM that needs it starts (builds the default one). */
  ensureImage?: (spec: VmSpec) => Promise<void>;
  log?: (message: string) => void;
  /** How long `stop` waits for the guest to power off before killing it. */
  stopTimeoutMs?: number;
  restartBackoffMs?: { first: number; max: number };
  /** Console and VMM logs are rotated past this size. */
  maxLogBytes?: number;
  /** The memory policy and the floor of balloon targets (defaults: DEFAULT_MEMORY_POLICY). */
  memoryPolicy?: Partial<MemoryPolicySettings>;
}

const MiB = 2 ** 20;
export const DEFAULT_MEMORY_POLICY: MemoryPolicySettings = { enabled: true, lowWatermarkBytes: 256 * MiB, highWatermarkBytes: 512 * MiB, floorBytes: 128 * MiB };
/** A guest whose available memory fell within this window is growing (memory_policy.ts). */
const GROWTH_WINDOW_MS = 20_000;
/** Guest statistics further apart than this leave the guest's growth unknown (it is asked every second). */
const READING_GAP_MS = 10_000;
/** How often a daemon-run VM's guest is asked for its memory statistics (seconds). */
const STATS_INTERVAL_SEC = 1;

/** A VM as the API shows it. */
export interface VmView {
  name: string;
  spec: VmSpec;
  desired: VmRecord["desired"];
  state: ObservedState;
  pid: number | null;
  restarts: number;
  lastExit: string | null;
  /** The cap the daemon applies now (the user's cap, or less when VMs contend); null: none. */
  effectiveCpuCap: number | null;
  /** The live migration under way or last run while this daemon watched (out: this VM leaves; in: it arrives). */
  migration: MigrationView | null;
  /** Where the VM went by live migration; it does not start here while set. */
  migratedTo: string | null;
  /** The snapshot it was restored from, once the restore ran. */
  restoredFrom: string | null;
  createdAt: string;
  updatedAt: string;
}

export type MigrationParams = { downtimeLimitMs?: number; maxBandwidth?: number; copyDisks?: boolean };
export type MigrationView = { direction: "out" | "in"; uri: string } & Omit<MigrationStatus, "uri" | "status"> & { status: MigrationStatus["status"] | "waiting" };

/** What the poller last measured for a running VM. */
export interface VmSample {
  at: number;
  stats: VmStats;
  /** Host cores used over the last interval. */
  cpuCores: number;
  /** Host cores the VM wanted (used + steal: held back by its cap or by host contention). */
  wantedCores: number;
}

export const ACTIVE: readonly ObservedState[] = ["starting", "running", "paused", "stopping", "incoming"];
const QUIT_GRACE_MS = 3000;
export const COMMAND_TIMEOUT_MS = 5000;
/** A VM that ran this long before dying starts its backoff afresh. */
const STABLE_RUN_MS = 60_000;

export interface Live {
  proc: VmProcess;
  startedAt: number;
  /** Set when the daemon itself ends the process (stop, kill, reboot): not a death. */
  expectingExit: boolean;
  sentCap: number | null | undefined;
  /** The RAM the VM process was started with (a memoryMiB edit applies at the next start). */
  ramMiB: number;
  /** The guest memory size last sent as a balloon target (bytes); undefined: none sent. */
  sentTarget?: number;
  /** Major faults at the previous sample, and the guest's available memory over the last seconds, to see a guest start faulting or growing. */
  majorFaults?: number;
  availableReadings: Reading[];
}

export class VmManager extends EventEmitter {
  /** @internal */ readonly store: InventoryStore;
  /** @internal */ readonly paths: HostPaths;
  readonly capacity: HostCapacity;
  /** @internal */ readonly command: VmCommand;
  private readonly ensureImage: (spec: VmSpec) => Promise<void>;
  private readonly log: (m: string) => void;
  private readonly stopTimeoutMs: number;
  private readonly backoff: { first: number; max: number };
  private readonly maxLogBytes: number;
  /** @internal */ readonly locks = new KeyedMutex();
  /** @internal */ readonly live = new Map<string, Live>();
  private readonly samples = new Map<string, VmSample>();
  private readonly failures = new Map<string, number>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly state = new VmStateOps(this);
  /** Allocations of exec VMs, which are not in the inventory. */
  private readonly transient = new Set<Allocation>();
  private poller: NodeJS.Timeout | null = null;
  private closed = false;
  readonly memoryPolicy: MemoryPolicySettings;

  constructor(o: VmManagerOptions) {
    super();
    this.store = o.store;
    this.paths = o.paths;
    this.capacity = o.capacity;
    this.command = o.command;
    this.ensureImage = o.ensureImage ?? (async () => {});
    this.log = o.log ?? (() => {});
    this.memoryPolicy = { ...DEFAULT_MEMORY_POLICY, ...o.memoryPolicy };
    this.stopTimeoutMs = o.stopTimeoutMs ?? 30_000;
    this.backoff = o.restartBackoffMs ?? { first: 1000, max: 30_000 };
    this.maxLogBytes = o.maxLogBytes ?? 16 * 2 ** 20;
  }

  /** Finds VMs that kept running while no daemon watched them, applies restart policies, starts autostart VMs. */
  async recover(): Promise<void> {
    const records = this.store.listVms();
    await Promise.all(
      records.map((r) =>
        this.locks.run(r.spec.name, async () => {
          if (!ACTIVE.includes(r.observed) && r.pid === null) return;
          const proc = await VmProcess.adopt(vmPaths(this.paths, r.spec.name));
          if (proc !== null) {
            const status = await withTimeout(proc.client.execute<{ state: string; memoryBytes?: number }>("query-status"), COMMAND_TIMEOUT_MS).catch(() => null);
            // A VM too busy to answer in time keeps the state the inventory last saw.
            const state = status?.state ?? r.observed;
            const observed: ObservedState = state === "paused" ? "paused" : "running";
            this.attach(r.spec.name, proc, Date.now(), status?.memoryBytes ? Math.round(status.memoryBytes / MiB) : r.spec.memoryMiB);
            this.update(r.spec.name, { observed, pid: proc.pid, migratedTo: null });
            if (r.spec.restore !== undefined) this.state.restoreRan(r.spec.name);
            this.event(r.spec.name, "adopted", `VM ${r.spec.name} (pid ${proc.pid}) was found running and is supervised again.`, { pid: proc.pid });
            return;
          }
          if (r.observed === "incoming") {
            // A process still waiting for its migration cannot be found again (it has no control socket yet).
            if (r.pid !== null && isAlive(r.pid)) process.kill(r.pid, "SIGKILL");
            this.update(r.spec.name, { observed: "failed", desired: "stopped", pid: null, lastExit: "the daemon restarted while the VM waited for its migration" });
            this.event(r.spec.name, "receive-failed", `VM ${r.spec.name} no longer waits for a migration: the daemon restarted meanwhile; receive it again.`, {});
            return;
          }
          if (this.state.handedOver(r.spec.name)) {
            this.state.migratedAway(r.spec.name);
            return;
          }
          const info: VmExitInfo = { code: null, signal: null, reason: null, failed: true, message: "the VM process ended while no daemon was watching it" };
          this.afterDeath(r.spec.name, info, 0);
        }),
      ),
    );
    for (const r of this.store.listVms()) {
      if (r.spec.autostart && !ACTIVE.includes(r.observed) && !this.restartTimers.has(r.spec.name)) {
        this.act(r.spec.name, "start").catch((e: Error) => this.log(`Autostart of VM ${r.spec.name} failed: ${e.message}`));
      }
    }
  }

  /** Starts the once-a-second poll: stats, shares → caps, log rotation. */
  startPolling(intervalMs = 1000): void {
    if (this.poller !== null) return;
    this.poller = setInterval(() => void this.poll(), intervalMs);
    this.poller.unref();
  }

  /** Stops supervising; the VMs keep running and the next daemon adopts them. */
  close(): void {
    this.closed = true;
    if (this.poller !== null) clearInterval(this.poller);
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.restartTimers.clear();
    for (const l of this.live.values()) l.proc.client.close();
  }

  list(): VmView[] {
    return this.store.listVms().map((r) => this.view(r));
  }

  get(name: string): VmView {
    return this.view(this.record(name));
  }

  create(input: Partial<VmSpec> & { name: string }): Promise<VmView> {
    return this.locks.run(input.name, async () => {
      if (this.store.getVm(input.name) !== null) throw conflict(`VM ${input.name} already exists; choose another name or delete it first.`);
      const spec = withDefaults(input.restore !== undefined ? await restoredSpec({ ...input, restore: input.restore }) : input);
      checkSpec(spec);
      if (spec.memoryTargetMiB != null) this.checkFloor(spec.name, spec.memoryTargetMiB);
      const now = new Date().toISOString();
      const rec: VmRecord = { spec, desired: "stopped", observed: "stopped", pid: null, restarts: 0, lastExit: null, createdAt: now, updatedAt: now };
      this.store.putVm(rec);
      this.event(spec.name, "created", `VM ${spec.name} was created.`, {});
      return this.view(rec);
    });
  }

  /** Changes the spec. CPU cap, shares and disk rate limits apply to a running VM at once; the rest at its next start. */
  edit(name: string, patch: Partial<VmSpec>): Promise<VmView> {
    return this.locks.run(name, async () => {
      const rec = this.record(name);
      if ("name" in patch && patch.name !== name) throw invalid(`The field "name" cannot change; create a new VM instead.`);
      if ("restore" in patch) throw invalid(`The field "restore" is set when a VM is created; create a new VM to restore a snapshot.`);
      checkRestorePatch(rec.spec, patch);
      const spec: VmSpec = { ...rec.spec, ...patch, name };
      checkSpec(spec);
      if (spec.memoryTargetMiB != null) this.checkFloor(name, spec.memoryTargetMiB);
      const live = this.live.get(name);
      if (live !== undefined && patch.disks !== undefined) {
        if (patch.disks.length !== rec.spec.disks.length || patch.disks.some((d, i) => d.path !== rec.spec.disks[i]!.path)) {
          throw conflict(`VM ${name} is running: its disks can change only their rate limits now; stop it to attach or detach disks.`);
        }
        for (const [i, d] of patch.disks.entries()) {
          const limits: Record<string, number> = { bps: d.bps ?? 0, iops: d.iops ?? 0 };
          if (d.burst) limits.burst = d.burst;
          await this.command_(live, "set-disk-limits", { disk: `vd${String.fromCharCode(0x61 + i)}`, ...limits });
        }
      }
      if (live !== undefined && "memoryTargetMiB" in patch) {
        if (spec.memoryMiB !== live.ramMiB) throw conflict(`VM ${name} is running with ${live.ramMiB} MiB of RAM: a new memoryMiB applies at its next start, so change memoryTargetMiB after restarting it, or within ${live.ramMiB} MiB now.`);
        await this.sendTarget(live, (spec.memoryTargetMiB ?? spec.memoryMiB) * MiB);
      }
      this.update(name, { spec });
      if (live !== undefined && (patch.cpuCap !== undefined || patch.cpuShares !== undefined)) {
        live.sentCap = undefined; // the poller recomputes; a plain cap change is sent now
        await this.applyCaps();
      }
      this.event(name, "edited", `VM ${name} was changed (${Object.keys(patch).join(", ")}).`, { fields: Object.keys(patch) });
      return this.get(name);
    });
  }

  delete(name: string): Promise<void> {
    return this.locks.run(name, async () => {
      const rec = this.record(name);
      if (ACTIVE.includes(rec.observed)) throw illegalTransition(`VM ${name} is ${rec.observed}; stop it before deleting it.`);
      this.cancelRestart(name);
      this.store.deleteVm(name);
      this.samples.delete(name);
      this.state.migrations.delete(name);
      rmSync(vmPaths(this.paths, name).dir, { recursive: true, force: true });
      this.event(name, "deleted", `VM ${name} was deleted.`, {});
    });
  }

  act(name: string, action: VmAction, opts: { timeoutMs?: number } = {}): Promise<VmView> {
    return this.locks.run(name, async () => {
      const rec = this.record(name);
      if (rec.observed === "incoming" && (action === "stop" || action === "kill")) {
        this.state.cancelReceive(name);
        return this.get(name);
      }
      if (action !== "start") this.state.refuseWhileMigrating(name, action);
      switch (action) {
        case "start":
          if (ACTIVE.includes(rec.observed)) throw illegalTransition(`VM ${name} is already ${rec.observed === "running" ? "running" : rec.observed}.`);
          this.cancelRestart(name);
          await this.startLocked(name, false);
          break;
        case "stop":
          if (this.cancelPendingRestart(rec)) break;
          this.requireLive(rec, "stop");
          await this.stopLocked(name, opts.timeoutMs ?? this.stopTimeoutMs);
          break;
        case "kill":
          if (this.cancelPendingRestart(rec)) break;
          this.requireLive(rec, "kill");
          await this.killLocked(name);
          this.update(name, { desired: "stopped", observed: "stopped", pid: null, lastExit: "killed through the API" });
          this.event(name, "killed", `VM ${name} was killed.`, {});
          break;
        case "reboot": {
          this.requireLive(rec, "reboot");
          await this.killLocked(name);
          this.update(name, { observed: "stopped", pid: null });
          await this.startLocked(name, false);
          this.event(name, "rebooted", `VM ${name} was rebooted.`, {});
          break;
        }
        case "pause": {
          if (rec.observed === "paused") throw illegalTransition(`VM ${name} is already paused.`);
          if (rec.observed !== "running") throw illegalTransition(`VM ${name} is ${rec.observed}; only a running VM can be paused.`);
          await this.command_(this.liveOf(name), "pause");
          this.update(name, { desired: "paused", observed: "paused" });
          this.event(name, "paused", `VM ${name} was paused.`, {});
          break;
        }
        case "resume": {
          if (rec.observed !== "paused") throw illegalTransition(`VM ${name} is ${rec.observed === "running" ? "already running" : rec.observed}; only a paused VM can be resumed.`);
          await this.command_(this.liveOf(name), "resume");
          this.update(name, { desired: "running", observed: "running" });
          this.event(name, "resumed", `VM ${name} was resumed.`, {});
          break;
        }
        default: {
          const never: never = action;
          throw invalid(`Unknown action "${never as string}".`);
        }
      }
      return this.get(name);
    });
  }

  /** Fresh counters from the VM process. */
  async stats(name: string): Promise<VmStats> {
    const rec = this.record(name);
    const live = this.live.get(name);
    if (live === undefined) throw illegalTransition(`VM ${name} is ${rec.observed}; statistics exist only while it runs.`);
    return this.command_<VmStats>(live, "query-stats");
  }

  sample(name: string): VmSample | null {
    return this.samples.get(name) ?? null;
  }

  /** The running VM's process, for the console; null when it is not running. */
  processOf(name: string): VmProcess | null {
    this.record(name);
    return this.live.get(name)?.proc ?? null;
  }

  /** What is promised to the VMs that run now (and exec VMs). */
  promised(exclude?: string): Allocation {
    const active = this.store
      .listVms()
      .filter((r) => ACTIVE.includes(r.observed) && r.spec.name !== exclude)
      .map((r) => ({ vcpus: r.spec.vcpus, memoryBytes: r.spec.memoryMiB * 2 ** 20 }));
    return promised([...active, ...this.transient]);
  }

  /** Reserves room for a VM that is not in the inventory (exec); call the returned function to release it. */
  reserve(ask: Allocation): () => void {
    admit(this.capacity, this.promised(), ask);
    const held = { ...ask };
    this.transient.add(held);
    return () => this.transient.delete(held);
  }

  events(afterSeq: number, limit: number, vm?: string): EventRecord[] {
    return this.store.listEvents(afterSeq, limit, vm);
  }

  /** A live snapshot through the control socket; the spec's disks follow the VM onto its new overlays. */
  snapshot(name: string, path: string): Promise<SnapshotResult> {
    return this.state.snapshot(name, path);
  }

  /** Starts a live migration to `uri` (a `vm receive` elsewhere) and follows it; GET shows its progress. */
  migrate(name: string, uri: string, params: MigrationParams = {}): Promise<VmView> {
    return this.state.migrate(name, uri, params);
  }

  /** Calls off the migration under way; the guest runs on here. */
  migrateCancel(name: string): Promise<VmView> {
    return this.state.migrateCancel(name);
  }

  /** Waits for a VM migrated from elsewhere (state `incoming`); it runs once the migration arrives. */
  receive(input: Partial<VmSpec> & { name: string }, listen: string, arrivalTimeoutMs: number): Promise<VmView> {
    return this.state.receive(input, listen, arrivalTimeoutMs);
  }

  /** @internal */
  record(name: string): VmRecord {
    const r = this.store.getVm(name);
    if (r === null) throw notFound(`VM ${name} does not exist; \`nodevisor vm list\` shows the VMs.`);
    return r;
  }

  private view(r: VmRecord): VmView {
    const live = this.live.get(r.spec.name);
    const effective = live?.sentCap;
    return {
      name: r.spec.name,
      spec: r.spec,
      desired: r.desired,
      state: r.observed,
      pid: r.pid,
      restarts: r.restarts,
      lastExit: r.lastExit,
      effectiveCpuCap: effective === undefined ? r.spec.cpuCap : effective,
      migration: this.state.migrations.get(r.spec.name) ?? null,
      migratedTo: r.migratedTo ?? null,
      restoredFrom: r.restoredFrom ?? null,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    };
  }

  /** @internal */
  update(name: string, change: Partial<VmRecord>): VmRecord {
    const r = this.record(name);
    const next = { ...r, ...change, updatedAt: new Date().toISOString() };
    this.store.putVm(next);
    return next;
  }

  /** @internal */
  event(vm: string | null, type: string, message: string, data: Record<string, unknown>): void {
    const e = this.store.appendEvent({ vm, type, message, data });
    this.log(message);
    this.emit("event", e);
  }

  /** Stop or kill between a death and its restart: the restart is called off, nothing else to end. */
  private cancelPendingRestart(rec: VmRecord): boolean {
    const name = rec.spec.name;
    if (this.live.has(name) || !this.restartTimers.has(name)) return false;
    this.cancelRestart(name);
    this.update(name, { desired: "stopped" });
    this.event(name, "restart-cancelled", `VM ${name} will not be restarted: it was stopped while waiting for its restart.`, {});
    return true;
  }

  private requireLive(rec: VmRecord, action: string): void {
    if (!ACTIVE.includes(rec.observed) || !this.live.has(rec.spec.name)) {
      throw illegalTransition(`VM ${rec.spec.name} is not running (it is ${rec.observed}); there is nothing to ${action}.`);
    }
  }

  /** @internal */
  liveOf(name: string): Live {
    const l = this.live.get(name);
    if (l === undefined) throw illegalTransition(`VM ${name} is not running.`);
    return l;
  }

  /** @internal */
  async command_<T = unknown>(live: Live, command: string, args?: object, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
    try {
      return await withTimeout(live.proc.client.execute<T>(command, args), timeoutMs);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      // The VM's own refusal (a VM with firmware, a snapshot path it cannot write) is a sentence for the caller.
      if (e instanceof ControlCommandError) throw e.errorClass === "InvalidArgument" ? invalid(e.desc) : conflict(`The VM refused "${command}": ${e.desc}`);
      throw vmFailed(`The VM process did not carry out "${command}": ${(e as Error).message}`);
    }
  }

  /** A balloon target below the host's floor is refused with a sentence (400). */
  private checkFloor(name: string, targetMiB: number): void {
    const floor = this.memoryPolicy.floorBytes;
    if (targetMiB * MiB < floor) {
      throw invalid(`Cannot set VM ${name}'s memory to ${targetMiB} MiB: the host keeps every guest at ${formatSize(floor)} at least (nodevisor daemon --memory-floor); ask for more.`);
    }
  }

  private async sendTarget(live: Live, bytes: number): Promise<void> {
    await this.command_(live, "balloon", { value: bytes });
    live.sentTarget = bytes;
  }

  private async startLocked(name: string, isRestart: boolean): Promise<void> {
    const rec = this.record(name);
    if (rec.migratedTo) {
      throw illegalTransition(`VM ${name} was migrated to ${rec.migratedTo} and runs there on the same disks; delete it here, or migrate it back (\`nodevisor vm receive ${name}\`).`);
    }
    admit(this.capacity, this.promised(name), { vcpus: rec.spec.vcpus, memoryBytes: rec.spec.memoryMiB * 2 ** 20 });
    // A restore that failed before its guest ran may have left overlays; nothing has written to them.
    if (rec.spec.restore !== undefined) rec.spec.disks.forEach((d, i) => d.path === restoreOverlay(rec.spec.restore!, name, `vd${String.fromCharCode(0x61 + i)}`) && rmSync(d.path, { force: true }));
    this.update(name, { desired: "running", observed: "starting", pid: null });
    try {
      await this.ensureImage(rec.spec);
      const balloon = `stats=${STATS_INTERVAL_SEC},floor=${Math.floor(this.memoryPolicy.floorBytes / MiB)}M`;
      const proc = await VmProcess.start({ spec: rec.spec, paths: vmPaths(this.paths, name), command: this.command, balloon });
      this.attach(name, proc, Date.now(), rec.spec.memoryMiB);
      // The device holds the target until the guest's driver comes up and reads it.
      if (rec.spec.memoryTargetMiB != null && rec.spec.memoryTargetMiB < rec.spec.memoryMiB) await this.sendTarget(this.liveOf(name), rec.spec.memoryTargetMiB * MiB);
      const r = this.update(name, { observed: "running", pid: proc.pid, ...(isRestart ? { restarts: rec.restarts + 1 } : {}) });
      this.event(name, isRestart ? "restarted" : "started", `VM ${name} ${isRestart ? `was restarted (restart ${r.restarts})` : "started"} (pid ${proc.pid}).`, { pid: proc.pid });
      if (rec.spec.restore !== undefined) this.state.restoreRan(name);
    } catch (e) {
      const message = (e as Error).message;
      this.update(name, { observed: "failed", pid: null, lastExit: message });
      this.event(name, "start-failed", `VM ${name} did not start: ${message}`, {});
      throw vmFailed(`VM ${name} did not start: ${message}`);
    }
  }

  /** @internal */
  attach(name: string, proc: VmProcess, startedAt: number, ramMiB: number): void {
    const live: Live = { proc, startedAt, expectingExit: false, sentCap: undefined, ramMiB, availableReadings: [] };
    this.live.set(name, live);
    void proc.exited.then((info) => {
      if (this.live.get(name) === live) this.live.delete(name);
      this.samples.delete(name);
      if (live.expectingExit || this.closed) return;
      void this.locks.run(name, async () => this.afterDeath(name, info, Date.now() - live.startedAt));
    });
  }

  /** A VM process ended on its own: record why, then restart it if its policy says so. */
  private afterDeath(name: string, info: VmExitInfo, ranMs: number): void {
    const rec = this.store.getVm(name);
    if (rec === null) return;
    if (info.reason === "migrated" || (info.code === 0 && this.state.migrations.get(name)?.direction === "out" && this.state.handedOver(name))) return this.state.migratedAway(name);
    const wanted = rec.desired !== "stopped";
    const policy = rec.spec.restartPolicy;
    const restart = wanted && (policy === "always" || (policy === "on-failure" && info.failed));
    this.update(name, { observed: info.failed ? "crashed" : "stopped", pid: null, lastExit: info.message, ...(restart ? {} : { desired: "stopped" }) });
    this.event(name, "died", `VM ${name} ended: ${info.message}.`, { code: info.code, signal: info.signal, reason: info.reason, failed: info.failed });
    if (!restart || this.closed) return;
    const failures = ranMs > STABLE_RUN_MS ? 0 : (this.failures.get(name) ?? 0);
    this.failures.set(name, failures + 1);
    const delay = Math.min(this.backoff.max, this.backoff.first * 2 ** failures);
    this.event(name, "restart-scheduled", `VM ${name} will be restarted in ${(delay / 1000).toFixed(1)} s (restart policy ${policy}).`, { delayMs: delay });
    this.restartTimers.set(
      name,
      setTimeout(() => {
        this.restartTimers.delete(name);
        void this.locks
          .run(name, async () => {
            const r = this.store.getVm(name);
            if (r === null || r.desired === "stopped" || ACTIVE.includes(r.observed)) return;
            await this.startLocked(name, true);
          })
          .catch((e: Error) => {
            this.log(`Restart of VM ${name} failed: ${e.message}`);
            const r = this.store.getVm(name);
            if (r !== null && r.desired !== "stopped") this.afterDeath(name, { code: null, signal: null, reason: null, failed: true, message: e.message }, 0);
          });
      }, delay),
    );
  }

  /** @internal */
  cancelRestart(name: string): void {
    const t = this.restartTimers.get(name);
    if (t !== undefined) clearTimeout(t);
    this.restartTimers.delete(name);
  }

  private async stopLocked(name: string, timeoutMs: number): Promise<void> {
    const live = this.liveOf(name);
    live.expectingExit = true;
    this.update(name, { desired: "stopped", observed: "stopping" });
    this.event(name, "stopping", `VM ${name} is asked to power off.`, {});
    try {
      const status = await this.command_<{ state: string }>(live, "query-status");
      if (status.state === "paused") await this.command_(live, "resume");
      await this.command_(live, "powerdown");
    } catch {
      // A VM that cannot take the request is killed below after the timeout.
    }
    let info = await Promise.race([live.proc.exited, sleep(timeoutMs).then(() => null)]);
    let how = "powered off";
    if (info === null) {
      how = `was killed after not powering off within ${Math.round(timeoutMs / 1000)} s`;
      info = await this.endProcess(live);
    }
    this.update(name, { observed: "stopped", pid: null, lastExit: `stopped through the API: ${info.message}` });
    this.event(name, "stopped", `VM ${name} ${how}.`, { code: info.code, reason: info.reason });
  }

  private async killLocked(name: string): Promise<void> {
    const live = this.liveOf(name);
    live.expectingExit = true;
    this.cancelRestart(name);
    await this.endProcess(live);
  }

  /** quit over the socket, then SIGKILL to the process group if it lingers. */
  private async endProcess(live: Live): Promise<VmExitInfo> {
    live.proc.client.execute("quit").catch(() => {});
    const info = await Promise.race([live.proc.exited, sleep(QUIT_GRACE_MS).then(() => null)]);
    if (info !== null) return info;
    live.proc.killGroup();
    return live.proc.exited;
  }

  private async poll(): Promise<void> {
    const now = Date.now();
    await Promise.all(
      [...this.live.entries()].map(async ([name, live]) => {
        const stats = await withTimeout(live.proc.client.execute<VmStats>("query-stats"), COMMAND_TIMEOUT_MS).catch(() => null);
        if (stats === null) return;
        const prev = this.samples.get(name);
        let cpuCores = 0;
        let wantedCores = 0;
        if (prev !== undefined && now > prev.at) {
          const dt = now - prev.at;
          cpuCores = Math.max(0, ((stats.cpuMs ?? 0) - (prev.stats.cpuMs ?? 0)) / dt);
          // Runnable time: what ran plus what was held back by the cap or lost to host contention.
          wantedCores = cpuCores + Math.max(0, ((stats.stealMs ?? 0) - (prev.stats.stealMs ?? 0)) / dt);
        }
        this.samples.set(name, { at: now, stats, cpuCores, wantedCores });
      }),
    );
    await this.applyCaps().catch((e: Error) => this.log(`Cannot apply CPU caps: ${e.message}`));
    await this.applyMemoryPolicy().catch((e: Error) => this.log(`Cannot apply the memory policy: ${e.message}`));
    for (const name of this.live.keys()) {
      const p = vmPaths(this.paths, name);
      try {
        truncateLogIfLarge(p.consoleLog, this.maxLogBytes);
        truncateLogIfLarge(p.vmmLog, this.maxLogBytes);
      } catch (e) {
        this.log(`Cannot rotate the logs of VM ${name}: ${(e as Error).message}`);
      }
    }
  }

  /** Moves balloons as the memory policy decides from the last samples; each decision is an event with its figures. */
  private async applyMemoryPolicy(): Promise<void> {
    const views: VmMemoryView[] = [];
    let used = 0;
    const now = Date.now();
    for (const [name, live] of this.live) {
      const rec = this.store.getVm(name);
      const s = this.samples.get(name);
      const b = s?.stats.balloon;
      if (rec === null || s === undefined || b === undefined) continue;
      used += s.stats.memoryTouchedBytes ?? 0;
      const faults = b.guestStats.values.majorFaults ?? 0;
      const delta = live.majorFaults === undefined ? 0 : Math.max(0, faults - live.majorFaults);
      live.majorFaults = faults;
      const available = b.guestStats.values.available ?? null;
      // Readings at the time the guest measured them: a guest too busy to answer leaves a gap, not a flat line.
      const measuredAt = b.guestStats.updatedAt;
      if (available !== null && measuredAt !== null && measuredAt > (live.availableReadings.at(-1)?.at ?? -Infinity)) live.availableReadings.push({ at: measuredAt, bytes: available });
      live.availableReadings = trimReadings(live.availableReadings, now, GROWTH_WINDOW_MS);
      // Available memory, not host-resident memory: a guest filling its page cache grows on the host but lends it back at once.
      const growth = changeOver(live.availableReadings, now, GROWTH_WINDOW_MS, READING_GAP_MS)?.fall ?? null;
      const ram = live.ramMiB * MiB;
      views.push({
        name, policy: rec.spec.memoryPolicy !== false && b.driverReady, ramBytes: ram,
        ceilingBytes: Math.min(ram, (rec.spec.memoryTargetMiB ?? live.ramMiB) * MiB),
        targetBytes: b.target, actualBytes: b.actual, availableBytes: available, majorFaultsDelta: delta, growthBytes: growth, cpuCores: s.cpuCores,
        statsAgeMs: b.guestStats.updatedAt === null ? null : now - b.guestStats.updatedAt,
      });
    }
    const decisions = planBalloons({ limitBytes: this.capacity.memoryBytes, usedBytes: used, osAvailableBytes: freemem() }, views, this.memoryPolicy);
    for (const d of decisions) {
      const live = this.live.get(d.vm);
      if (live === undefined) continue;
      await this.sendTarget(live, d.toBytes);
      const verb = d.kind === "inflate" ? "took" : "gave back";
      this.event(d.vm, `balloon-${d.kind}`, `The memory policy ${verb} ${formatSize(Math.abs(d.toBytes - d.fromBytes))} ${d.kind === "inflate" ? "from" : "to"} VM ${d.vm} (now ${formatSize(d.toBytes)}): ${d.reason}.`, {
        fromBytes: d.fromBytes, toBytes: d.toBytes, ...d.figures,
      });
    }
  }

  /** Turns shares into caps from the last measured demand and sends the caps that changed. */
  private async applyCaps(): Promise<void> {
    const demands = [];
    for (const [name, live] of this.live) {
      const rec = this.store.getVm(name);
      if (rec === null || live.proc === undefined) continue;
      const s = this.samples.get(name);
      demands.push({ name, vcpus: rec.spec.vcpus, shares: rec.spec.cpuShares, userCap: rec.spec.cpuCap, wantedCores: s?.wantedCores ?? 0 });
    }
    const caps = capsFromShares(this.capacity.cores, demands);
    await Promise.all(
      [...caps].map(async ([name, cap]) => {
        const live = this.live.get(name);
        if (live === undefined || live.sentCap === cap) return;
        await withTimeout(live.proc.client.execute("set-cpu-limits", { cap }), COMMAND_TIMEOUT_MS);
        live.sentCap = cap;
      }),
    );
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
