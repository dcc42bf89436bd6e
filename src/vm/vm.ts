// One virtual machine: builds the board from a VmConfig, boots it, runs it and answers the
// VmController interface (used by the control socket and the CLI alike).

import { performance } from "node:perf_hooks";
import { statSync } from "node:fs";
import { Board } from "../machine/board.js";
import { boot, payloadRanges } from "../machine/boot.js";
import { warmUpInterpreter } from "../cpu/interpreter_warm_up.js";
import { loadProfile, profilePath, saveProfile } from "../cpu/jit/jit_profile.js";
import { defaultCacheDir } from "../image/guest_image.js";
import { fileSource, prefault, type PayloadSource } from "../machine/loader.js";
import { VirtioBlk } from "../devices/virtio/block/device.js";
import { VirtioRng } from "../devices/virtio/rng/device.js";
import { VirtioConsole } from "../devices/virtio/console/device.js";
import { BALLOON_PAGE, VirtioBalloon } from "../devices/virtio/balloon/device.js";
import { adviseHugePages, hostMemoryFor, type HostMemory } from "./host_memory.js";
import { describeBalloon } from "./balloon_info.js";
import { checkBalloonTarget, checkStatsInterval, DEFAULT_BALLOON, type BalloonConfig } from "./balloon_config.js";
import type { VirtioDevice } from "../devices/virtio/device.js";
import { SbiFirmware } from "../firmware/sbi.js";
import { openDisk } from "../storage/open.js";
import { RateLimitedBackend } from "../storage/ratelimit/rate_limited_backend.js";
import { VirtioNet } from "../devices/virtio/net/device.js";
import type { NetBackend } from "../net/backend.js";
import { NicFilter } from "../net/firewall.js";
import { nicMac, openNetBackend } from "../net/open.js";
import { macToString } from "../net/ethernet.js";
import { formatSize } from "../storage/sizes.js";
import { TokenBucketShaper, type NicLimits } from "../net/shaper.js";
import { VirtualClock } from "./clock.js";
import { Scheduler } from "./scheduler.js";
import { ThreadedVcpus } from "./vcpu_threads.js";
import type { VcpuRunner } from "./vcpu_runner.js";
import { dispatchExit, type ExitServices } from "../machine/exit_dispatch.js";
import { virtioSlotPlan } from "./virtio_slots.js";
import { RAM_BASE } from "../machine/layout.js";
import { VcpuPacer } from "./pacing.js";
import { TouchedMemoryProbe } from "./memory_touched.js";
import { diskLimitsToRateLimit } from "./config.js";
import { INIT_STARTED_LINE, networkRenewRequest, POWERDOWN_REQUEST, resizeRequest } from "../image/init_script.js";
import { SerialConsole } from "./serial_console.js";
import { StatusConsoleReader } from "./status_console.js";
import { ConfigError, DEFAULT_VM_NAME } from "./config.js";
import { limitedLog, type LimitedLog } from "./log_limiter.js";
import type { BalloonInfo, DiskLimits, InterruptsReport, VmController, VmEvent, VmRunState, VmStats, VmStatus } from "./controller.js";
import type { BlockCache, JitStats } from "../cpu/jit/block_cache.js";
import { kernelCommandLine } from "./kernel_args.js";
import { deviceStats, jitReport, trapCountsByName } from "./stats_report.js";
import type { DiskConfig, VmConfig } from "./config.js";
import { diskDevice, freezeDisk } from "./snapshot/disk_snapshot.js";
import { SnapshotWriter } from "./snapshot/snapshot_file.js";
import { BackgroundPageLoader, lazyPagesFor } from "./snapshot/lazy_pages.js";
import { writeRamDigestIfAsked } from "./ram_digest.js";
import { freezePages, mergePages, precopy, PrecopyCancelled, type FrozenPages } from "./snapshot/precopy.js";
import type { DiskDirtyLog } from "./migration/block_copy.js";
import { DEFAULT_MIGRATION_PARAMETERS, OutgoingMigration, type MigrationParameters, type MigrationStatus } from "./migration/outgoing.js";
import { parseMigrationUri } from "./migration/stream.js";
import type { GuestRam } from "../seams/guest_ram.js";
import { SNAPSHOT_KIND, snapshotUnsupported, type SnapshotResult, type VmSnapshotHeader, type VmSnapshotInfo } from "./snapshot/vm_snapshot.js";

export interface VmExit {
  exitCode: number;
  reason: string;
}

export interface VmOptions {
  config: VmConfig;
  /** Start from this snapshot (its checked header and page index) instead of booting. */
  restore?: { path: string; info: VmSnapshotInfo };
  /** Start from a live migration's state and the RAM it brought (the same VM: no new generation). */
  incoming?: { header: VmSnapshotHeader; ram: GuestRam };
  /** Guest command stdout / stderr (command mode). */
  onStdout?: (data: Uint8Array) => void;
  onStderr?: (data: Uint8Array) => void;
  log?: (msg: string) => void;
}

