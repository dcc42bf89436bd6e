// Whole-VM state in the daemon: what a spec restored from a snapshot looks like, where a VM's
// disks go on after a live snapshot, and the checks on snapshot paths and migration URIs.
// The VM manager drives the VM processes; this module holds the rules.

import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute } from "node:path";
import { readSnapshotInfo, SnapshotError } from "../vm/snapshot/snapshot_file.js";
import { checkSnapshotHeader, type SnapshotResult, type VmSnapshotHeader } from "../vm/snapshot/vm_snapshot.js";
import { parseMigrationUri } from "../vm/migration/stream.js";
import type { MigrationStatus } from "../vm/migration/outgoing.js";
import { conflict, invalid } from "./errors.js";
import { nicFromNetConfig } from "./nic_spec.js";
import type { DiskSpec, VmSpec } from "./spec.js";

/** Spec fields that shape the machine: a restored VM takes them from its snapshot. */
export const MACHINE_FIELDS = ["vcpus", "memoryMiB", "image", "kernel", "initrd", "cmdline", "disks", "nics"] as const;

const MiB = 2 ** 20;

/** The overlay `run --restore FILE --name NAME` creates for a writable disk (src/cli/run.ts). */
export const restoreOverlay = (snapshot: string, name: string, device: string): string => `${snapshot}.${name}.${device}.qcow2`;

/**
 * The spec of a VM created with `restore`: its machine read from the snapshot's header, its disks
 * the overlays the restore will create. A machine field given beside `restore` is a 400.
 */
export async function restoredSpec(input: Partial<VmSpec> & { name: string; restore: string }): Promise<Partial<VmSpec> & { name: string }> {
  const clash = MACHINE_FIELDS.find((f) => input[f] !== undefined);
  if (clash !== undefined) {
    throw invalid(`The field "${clash}" comes from the snapshot when a VM is restored; leave it out (the VM can change it after its first start).`);
  }
  const path = input.restore;
  if (!isAbsolute(path)) throw invalid(`The field "restore" must be an absolute path to a snapshot file, not "${path}".`);
  let header: VmSnapshotHeader;
  try {
    header = (await readSnapshotInfo<VmSnapshotHeader>(path)).header;
    checkSnapshotHeader(path, header);
  } catch (e) {
    if (e instanceof SnapshotError) throw invalid(`The field "restore" names no usable snapshot: ${e.message}`);
    throw e;
  }
  const c = header.config;
  if (c.firmware) throw invalid(`The snapshot "${path}" boots through guest firmware, which the daemon cannot restart; restore it with \`nodevisor run --restore\`.`);
  const disks: DiskSpec[] = header.disks.map((d, i) => {
    const limits = c.disks[i]?.limits;
    const rates: Partial<DiskSpec> = {};
    if (limits?.bandwidth) rates.bps = limits.bandwidth.size;
    if (limits?.bandwidth?.oneTimeBurst) rates.burst = limits.bandwidth.oneTimeBurst;
    if (limits?.ops) rates.iops = limits.ops.size;
    if (d.readOnly) return { path: d.frozen, readOnly: true, format: d.format, ...rates };
    const overlay = restoreOverlay(path, input.name, d.device);
    if (existsSync(overlay)) {
      throw conflict(`The disk overlay "${overlay}" exists already: a VM named ${input.name} was restored from this snapshot before; choose another name, or remove the file if nothing uses it.`);
    }
    return { path: overlay, format: "qcow2", ...rates };
  });
  const spec: Partial<VmSpec> & { name: string } = {
    ...input,
    vcpus: c.cpus,
    memoryMiB: Math.round(c.memoryBytes / MiB),
    disks,
  };
  if (c.kernel) spec.kernel = c.kernel;
  if (c.initrd) spec.initrd = c.initrd;
  if (c.append) spec.cmdline = c.append;
  if ((c.nets ?? []).length > 0) spec.nics = c.nets!.map(nicFromNetConfig);
  return spec;
}

/** A PATCH of a VM whose restore has not run yet may not change the machine. */
export function checkRestorePatch(spec: VmSpec, patch: Partial<VmSpec>): void {
  if (spec.restore === undefined) return;
  const clash = MACHINE_FIELDS.find((f) => patch[f] !== undefined && f !== "disks");
  if (clash !== undefined) throw invalid(`VM ${spec.name} starts from the snapshot "${spec.restore}", which sets its "${clash}"; start it once, then change it.`);
  if (patch.disks !== undefined && (patch.disks.length !== spec.disks.length || patch.disks.some((d, i) => d.path !== spec.disks[i]!.path))) {
    throw invalid(`VM ${spec.name} starts from the snapshot "${spec.restore}", which sets its disks; only their rate limits can change before its first start.`);
  }
}

/**
 * After a live snapshot the VM writes to a new overlay on each writable disk: the spec follows,
 * so the next start opens the overlay and never the frozen file the snapshot keeps.
 */
export function disksAfterSnapshot(disks: DiskSpec[], reply: Pick<SnapshotResult, "disks">): DiskSpec[] {
  return disks.map((d, i) => {
    const moved = reply.disks.find((r) => r.device === `vd${String.fromCharCode(0x61 + i)}`);
    return moved === undefined || d.readOnly ? d : { ...d, path: moved.active, format: "qcow2" };
  });
}

/** A snapshot path the daemon accepts: absolute, in an existing folder, not a file yet. */
export function checkSnapshotPath(path: string): void {
  if (!isAbsolute(path)) throw invalid(`The field "path" must be an absolute path for the snapshot file, not "${path}".`);
  let dir;
  try {
    dir = statSync(dirname(path));
  } catch {
    throw invalid(`Cannot write the snapshot "${path}": the folder "${dirname(path)}" does not exist; create it first.`);
  }
  if (!dir.isDirectory()) throw invalid(`Cannot write the snapshot "${path}": "${dirname(path)}" is not a folder.`);
  if (existsSync(path)) throw conflict(`The snapshot "${path}" exists already; choose another path (a snapshot is never overwritten).`);
}

/** A migration URI as `nodevisor run --incoming` and `migrate` take it; a 400 otherwise. */
export function checkMigrationUri(field: string, uri: string): void {
  try {
    parseMigrationUri(uri);
  } catch (e) {
    throw invalid(`The field "${field}" is not a migration address: ${(e as Error).message}`);
  }
}

export const MIGRATION_ENDED: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** Whether a VM process's log says it handed its guest over to a migration destination (src/vm/vm.ts). */
export function handedOverIn(vmmLog: string): boolean {
  return /migrated to \S+ in .*It runs there now\./.test(vmmLog);
}

/** The figures the source VM process logs as it hands over (src/vm/vm.ts), for the `migrated` event. */
export function handoverFigures(vmmLog: string): Partial<MigrationStatus> {
  const m = /migrated to \S+ in (\d+) ms \((\d+) rounds, (\d+) pages\); the guest stopped for (\d+) ms/.exec(vmmLog);
  if (m === null) return {};
  return { totalTimeMs: Number(m[1]), downtimeMs: Number(m[4]), ram: { rounds: Number(m[2]), pagesSent: Number(m[3]) } as MigrationStatus["ram"] };
}
