// The daemon's side of whole-VM state: live snapshots of its VMs, live migration out of this
// host (following query-migrate) and into it (a VM process waiting with `run --incoming`), and
// what a migrated-away or restored VM becomes. The rules (paths, specs) are in vm_state.ts.

import { readFileSync } from "node:fs";
import type { MigrationStatus } from "../vm/migration/outgoing.js";
import type { SnapshotResult } from "../vm/snapshot/vm_snapshot.js";
import { admit } from "./admission.js";
import { formatSize } from "../storage/sizes.js";
import { conflict, illegalTransition, invalid, vmFailed } from "./errors.js";
import { vmPaths } from "./paths.js";
import { checkSpec, withDefaults, type VmSpec } from "./spec.js";
import { VmProcess, type IncomingVmProcess } from "./vm_process.js";
import { checkMigrationUri, checkSnapshotPath, disksAfterSnapshot, handedOverIn, handoverFigures, MIGRATION_ENDED } from "./vm_state.js";
import { ACTIVE, COMMAND_TIMEOUT_MS, sleep, withTimeout, type Live, type MigrationParams, type MigrationView, type VmManager, type VmView } from "./vm_manager.js";

const MiB = 2 ** 20;
/** A live snapshot writes all of RAM; a migration's follow-up polls query-migrate this often. */
const SNAPSHOT_TIMEOUT_MS = 15 * 60_000;
const MIGRATION_POLL_MS = 250;

export class VmStateOps {
  /** Live migrations, in and out, by VM (kept after they end until the next one). */
  readonly migrations = new Map<string, MigrationView>();
  /** VM processes waiting for an incoming migration. */
  readonly waiting = new Map<string, IncomingVmProcess>();

  constructor(private readonly m: VmManager) {}

  /** A live snapshot through the control socket; the spec's disks follow the VM onto its new overlays. */
  snapshot(name: string, path: string): Promise<SnapshotResult> {
    return this.m.locks.run(name, async () => {
      const rec = this.m.record(name);
      if (rec.observed !== "running" && rec.observed !== "paused") throw illegalTransition(`VM ${name} is ${rec.observed}; only a running or paused VM can be snapshotted (start it first).`);
      this.refuseWhileMigrating(name, "snapshot");
      checkSnapshotPath(path);
      const result = await this.m.command_<SnapshotResult>(this.m.liveOf(name), "snapshot-save", { path }, SNAPSHOT_TIMEOUT_MS);
      const spec = { ...rec.spec, disks: disksAfterSnapshot(rec.spec.disks, result) };
      this.m.update(name, { spec });
      const figures = { path: result.path, bytes: result.bytes, ramPages: result.ramPages, pausedMs: result.pausedMs, rounds: result.rounds, disks: result.disks };
      this.m.event(name, "snapshot-saved", `VM ${name} was saved to ${result.path} (${formatSize(result.bytes)}, the guest stopped for ${result.pausedMs} ms after ${result.rounds} rounds).`, figures);
      return result;
    });
  }

  /** Starts a live migration to `uri` (a `vm receive` elsewhere) and follows it; GET shows its progress. */
  migrate(name: string, uri: string, params: MigrationParams = {}): Promise<VmView> {
    return this.m.locks.run(name, async () => {
      const rec = this.m.record(name);
      if (rec.observed !== "running") throw illegalTransition(`VM ${name} is ${rec.observed}; only a running VM can be migrated${rec.observed === "paused" ? " (resume it first)" : ""}.`);
      this.refuseWhileMigrating(name, "migrate");
      checkMigrationUri("uri", uri);
      const live = this.m.liveOf(name);
      const set: Record<string, number> = {};
      if (params.downtimeLimitMs !== undefined) set["downtime-limit"] = params.downtimeLimitMs;
      if (params.maxBandwidth !== undefined) set["max-bandwidth"] = params.maxBandwidth;
      if (Object.keys(set).length > 0) await this.m.command_(live, "migrate-set-parameters", set);
      await this.m.command_(live, "migrate", params.copyDisks ? { uri, blk: true } : { uri });
      this.migrations.set(name, { direction: "out", uri, status: "setup" });
      this.m.event(name, "migrating", `VM ${name} is migrating to ${uri}${params.copyDisks ? ", its disks copied along" : ""}.`, { uri, copyDisks: params.copyDisks === true });
      void this.followMigration(name, live, uri);
      return this.m.get(name);
    });
  }