/** A live snapshot stops the guest once the pages left would take this long to write (ms)... */
const SNAPSHOT_DOWNTIME_MS = 10;
/** ...or after this many rounds of dirty pages, whichever comes first. */
const SNAPSHOT_MAX_ROUNDS = 8;
/** How long a snapshot waits for in-flight disk requests to finish. */
const DRAIN_TIMEOUT_MS = 30_000;

/**
 * One worker thread per vCPU when there are several and the built-in SBI runs (guest firmware
 * drives the CLINT, which lives on this thread). One vCPU stays on this thread: no cross-thread
 * round trips. NODEVISOR_VCPU_THREADS=0 or 1 overrides, to compare the two.
 */
export function vcpuThreadsWanted(c: VmConfig): boolean {
  const forced = process.env.NODEVISOR_VCPU_THREADS;
  if (c.firmware) return false;
  if (forced === "0" || forced === "1") return forced === "1";
  return c.cpus > 1;
}


export { FAST_BOOT_ARGS, QUIET_IDLE_ARGS, kernelCommandLine } from "./kernel_args.js";
export { trapCauseName } from "./stats_report.js";

export class Vm implements VmController {
  readonly config: VmConfig;
  readonly board: Board;
  private readonly clock = new VirtualClock();
  /** Runs the vCPUs: time-sliced on this thread, or one worker thread each (see vcpuThreadsWanted). */
  private readonly vcpus: VcpuRunner;
  private readonly exitServices: ExitServices;
  private readonly disks: RateLimitedBackend[];
  private readonly touchedMemory: TouchedMemoryProbe;
  private readonly balloon: VirtioBalloon;
  private readonly balloonConfig: BalloonConfig;
  /** Set once the board (and so guest RAM) exists; the balloon releases pages through it. */
  private reclaim: HostMemory | null = null;
  private balloonStatsTimer: NodeJS.Timeout | null = null;
  private readonly nics: { name: string; device: VirtioNet; backend: NetBackend; shaper: TokenBucketShaper }[];
  private readonly consoles: VirtioConsole[];
  private state: VmRunState = "starting";
  private exitCode: number | null = null;
  private reason: string | null = null;
  private readonly startedAt = performance.now();
  /** Where this guest's JIT profile is kept (cpu/jit/jit_profile.ts); null without one. */
  private readonly jitProfileFile: string | null;
  private readonly serial: SerialConsole;
  private readonly statusConsole = new StatusConsoleReader(() => this.onGuestListening());
  // The console size last asked for, sent again once the guest listens (a resize during boot is lost otherwise).
  private consoleSize: { rows: number; cols: number } | null = null;
  private readonly eventListeners = new Set<(e: VmEvent) => void>();
  /** Guest-triggered messages (device register abuse, bad descriptors), rate-limited. */
  private readonly guestLog: LimitedLog;
  private readonly log: (msg: string) => void;
  private resolveExit!: (e: VmExit) => void;
  readonly exited: Promise<VmExit>;
  /** Host ms from process start until /init printed its first line (null until then). */
  initStartedMs: number | null = null;
  private mipsSample = { at: performance.now(), instructions: 0, mips: 0 };
  private readonly restoreFrom: VmSnapshotHeader | null;
  private readonly newGenerationOnRestore: boolean;
  private migration: OutgoingMigration | null = null;
  /** A lazy restore's loader of the pages not touched yet; null once booted or all loaded. */
  private pageLoader: BackgroundPageLoader | null = null;
  private migrationParams: MigrationParameters = { ...DEFAULT_MIGRATION_PARAMETERS };
  /** Paused by a migration's switch-over (a failed one resumes). */
  private pausedForMigration = false;
  /** The guest runs elsewhere now: never touch the disks again. */
  private migratedAway = false;
  private readonly blks: VirtioBlk[] = [];
  /** Settles once a boot's payload pages were touched ahead of the copy (loader.ts, prefault). */
  private payloadPagesTouched: Promise<void> = Promise.resolve();
  /** The files the disks write to now: the configured ones until a snapshot moves them onto overlays. */
  private readonly activeDisks: DiskConfig[];