  /** Calls off the migration under way; the guest runs on here. */
  migrateCancel(name: string): Promise<VmView> {
    return this.m.locks.run(name, async () => {
      this.m.record(name);
      const m = this.migrations.get(name);
      if (m?.direction !== "out" || MIGRATION_ENDED.has(m.status)) throw illegalTransition(`VM ${name} is not migrating; there is nothing to cancel.`);
      await this.m.command_(this.m.liveOf(name), "migrate-cancel");
      return this.m.get(name);
    });
  }

  /**
   * Waits for a VM migrated from elsewhere: `run --incoming LISTEN` under this daemon. Creates the
   * VM (or takes back one that left this host) in state `incoming`; it runs once the migration arrives.
   */
  receive(input: Partial<VmSpec> & { name: string }, listen: string, arrivalTimeoutMs: number): Promise<VmView> {
    const name = input.name;
    return this.m.locks.run(name, async () => {
      checkMigrationUri("listen", listen);
      if (input.restore !== undefined) throw invalid(`The field "restore" does not go with receive: the machine comes from the migration.`);
      const old = this.m.store.getVm(name);
      if (old !== null && !old.migratedTo) throw conflict(`VM ${name} already exists here; a VM can be received only under a new name, or back where it left from.`);
      if (old !== null && ACTIVE.includes(old.observed)) throw illegalTransition(`VM ${name} is ${old.observed}.`);
      const spec = withDefaults({ ...(old?.spec ?? {}), ...input });
      checkSpec(spec);
      admit(this.m.capacity, this.m.promised(name), { vcpus: spec.vcpus, memoryBytes: spec.memoryMiB * MiB });
      const now = new Date().toISOString();
      this.m.store.putVm({ spec, desired: "running", observed: "incoming", pid: null, restarts: old?.restarts ?? 0, lastExit: old?.lastExit ?? null, migratedTo: null, createdAt: old?.createdAt ?? now, updatedAt: now });
      if (old === null) this.m.event(name, "created", `VM ${name} was created to receive a migration.`, {});
      let waiting: IncomingVmProcess;
      try {
        waiting = await VmProcess.startIncoming({ spec, paths: vmPaths(this.m.paths, name), command: this.m.command, listen, arrivalTimeoutMs });
      } catch (e) {
        const message = (e as Error).message;
        this.m.update(name, { observed: "failed", desired: "stopped", pid: null, lastExit: message });
        this.m.event(name, "receive-failed", `VM ${name} cannot wait for a migration: ${message}`, {});
        throw vmFailed(`VM ${name} cannot wait for a migration: ${message}`);
      }
      this.waiting.set(name, waiting);
      this.migrations.set(name, { direction: "in", uri: waiting.listening, status: "waiting" });
      this.m.update(name, { pid: waiting.pid });
      this.m.event(name, "receiving", `VM ${name} waits for a migration on ${waiting.listening}.`, { listening: waiting.listening });
      void waiting.arrived.then(
        (proc) => this.m.locks.run(name, () => this.arrived(name, proc)),
        (e: Error) => this.m.locks.run(name, async () => this.receiveFailed(name, waiting, e.message)),
      );
      return this.m.get(name);
    });
  }

  async arrived(name: string, proc: VmProcess): Promise<void> {
    this.waiting.delete(name);
    const rec = this.m.record(name);
    const status = await withTimeout(proc.client.execute<{ state: string; vcpus: number; memoryBytes: number }>("query-status"), COMMAND_TIMEOUT_MS).catch(() => null);
    const spec = status === null ? rec.spec : { ...rec.spec, vcpus: status.vcpus, memoryMiB: Math.round(status.memoryBytes / MiB) };
    if (spec.memoryTargetMiB != null && spec.memoryTargetMiB > spec.memoryMiB) spec.memoryTargetMiB = null;
    this.m.attach(name, proc, Date.now(), spec.memoryMiB);
    this.m.update(name, { spec, observed: status?.state === "paused" ? "paused" : "running", pid: proc.pid, lastExit: null });
    const m = this.migrations.get(name);
    if (m !== undefined) m.status = "completed";
    this.m.event(name, "received", `VM ${name} arrived by live migration and runs here (pid ${proc.pid}, ${spec.vcpus} vCPU, ${spec.memoryMiB} MiB).`, { pid: proc.pid, vcpus: spec.vcpus, memoryMiB: spec.memoryMiB });
  }

  receiveFailed(name: string, waiting: IncomingVmProcess, message: string): void {
    if (this.waiting.get(name) !== waiting) return;
    this.waiting.delete(name);
    const m = this.migrations.get(name);
    if (m !== undefined) Object.assign(m, { status: "failed", error: message });
    this.m.update(name, { observed: "failed", desired: "stopped", pid: null, lastExit: message });
    this.m.event(name, "receive-failed", `VM ${name} did not arrive: ${message}`, {});
  }