  static async create(o: VmOptions): Promise<Vm> {
    const disks: RateLimitedBackend[] = [];
    const nets: NetBackend[] = [];
    const macs: Uint8Array[] = [];
    // A VM without a name of its own gets random MACs, so two such VMs never share one.
    const macSeed = o.config.name === DEFAULT_VM_NAME ? null : o.config.name;
    const log = o.log ?? (() => {});
    try {
      for (const d of o.config.disks) {
        const backend = await openDisk(d.path, { format: d.format, readOnly: d.readOnly });
        // Always behind a limiter (unlimited by default), so limits can change while the VM runs.
        disks.push(new RateLimitedBackend(backend, d.limits ?? {}));
      }
      const configs = o.config.nets ?? [];
      for (let i = 0; i < configs.length; i++) {
        const n = configs[i]!;
        macs.push(nicMac(n, macSeed, i));
        nets.push(await openNetBackend(n, { mac: macs[i]!, vmName: o.config.name, log: (m) => log(`net${i}: ${m}`) }));
      }
    } catch (e) {
      await Promise.all([...disks.map((d) => d.close()), ...nets.map((n) => n.close())]);
      throw e;
    }
    const vm = new Vm(o, disks, nets, macs);
    await vm.payloadPagesTouched; // before start() copies the payloads in
    if (o.restore) {
      try {
        // Lazy restore: the guest runs at once; each page comes from the file when first touched.
        const shared = lazyPagesFor(o.restore.path, o.restore.info, vm.board.ram);
        if (vm.vcpus instanceof ThreadedVcpus) vm.vcpus.lazyPages = shared;
        vm.pageLoader = new BackgroundPageLoader(vm.board.ram, shared, (e) => {
          vm.log(e.message);
          vm.finish(70, "snapshot-damaged", "crashed");
        });
      } catch (e) {
        await vm.abandon();
        throw e;
      }
    }
    return vm;
  }

  private constructor(o: VmOptions, disks: RateLimitedBackend[], nets: NetBackend[], macs: Uint8Array[]) {
    this.config = o.config;
    this.restoreFrom = o.restore?.info.header ?? o.incoming?.header ?? null;
    this.newGenerationOnRestore = o.restore !== undefined;
    this.activeDisks = o.config.disks.map((d) => ({ ...d }));
    this.disks = disks;
    this.touchedMemory = new TouchedMemoryProbe(o.config.memoryBytes);
    this.nics = nets.map((backend, i) => {
      const c = o.config.nets![i]!;
      const mac = macs[i]!;
      const shaper = new TokenBucketShaper(c.limits);
      const policy = new NicFilter({ mac, firewall: c.firewall, antiSpoof: c.antiSpoof });
      const device = new VirtioNet({ backend, mac, policy, shaper, offloads: c.offloads });
      if (!c.linkUp) device.setLink(false);
      return { name: `net${i}`, device, backend, shaper };
    });
    this.exited = new Promise((r) => (this.resolveExit = r));
    const log = o.log ?? (() => {});
    this.log = log;
    this.guestLog = limitedLog(log);
    this.serial = new SerialConsole({ onNewText: (tail) => this.noticeInitStarted(tail), log });
    const stdout = new VirtioConsole({ onOutput: (d) => o.onStdout?.(d) });
    const stderr = new VirtioConsole({ onOutput: (d) => o.onStderr?.(d) });
    const status = new VirtioConsole({ onOutput: (d) => this.statusConsole.read(d) });
    this.consoles = [stdout, stderr, status];
    this.balloonConfig = { ...DEFAULT_BALLOON, ...o.config.balloon };
    this.balloon = new VirtioBalloon({
      ramBase: RAM_BASE,
      ramBytes: o.config.memoryBytes,
      reporting: this.balloonConfig.reporting,
      deflateOnOom: this.balloonConfig.deflateOnOom,
      release: (offset, length) => {
        this.board.ram.discarding(offset, length);
        return this.hostMemory.release(offset, length);
      },
    });
    let disk = 0;
    let nic = 0;
    const virtio: VirtioDevice[] = virtioSlotPlan(o.config).map((kind): VirtioDevice => {
      switch (kind) {
        case "disk": {
          const blk = new VirtioBlk({ backend: disks[disk++]! });
          this.blks.push(blk);
          return blk;
        }
        case "nic": return this.nics[nic++]!.device;
        case "rng": return new VirtioRng();
        case "console-stdout": return stdout;
        case "console-stderr": return stderr;
        case "console-status": return status;
        case "balloon": return this.balloon;
        default: {
          const never: never = kind;
          throw new Error(`no device for virtio slot kind ${String(never)}`);
        }
      }
    });
    const crashed = (where: string, e: unknown): void => {
      log(`the VM stopped because of an internal error (a nodevisor bug; please report it; ${where}): ${(e as Error)?.stack ?? String(e)}`);
      this.finish(70, "crashed", "crashed");
    };
    const jit = o.config.cpuTier === "jit";
    // The interpreter's type feedback first (interpreter_warm_up.ts, ~50 ms), on each thread that runs harts. Not before a
    // restore or an incoming migration, whose figure of merit is time to running.
    const warmUp = this.restoreFrom === null && process.env.NODEVISOR_WARM_UP !== "0";
    this.jitProfileFile = jit ? profilePath(defaultCacheDir(), o.config.kernel, o.config.initrd) : null;
    const jitProfile = this.jitProfileFile === null ? undefined : loadProfile(this.jitProfileFile);
    const threads = vcpuThreadsWanted(o.config)
      ? new ThreadedVcpus(o.config.cpus, this.clock, {
        jit: jit ? { profile: jitProfile } : undefined,
        warmUp,
        afterSlice: () => {
          this.feedConsoleInput();
          this.serial.flush();
        },
        consoleWrite: (bytes) => this.serial.putAll(bytes),
        onSystemReset: (kind, code) => this.onSystemReset(kind, code),
        onCrash: (message) => crashed(threads!.describePcs(), message),
      })
      : null;
    this.board = new Board({
      jitProfile,
      interruptTargets: threads?.interruptTargets,
      memoryBytes: o.config.memoryBytes,
      ram: o.incoming?.ram,
      cpus: o.config.cpus,
      jit: jit && threads === null, // on vCPU threads each worker has a code cache of its own
      time: this.clock,
      virtio,
      onSerialByte: (b) => this.serial.put(b),
      onPowerOff: (code) => this.finish(code, "poweroff"),
      onReset: () => this.finish(this.panicked() ? 1 : 0, this.panicked() ? "guest-panic" : "reset"),
      onInterrupt: () => this.vcpus?.kick(),
      log: this.guestLog,
    });
    this.exitServices = { bus: this.board.bus };
    if (this.restoreFrom === null) {
      // Huge pages under guest RAM before anything touches it; then the payloads' pages touched on
      // the pool's threads while this thread warms the interpreter up (loader.ts, prefault).
      adviseHugePages(this.board.ram.memory.buffer);
      const ram = this.board.ram, bytes = (f: string | null): number => (f ? statSync(f, { throwIfNoEntry: false })?.size ?? 0 : 0);
      this.payloadPagesTouched = prefault(ram, payloadRanges(ram.base, ram.end, bytes(o.config.kernel), bytes(o.config.initrd)));
    }
    if (warmUp && threads === null) warmUpInterpreter(this.clock, jit);
    this.vcpus = threads ?? new Scheduler(this.board.harts, this.board.clint, this.clock, {
      onExit: (hart) => dispatchExit(hart, this.exitServices),
      afterSlice: () => {
        this.feedConsoleInput();
        this.serial.flush();
      },
      isRunning: () => this.state === "running",
      // All harts share this one thread, so a cap above one core is no cap.
      pacer: new VcpuPacer(o.config.cpus, 1),
      onCrash: (e) => crashed(this.vcpus.describePcs(), e),
    });
    this.vcpus.setCap(o.config.cpuCap ?? null);
  }

  /** Releases the disks of a VM whose start() failed. */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.disks.map((d) => d.close()), ...this.nics.map((n) => n.backend.close())]);
  }

  /** Loads the payloads and starts the harts. */
  start(): void {
    const c = this.config;
    // A boot advised huge pages as it built the board; a restore (its RAM is loaded already) does not wait for koffi.
    if (this.restoreFrom) setImmediate(() => adviseHugePages(this.board.ram.memory.buffer));
    if (this.restoreFrom || !c.firmware) {
      const sbi = new SbiFirmware({
        harts: this.board.harts,
        ram: this.board.ram,
        consoleWrite: (bytes) => this.serial.putAll(bytes),
        onSystemReset: (kind, code) => this.onSystemReset(kind, code),
      });
      this.exitServices.sbi = sbi;
      for (const h of this.board.harts) h.sbiExits = true;
    }
    if (this.restoreFrom) this.restoreState(this.restoreFrom);
    else this.loadPayloads();
    // Opened only once the payloads loaded, so bad input leaves no file behind; opened here, not
    // lazily, so a bad path fails the start with a sentence instead of killing a running VM.
    if (c.consoleLog) this.serial.openLog(c.consoleLog);
    this.state = "running";
    this.emit({ event: "RESUME" });
    this.vcpus.begin(this.board);
    this.pageLoader?.start();
    this.feedConsoleInput();
    this.planBalloonStats();
  }

  /** Reads the firmware, kernel and initrd files straight into guest RAM (loader.ts says why not through buffers). */
  private loadPayloads(): void {
    const c = this.config;
    const files: ReturnType<typeof fileSource>[] = [];
    const open = (path: string | null): PayloadSource | null => (path ? files[files.push(fileSource(path)) - 1]! : null);
    try {
      boot(this.board, { firmware: open(c.firmware), kernel: open(c.kernel), initrd: open(c.initrd), bootargs: kernelCommandLine(c) });
    } finally {
      for (const f of files) f.close();
    }
  }

  private planBalloonStats(): void {
    if (this.balloonStatsTimer !== null) clearInterval(this.balloonStatsTimer);
    this.balloonStatsTimer = null;
    const sec = this.balloonConfig.statsIntervalSec;
    if (sec <= 0 || this.state === "shutdown" || this.state === "crashed") return;
    this.balloonStatsTimer = setInterval(() => {
      if (this.state === "running" && this.balloon.requestStats()) this.vcpus.kick();
    }, sec * 1000);
    this.balloonStatsTimer.unref();
  }

  setBalloonTarget(bytes: number): void {
    checkBalloonTarget(bytes, this.config.memoryBytes, this.balloonConfig.floorBytes);
    this.balloon.setTarget(Math.round((this.config.memoryBytes - bytes) / BALLOON_PAGE));
    this.vcpus.kick();
  }

  setBalloonStatsInterval(seconds: number): void {
    checkStatsInterval(seconds);
    this.balloonConfig.statsIntervalSec = seconds;
    this.planBalloonStats();
  }

  balloonInfo(): BalloonInfo {
    return describeBalloon(this.balloon, this.config.memoryBytes, this.balloonConfig, this.hostMemory);
  }

  /** Reclaim through madvise, set up on first use: loading koffi costs ~15 ms that a restore should not wait for. */
  private get hostMemory(): HostMemory {
    if (this.reclaim === null) {
      this.reclaim = hostMemoryFor(this.board.ram.buffer);
      if (this.reclaim.mode === "accounting") this.log(`balloon: pages the guest gives up are only counted, not returned to the host: ${this.reclaim.reason}.`);
    }
    return this.reclaim;
  }


  /** Puts every component back as the snapshot has it (RAM was loaded by create()). */
  private restoreState(h: VmSnapshotHeader): void {
    h.harts.forEach((state, i) => this.board.harts[i]!.restore(state));
    this.board.restore(h.board);
    // Every restore is a new generation: the guest reseeds its RNG (clones share no secrets). A
    // migrated VM is the same VM, moved.
    if (this.newGenerationOnRestore) this.board.vmgenid.newGeneration();
    this.networkMoved(h);
    this.clock.restore(h.clock);
    this.statusConsole.commandStatus = h.vm.commandStatus;
    this.statusConsole.guestListening = h.vm.guestListening;
    this.consoleSize = h.vm.consoleSize;
  }

  /**
   * After a restore or a migration the network learns where each NIC is now; a restored guest (a
   * new generation) renews its leases, and re-probes its NICs first when their MACs changed (a clone).
   */
  private networkMoved(h: VmSnapshotHeader): void {
    for (const nic of this.nics) nic.device.announce();
    if (!this.newGenerationOnRestore || this.nics.length === 0) return;
    const macChanged = this.nics.some((nic, i) => h.config.nets?.[i]?.mac !== macToString(nic.device.mac));
    this.consoles[2]!.input(new TextEncoder().encode(`${networkRenewRequest(macChanged)}\n`));
  }

  /**
   * Writes a snapshot of the whole VM to `path`, live: RAM is written while the guest runs, the
   * pages it dirties meanwhile again in rounds (snapshot/precopy.ts), and the vCPUs stop at an
   * instruction boundary only for the last pages, the device state and the disks' freeze. A
   * paused VM stays paused.
   */
  async saveSnapshot(path: string): Promise<SnapshotResult> {
    const unsupported = snapshotUnsupported(this.config);
    if (unsupported !== null) throw new ConfigError(`Cannot snapshot this VM: ${unsupported}.`);
    if (this.state !== "running" && this.state !== "paused") throw new ConfigError(`Cannot snapshot a VM that is ${this.state}.`);
    const wasRunning = this.state === "running";
    const ram = this.board.ram;
    this.pageLoader?.loadAll(); // the copy reads RAM directly
    const writer = await SnapshotWriter.create(path, ram);
    try {
      // A paused VM's RAM is copied in rounds too: its devices still write (a frame arrives), and
      // only what they dirtied is left for the step that freezes the last pages with the state.
      const { pending, progress } = await precopy({
        ram,
        flushTlbs: () => this.vcpus.flushTlbs(),
        send: (pages) => writer.writePages(pages),
        downtimeLimitMs: SNAPSHOT_DOWNTIME_MS,
        maxRounds: SNAPSHOT_MAX_ROUNDS,
        now: () => performance.now(),
        cancelled: () => this.state !== (wasRunning ? "running" : "paused"),
      }).catch((e: unknown) => {
        if (e instanceof PrecopyCancelled) throw new ConfigError(`Cannot snapshot: the VM stopped ${wasRunning ? "running" : "being paused"} (${this.state}) while its memory was written.`);
        throw e;
      });
      const rounds = wasRunning ? progress.rounds : 0;
      const stoppedAt = performance.now();
      if (wasRunning) this.pause();
      let header: VmSnapshotHeader;
      let last: FrozenPages;
      const moved: SnapshotResult["disks"] = [];
      try {
        ({ header, last } = await this.captureState(pending));
        for (let i = 0; i < this.disks.length; i++) {
          const overlay = `${path}.${diskDevice(i)}.after.qcow2`;
          const frozen = await freezeDisk(this.disks[i]!, this.activeDisks[i]!, i, overlay);
          header.disks.push(frozen);
          if (!frozen.readOnly) {
            this.activeDisks[i] = { ...this.activeDisks[i]!, path: overlay, format: "qcow2" };
            moved.push({ device: frozen.device, frozen: frozen.frozen, active: overlay });
          }
        }
        header.config = { ...header.config, disks: header.disks.map((d, i) => ({ ...this.config.disks[i]!, path: d.frozen, format: d.format })) };
        await writer.writePages(last.pages, last.data);
      } finally {
        if (wasRunning && this.state === "paused") this.resume();
      }
      const pausedMs = Math.round(performance.now() - stoppedAt);
      const written = await writer.finish(header);
      return { path, bytes: written.bytes, ramPages: written.pages, pausedMs, rounds, disks: moved };
    } catch (e) {
      await writer.abandon();
      throw e;
    }
  }

  /**
   * Every component's state but the disks', and the pages still to copy (`pending` and every page
   * dirtied since) frozen in the same synchronous step (precopy.ts freezePages says why); the vCPUs
   * must be paused. In-flight disk requests finish first, so RAM and devices agree.
   */
  private async captureState(pending: Uint32Array): Promise<{ header: VmSnapshotHeader; last: FrozenPages }> {
    const harts = await this.vcpus.collectHartStates();
    await this.drainDiskRequests();
    // No await from here on: the device thread must not run between the device state and the pages.
    const header: VmSnapshotHeader = {
      kind: SNAPSHOT_KIND,
      savedAt: new Date().toISOString(),
      // The MACs the guest knows: a restore under the same name and a migration keep them.
      config: { ...this.config, nets: this.config.nets?.map((n, i) => ({ ...n, mac: macToString(this.nics[i]!.device.mac) })), controlSocket: null, consoleLog: null },
      clock: this.clock.save(),
      harts,
      board: this.board.save(),
      vm: { commandStatus: this.statusConsole.commandStatus, guestListening: this.statusConsole.guestListening, consoleSize: this.consoleSize },
      disks: [],
    };
    const last = freezePages(this.board.ram, mergePages(pending, this.board.ram.takeDirtyPages()));
    writeRamDigestIfAsked(this.board.ram);
    return { header, last };
  }

  /** Starts a live migration to a `nodevisor run --incoming URI` process (docs/migration.md); query it with queryMigration(). */
  migrate(uriText: string, opts: { blk?: boolean } = {}): void {
    const uri = parseMigrationUri(uriText);
    const unsupported = snapshotUnsupported(this.config);
    if (unsupported !== null) throw new ConfigError(`Cannot migrate this VM: ${unsupported}.`);
    if (this.state !== "running") throw new ConfigError(`Cannot migrate a VM that is ${this.state}; resume it first.`);
    if (this.migration !== null && !this.migration.finished) throw new ConfigError("A migration is under way already; wait for it or cancel it with migrate-cancel.");
    const ownCap = this.vcpus.cap;
    this.pageLoader?.loadAll(); // the copy reads RAM directly
    const m = new OutgoingMigration({
      ram: this.board.ram,
      flushTlbs: () => this.vcpus.flushTlbs(),
      throttle: (cap) => this.vcpus.setCap(cap === null ? ownCap : Math.min(cap, ownCap ?? 100)),
      running: () => this.state === "running",
      hello: () => ({ config: { ...this.config, disks: this.activeDisks, controlSocket: null, consoleLog: null } }),
      copiedDisks: () => this.disks.flatMap((d, index) => (this.activeDisks[index]!.readOnly ? [] : [{
        index,
        backend: d.unlimited,
        watchWrites: (log: DiskDirtyLog | null) => (d.onWritten = log === null ? null : (offset, length) => log.mark(offset, length)),
      }])),
      stopForSwitchover: async (pending) => {
        if (this.state !== "running") throw new ConfigError(`The VM stopped running (${this.state}) during the migration.`);
        this.pause();
        this.pausedForMigration = true;
        const { header, last } = await this.captureState(pending);
        // Shared storage: the destination opens the same files once this side flushed them.
        for (const d of this.disks) await d.flush();
        header.config = { ...header.config, disks: this.activeDisks.map((d) => ({ ...d })) };
        header.disks = this.activeDisks.map((d, i) => ({ device: diskDevice(i), frozen: d.path, format: d.format ?? "qcow2", readOnly: d.readOnly }));
        return { header, last };
      },
      resumeAfterFailure: () => {
        if (this.pausedForMigration && this.state === "paused") this.resume();
        this.pausedForMigration = false;
      },
      handedOver: () => {
        const st = m.status();
        const disk = st.disk ? `, ${formatSize(st.disk.bytesSent)} of disk` : "";
        this.log(`migrated to ${uriText} in ${st.totalTimeMs} ms (${st.ram?.rounds} rounds, ${st.ram?.pagesSent} pages${disk}); the guest stopped for ${st.downtimeMs} ms. It runs there now.`);
        this.migratedAway = true;
        this.finish(0, "migrated");
      },
    }, uri, this.migrationParams, (status) => this.emit({ event: "MIGRATION", data: { status } }), opts.blk === true);
    this.migration = m;
    void m.run();
  }

  queryMigration(): MigrationStatus {
    return this.migration?.status() ?? { status: "none" };
  }

  cancelMigration(): void {
    this.migration?.cancel();
  }

  /** downtimeLimitMs and maxBandwidth for the next migration (and the one under way, from its next round). */
  setMigrationParameters(p: Partial<MigrationParameters>): MigrationParameters {
    Object.assign(this.migrationParams, p);
    return { ...this.migrationParams };
  }

  /** Waits until no disk request is in flight (bounded: a stuck backend fails the snapshot). */
  private async drainDiskRequests(): Promise<void> {
    const end = performance.now() + DRAIN_TIMEOUT_MS;
    while (this.blks.some((b) => (b.stats().inFlight ?? 0) > 0)) {
      if (performance.now() > end) throw new ConfigError(`Cannot snapshot: disk requests are still in flight after ${DRAIN_TIMEOUT_MS / 1000} s.`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private onSystemReset(kind: "shutdown" | "reboot", code: number): void {
    if (kind === "shutdown") this.finish(code, "poweroff");
    else this.finish(this.panicked() ? 1 : 0, this.panicked() ? "guest-panic" : "reset");
  }

  status(): VmStatus {
    return {
      state: this.state,
      exitCode: this.exitCode,
      reason: this.reason,
      uptimeMs: Math.round(performance.now() - this.startedAt),
      vcpus: this.config.cpus,
      memoryBytes: this.config.memoryBytes,
    };
  }

  stats(): VmStats {
    const now = performance.now();
    const s = this.mipsSample;
    if (now - s.at >= 250) {
      s.mips = (this.vcpus.instructions - s.instructions) / ((now - s.at) * 1000);
      s.at = now;
      s.instructions = this.vcpus.instructions;
    }
    const trapsByCause = trapCountsByName(this.vcpus.trapsByCause());
    const devices = deviceStats(this.board, this.nics, this.balloon);
    const jit = this.jitStats;
    return {
      instructionsRetired: this.vcpus.instructions,
      mips: Math.round(s.mips * 10) / 10,
      idleMs: Math.round(this.vcpus.idleMs),
      trapsByCause,
      devices,
      ...this.vcpus.pacingStats(),
      cpuCap: this.vcpus.cap,
      memoryTouchedBytes: this.touchedMemory.bytes(now),
      cpuTier: jit ? "jit" : "interp",
      ...(jit ? { jit: jitReport(jit, this.vcpus.instructions) } : {}),
      balloon: this.balloonInfo(),
    };
  }

  /** The JIT's code cache of the time-sliced harts, or null on the interpreter or on vCPU threads. */
  private get jitCache(): BlockCache | null {
    return this.board.harts[0]?.jitCache ?? null;
  }

  /** The JIT's figures (the time-sliced harts' cache, or the vCPU threads' summed); null on the interpreter. */
  private get jitStats(): JitStats | null {
    return this.jitCache?.stats ?? this.vcpus.jitStats?.() ?? null;
  }

  /** Pulls (up=false) or plugs the virtual cable of NIC `name` ("net0", ...). */
  setLink(name: string, up: boolean): void {
    this.nic(name).device.setLink(up);
    this.vcpus.kick();
  }

  /** Replaces NIC `name`'s rate limits; buckets start full. */
  setNetLimits(name: string, limits: NicLimits): void {
    const n = this.nic(name);
    n.shaper.setLimits(limits);
    n.device.notify(0);
    n.device.notify(1);
  }

  private nic(name: string): { device: VirtioNet; shaper: TokenBucketShaper } {
    const n = this.nics.find((x) => x.name === name);
    if (n === undefined) {
      throw new ConfigError(`The VM has no NIC "${name}"; its NICs are ${this.nics.map((x) => x.name).join(", ") || "none"}.`);
    }
    return n;
  }

  pause(): void {
    if (this.state !== "running") return;
    this.state = "paused";
    this.vcpus.pause();
    this.clock.pause();
    this.emit({ event: "STOP" });
  }

  resume(): void {
    if (this.state !== "paused") return;
    this.clock.resume();
    this.state = "running";
    this.emit({ event: "RESUME" });
    this.vcpus.resume();
  }

  powerdown(): void {
    // The default image's /init listens on the status console for this request.
    this.consoles[2]!.input(new TextEncoder().encode(`${POWERDOWN_REQUEST}\n`));
    this.emit({ event: "POWERDOWN" });
    this.vcpus.kick();
  }

  setCpuLimits(capPercent: number | null): void {
    this.vcpus.setCap(capPercent);
  }

  setDiskLimits(index: number, limits: DiskLimits): void {
    const disk = this.disks[index];
    if (disk === undefined) throw new RangeError(`The VM has no disk vd${String.fromCharCode(0x61 + index)}; it has ${this.disks.length}.`);
    disk.setLimits(diskLimitsToRateLimit(limits));
  }

  consoleResize(rows: number, cols: number): void {
    this.consoleSize = { rows, cols };
    this.consoles[2]!.input(new TextEncoder().encode(`${resizeRequest(rows, cols)}\n`));
    this.vcpus.kick();
  }

  quit(): void {
    this.finish(this.exitCode ?? 0, "quit");
  }

  /** Queues console input (bounded); returns how many bytes were accepted. */
  consoleWrite(data: Uint8Array): number {
    const accepted = this.serial.queueInput(data);
    if (accepted > 0) this.feedConsoleInput();
    this.vcpus.kick();
    return accepted;
  }

  /** Moves queued console input into the UART's FIFO as far as it has room. */
  private feedConsoleInput(): void {
    // Input that arrives before start() waits: a restore would overwrite the UART's FIFO.
    if (this.state === "starting") return;
    this.serial.feedInput(this.board.uart);
  }

  onConsoleOutput(listener: (data: Uint8Array) => void): () => void {
    return this.serial.onOutput(listener);
  }

  onEvent(listener: (e: VmEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  interrupts(): InterruptsReport {
    const inputs = this.vcpus.describeInputs?.();
    return {
      plic: this.board.plic.describe(),
      uart: this.board.uart.describe(),
      harts: this.board.harts.map((h, i) => ({ ...h.describeInterrupts(), ...inputs?.[i] })),
    };
  }

  /** MMIO and SBI exits the VMM completed so far (for npm run bench's timings). */
  get exitCounts(): { mmio: number; sbi: number } {
    return { mmio: this.vcpus.mmioExits, sbi: this.vcpus.sbiExits };
  }

  /** The command's exit status as /init reported it, if it did. */
  get guestCommandStatus(): number | null {
    return this.statusConsole.commandStatus;
  }

  /** The last few KiB of serial output, for error reports. */
  get serialOutputTail(): string {
    return this.serial.tail;
  }

  /** The interactive guest now listens on the status console: send it the console size asked for during boot. */
  private onGuestListening(): void {
    if (this.consoleSize !== null) this.consoleResize(this.consoleSize.rows, this.consoleSize.cols);
  }

  private panicked(): boolean {
    return this.serial.tail.includes("Kernel panic");
  }

  private noticeInitStarted(tail: string): void {
    if (this.initStartedMs === null && tail.includes(INIT_STARTED_LINE)) {
      this.initStartedMs = performance.now();
      this.emit({ event: "GUEST_INIT_STARTED", data: { ms: Math.round(this.initStartedMs) } });
    }
  }

  private finish(exitCode: number, reason: string, state: "shutdown" | "crashed" = "shutdown"): void {
    if (this.state === "shutdown" || this.state === "crashed") return;
    this.serial.flush();
    this.state = state;
    this.exitCode = exitCode;
    this.reason = reason;
    this.vcpus.stop();
    this.pageLoader?.stop();
    this.board.timers.stop();
    if (this.jitStats && process.env.NODEVISOR_JIT_DEBUG) process.stderr.write(`jit: ${JSON.stringify(jitReport(this.jitStats, this.vcpus.instructions))}\n`);
    if (state === "shutdown" && this.jitCache && this.jitProfileFile !== null) saveProfile(this.jitProfileFile, this.jitCache.exportProfile());
    this.jitCache?.close();
    if (this.balloonStatsTimer !== null) clearInterval(this.balloonStatsTimer);
    this.balloonStatsTimer = null;
    this.guestLog.flush();
    // Abandon what the guest queued but the disks have not started (requests waiting for a rate
    // limit), so the final flush never waits behind them.
    for (const mmio of this.board.virtio) mmio.hostReset();
    this.emit({ event: "SHUTDOWN", data: { reason, exitCode } });
    const done = async (): Promise<void> => {
      await Promise.allSettled([
        // After a migration the destination owns the disk files (they were flushed at the switch-over).
        ...(this.migratedAway ? [] : this.disks).map(async (d) => {
          await d.flush();
          await d.close();
        }),
        ...this.nics.map((n) => n.backend.close()),
      ]);
      this.serial.closeLog();
      this.resolveExit({ exitCode, reason });
    };
    void done();
  }

  private emit(e: VmEvent): void {
    for (const l of [...this.eventListeners]) l(e);
  }
}