  /** stop/kill of a VM that waits for its migration: the waiting process ends. */
  cancelReceive(name: string): void {
    const waiting = this.waiting.get(name);
    this.waiting.delete(name);
    waiting?.cancel();
    const m = this.migrations.get(name);
    if (m !== undefined) Object.assign(m, { status: "cancelled" });
    this.m.update(name, { observed: "stopped", desired: "stopped", pid: null, lastExit: "the wait for a migration was called off" });
    this.m.event(name, "receive-cancelled", `VM ${name} no longer waits for a migration.`, {});
  }

  /** Polls query-migrate until the migration ends; a failure leaves the VM running here, supervised as before. */
  async followMigration(name: string, live: Live, uri: string): Promise<void> {
    const view = this.migrations.get(name)!;
    for (;;) {
      await sleep(MIGRATION_POLL_MS);
      if (this.migrations.get(name) !== view) return; // a hand-over replaced it (migratedAway)
      if (this.m.live.get(name) !== live) {
        // Ended without handing over (killed, crashed): the migration did not happen. A hand-over is migratedAway's.
        const info = await live.proc.exited;
        if (info.reason !== "migrated" && this.migrations.get(name) === view && !MIGRATION_ENDED.has(view.status)) {
          const error = `the VM process ended during the migration: ${info.message}`;
          Object.assign(view, { status: "failed", error });
          this.m.event(name, "migration-failed", `The migration of VM ${name} to ${uri} failed: ${error}; the VM did not move.`, { uri, error });
        }
        return;
      }
      const st = await withTimeout(live.proc.client.execute<MigrationStatus>("query-migrate"), COMMAND_TIMEOUT_MS).catch(() => null);
      if (st === null) continue; // the process may be exiting after the hand-over: its exit says so
      Object.assign(view, { ...st, uri, direction: "out" });
      if (st.status === "failed" || st.status === "cancelled") {
        this.m.event(name, `migration-${st.status}`, `The migration of VM ${name} to ${uri} ${st.status === "failed" ? `failed: ${st.error ?? "no reason given"}` : "was cancelled"}; it runs on here.`, { uri, error: st.error ?? null });
        return;
      }
      if (st.status === "completed") return;
    }
  }

  /** The VM's process exited after handing its guest over: it runs elsewhere now; never restart it here. */
  migratedAway(name: string): void {
    let log = "";
    try {
      log = readFileSync(vmPaths(this.m.paths, name).vmmLog, "utf8").slice(-65536);
    } catch {
      // no log
    }
    const m = this.migrations.get(name);
    const uri = m?.direction === "out" ? m.uri : (/migrated to (\S+) in /.exec(log)?.[1] ?? "another host");
    const { error: _ignored, ...before } = m?.direction === "out" ? m : ({} as Partial<MigrationView>);
    const figures = { ...before, ...handoverFigures(log) };
    this.migrations.set(name, { ...figures, direction: "out", uri, status: "completed" });
    this.m.cancelRestart(name);
    this.m.update(name, { observed: "stopped", desired: "stopped", pid: null, lastExit: `migrated to ${uri}`, migratedTo: uri });
    const downtime = figures.downtimeMs !== undefined ? `; the guest stopped for ${figures.downtimeMs} ms` : "";
    this.m.event(name, "migrated", `VM ${name} was migrated to ${uri} and runs there now${downtime}.`, { uri, totalTimeMs: figures.totalTimeMs ?? null, downtimeMs: figures.downtimeMs ?? null, ram: figures.ram ?? null });
  }

  /** Whether the VM's last process logged a completed hand-over (its log is rotated at each start, so it holds that process's life only). */
  handedOver(name: string): boolean {
    try {
      return handedOverIn(readFileSync(vmPaths(this.m.paths, name).vmmLog, "utf8"));
    } catch {
      return false;
    }
  }

  /** The first start of a restored VM ran the restore: later starts boot its snapshot's kernel on its overlays. */
  restoreRan(name: string): void {
    const r = this.m.record(name);
    const { restore, ...spec } = r.spec;
    this.m.update(name, { spec, restoredFrom: restore });
    this.m.event(name, "restored", `VM ${name} was restored from ${restore}; from now on it boots afresh on its own disks when restarted.`, { snapshot: restore });
  }

  refuseWhileMigrating(name: string, action: string): void {
    const m = this.migrations.get(name);
    if (m?.direction === "out" && !MIGRATION_ENDED.has(m.status)) {
      throw illegalTransition(`VM ${name} is migrating to ${m.uri}; it cannot ${action} now (\`nodevisor vm migrate-cancel ${name}\` calls the migration off).`);
    }
  }
}
