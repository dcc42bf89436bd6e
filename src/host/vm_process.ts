// One VM process as the daemon sees it: started as `nodevisor run` in its own process group (or
// found again after a daemon restart through its pid file and control socket), driven only
// through its control socket, and watched until it ends.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, truncateSync, copyFileSync, unlinkSync } from "node:fs";
import { ControlClient } from "../vm/control_client.js";
import type { VmPaths } from "./paths.js";
import type { VmSpec } from "./spec.js";
import { nicArgument } from "./nic_spec.js";
import { vmmEnv, vmmNodeFlags } from "../cli/vmm_node_flags.js";

/** How a VM process ended. */
export interface VmExitInfo {
  code: number | null;
  signal: string | null;
  /** The VM's own reason from its SHUTDOWN event: poweroff, reset, quit, guest-panic, error, crashed. */
  reason: string | null;
  /** True for anything but a clean power-off, quit or reboot. */
  failed: boolean;
  /** One sentence for the event log. */
  message: string;
}

/** The command that starts a VM process: this program with `run`. */
export interface VmCommand {
  execPath: string;
  /** Arguments before `run`: node flags and the CLI script. */
  prefix: string[];
}

/** This program as a VMM process: with its Node flags (vmm_node_flags.ts), so bin/nodevisor.js does not start it a second time. */
export function currentVmCommand(): VmCommand {
  return { execPath: process.execPath, prefix: [...process.execArgv, ...vmmNodeFlags(process.execArgv), process.argv[1]!] };
}

/** The `nodevisor run` options for a spec. */
export function runArguments(spec: VmSpec, paths: VmPaths, balloon?: string): string[] {
  if (spec.restore !== undefined) return restoreArguments(spec, paths);
  const args = ["run", "--name", spec.name, "--memory", `${spec.memoryMiB}M`, "--cpus", String(spec.vcpus)];
  if (spec.image !== undefined) args.push("--image", spec.image);
  if (spec.kernel !== undefined) args.push("--kernel", spec.kernel);
  if (spec.initrd !== undefined) args.push("--initrd", spec.initrd);
  if (spec.cmdline) args.push("--append", spec.cmdline);
  for (const d of spec.disks) {
    const flags = [d.path];
    if (d.readOnly) flags.push("readonly");
    if (d.format) flags.push(`format=${d.format}`);
    if (d.bps) flags.push(`bps=${d.bps}`);
    if (d.iops) flags.push(`iops=${d.iops}`);
    if (d.burst) flags.push(`burst=${d.burst}`);
    args.push("--disk", flags.join(","));
  }
  for (const n of spec.nics ?? []) args.push("--net", nicArgument(n));
  if (spec.cpuCap !== null) args.push("--cpu-cap", String(spec.cpuCap));
  if (balloon !== undefined) args.push("--balloon", balloon);
  // --control-wait: the guest starts once we are connected, so no exit (a poweroff at once) passes unseen.
  args.push("--control-socket", paths.controlSocket, "--control-wait", "--pid-file", paths.pidFile, "--console", "none", "--terminal", "xterm-256color,24x80");
  return args;
}

/** `run --restore`: the machine (and its balloon settings) come from the snapshot, only how it is run from the spec. */
function restoreArguments(spec: VmSpec, paths: VmPaths): string[] {
  const args = ["run", "--restore", spec.restore!, "--name", spec.name];
  if (spec.cpuCap !== null) args.push("--cpu-cap", String(spec.cpuCap));
  args.push("--control-socket", paths.controlSocket, "--control-wait", "--pid-file", paths.pidFile, "--console", "none");
  return args;
}

/** `run --incoming URI`: the machine comes from the migration source. */
export function incomingArguments(spec: VmSpec, paths: VmPaths, listen: string): string[] {
  const args = ["run", "--incoming", listen, "--name", spec.name];
  // Where each of the source's disks is here: shared storage at this path, or the new file a block migration fills.
  for (const d of spec.disks) args.push("--disk", d.path);
  if (spec.cpuCap !== null) args.push("--cpu-cap", String(spec.cpuCap));
  args.push("--control-socket", paths.controlSocket, "--pid-file", paths.pidFile, "--console", "none");
  return args;
}

/**
 * glibc's malloc raises its mmap threshold each time a large block is freed, so after boot
 * the ~40 MiB of kernel and initrd buffers, once garbage, stay in a heap it cannot shrink
 * (about 45 MiB of each idle VM process). A fixed threshold keeps large blocks in their own
 * mappings, which go back to the host when freed (docs/performance.md).
 */
export const VM_MALLOC_TUNABLE = "glibc.malloc.mmap_threshold=131072";

/** The environment of a VM process: the daemon's, its name, and the malloc tunable unless the operator set that one. */
export function vmProcessEnv(base: NodeJS.ProcessEnv, name: string): NodeJS.ProcessEnv {
  const tunables = base.GLIBC_TUNABLES;
  const withTunable = !tunables ? VM_MALLOC_TUNABLE : tunables.includes("glibc.malloc.mmap_threshold=") ? tunables : `${tunables}:${VM_MALLOC_TUNABLE}`;
  return { ...vmmEnv(base), NODEVISOR_VM_NAME: name, GLIBC_TUNABLES: withTunable };
}

const CLEAN_REASONS = new Set(["poweroff", "quit", "reset", "migrated"]);

export function describeExit(code: number | null, signal: string | null, reason: string | null): VmExitInfo {
  let failed: boolean;
  let message: string;
  if (signal !== null) {
    failed = true;
    message = `the VM process was killed by ${signal}`;
  } else if (reason === "guest-panic") {
    failed = true;
    message = "the guest kernel panicked";
  } else if (reason !== null && !CLEAN_REASONS.has(reason)) {
    failed = true;
    message = `the VM stopped (${reason})${code !== null ? ` with status ${code}` : ""}`;
  } else if (code !== null && code !== 0) {
    failed = true;
    message = `the VM process exited with status ${code}${reason ? ` (${reason})` : ""}`;
  } else if (code === null && reason === null) {
    failed = true;
    message = "the VM process disappeared (it was not started by this daemon, so its status is unknown)";
  } else {
    failed = false;
    message = reason === "poweroff" ? "the guest powered off" : reason === "reset" ? "the guest rebooted" : reason === "migrated" ? "the VM moved to another host (live migration)" : "the VM stopped";
  }
  return { code, signal, reason, failed, message };
}

export interface VmProcessOptions {
  spec: VmSpec;
  paths: VmPaths;
  command: VmCommand;
  /** `nodevisor run --balloon` settings (the daemon polls statistics and sets the floor). */
  balloon?: string;
  /** How long the VM process may take to open its control socket. */
  startTimeoutMs?: number;
}

/** Keeps at most `keep` old copies: file → file.1 → file.2 ... */
export function rotateLog(path: string, keep = 3): void {
  if (!existsSync(path)) return;
  for (let i = keep - 1; i >= 1; i--) if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`);
  renameSync(path, `${path}.1`);
}

/** A log the VM process appends to (O_APPEND) can be copied away and truncated under it. */
export function truncateLogIfLarge(path: string, maxBytes: number, keep = 3): boolean {
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  for (let i = keep - 1; i >= 1; i--) if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`);
  copyFileSync(path, `${path}.1`);
  truncateSync(path, 0);
  return true;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readPidFile(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

export class VmProcess {
  readonly client: ControlClient;
  readonly pid: number;
  /** Resolves once, when the process has ended. */
  readonly exited: Promise<VmExitInfo>;
  private shutdownReason: string | null = null;

  private constructor(pid: number, client: ControlClient, child: ChildProcess | null) {
    this.pid = pid;
    this.client = client;
    client.on("SHUTDOWN", (data) => {
      if (typeof data.reason === "string") this.shutdownReason = data.reason;
    });
    this.exited = child !== null ? this.watchChild(child) : this.watchAdopted();
  }

  /** Starts `nodevisor run` for the spec and connects to its control socket. */
  static async start(o: VmProcessOptions): Promise<VmProcess> {
    const { child, earlyExit, ended } = spawnVmProcess(o, runArguments(o.spec, o.paths, o.balloon));
    try {
      const client = await Promise.race([connectWhenReady(o.paths.controlSocket, o.startTimeoutMs ?? 60_000, ended), earlyExit]);
      const vm = new VmProcess(child.pid!, client, child); // listening before the guest runs: a poweroff at once is seen
      // The guest starts once we are connected (--control-wait), after its payloads load: until then
      // the VMM refuses what needs a running VM (snapshot-save answered "the VM is starting" to a
      // manager that had just been told "running"). An early end is the exit watcher's to report.
      await untilStarted(client, ended, 5).catch(() => {});
      return vm;
    } catch (e) {
      killChildGroup(child);
      throw e;
    } finally {
      earlyExit.catch(() => {});
    }
  }

  /**
   * Starts `nodevisor run --incoming LISTEN` and resolves once it listens (with the address it
   * listens on). `arrived` resolves when the migrated VM is built and serves its control socket,
   * and rejects when the process ends first or `cancel()` is called.
   */
  static async startIncoming(o: VmProcessOptions & { listen: string; arrivalTimeoutMs: number }): Promise<IncomingVmProcess> {
    const { child, earlyExit, ended } = spawnVmProcess(o, incomingArguments(o.spec, o.paths, o.listen));
    earlyExit.catch(() => {});
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
      killChildGroup(child);
    };
    try {
      const listening = await Promise.race([waitForLogLine(o.paths.vmmLog, /waiting for a migration on (\S+)/, o.startTimeoutMs ?? 60_000, ended), earlyExit]);
      const arrived = (async () => {
        try {
          // Polling stops once the process is gone (its exit is the answer), not an hour later.
          const stop = (): boolean => cancelled || ended();
          const client = await Promise.race([connectWhenReady(o.paths.controlSocket, o.arrivalTimeoutMs, stop), earlyExit]);
          try {
            // The control socket opens before the source hands the guest over: it has arrived once it runs here.
            await Promise.race([untilStarted(client, stop), earlyExit]);
          } catch (e) {
            client.close();
            throw e;
          }
          return new VmProcess(child.pid!, client, child);
        } catch (e) {
          killChildGroup(child);
          if (cancelled) throw new Error("the wait for the migration was called off");
          if (/did not open its control socket/.test((e as Error).message)) throw new Error(`no migration arrived within ${Math.round(o.arrivalTimeoutMs / 1000)} s`);
          throw e;
        }
      })();
      return { pid: child.pid!, listening, arrived, cancel };
    } catch (e) {
      killChildGroup(child);
      throw e;
    }
  }

  /** Finds a VM process again after a daemon restart; null when it is not running. */
  static async adopt(paths: VmPaths): Promise<VmProcess | null> {
    const pid = readPidFile(paths.pidFile);
    if (pid === null || !isAlive(pid)) return null;
    try {
      const client = await ControlClient.connect(paths.controlSocket, { timeoutMs: 3000 });
      return new VmProcess(pid, client, null);
    } catch {
      return null;
    }
  }

  /** Ends the process group at once (after `quit` failed or was ignored). */
  killGroup(): void {
    for (const target of [-this.pid, this.pid]) {
      try {
        process.kill(target, "SIGKILL");
        return;
      } catch {
        // try the pid alone: an adopted process may have left its group
      }
    }
  }

  private watchChild(child: ChildProcess): Promise<VmExitInfo> {
    return new Promise((resolve) => {
      const done = (code: number | null, signal: string | null): void => {
        this.client.close();
        resolve(describeExit(code, signal, this.shutdownReason));
      };
      if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode);
      else child.once("exit", done);
    });
  }

  /** Not our child: no exit status. The control connection closing starts a watch on the pid. */
  private watchAdopted(): Promise<VmExitInfo> {
    return new Promise((resolve) => {
      this.client.onClose(() => {
        const poll = setInterval(() => {
          if (isAlive(this.pid)) return;
          clearInterval(poll);
          const clean = this.shutdownReason !== null && CLEAN_REASONS.has(this.shutdownReason);
          resolve(describeExit(clean ? 0 : null, null, this.shutdownReason));
        }, 100);
        poll.unref(); // a daemon that is shutting down does not wait for its VMs to end
      });
    });
  }
}

/** A VM process waiting for a live migration (VmProcess.startIncoming). */
export interface IncomingVmProcess {
  pid: number;
  /** Where it listens, as a URI (tcp:HOST:PORT with the port it got, or unix:PATH). */
  listening: string;
  arrived: Promise<VmProcess>;
  /** Ends the waiting process. */
  cancel(): void;
}

/** The spawned VM process; `earlyExit` rejects, and `ended()` turns true, once it exits or cannot start. */
function spawnVmProcess(o: VmProcessOptions, args: string[]): { child: ChildProcess; earlyExit: Promise<never>; ended: () => boolean } {
  mkdirSync(o.paths.dir, { recursive: true, mode: 0o700 });
  mkdirSync(o.paths.controlSocket.slice(0, o.paths.controlSocket.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  rotateLog(o.paths.consoleLog);
  rotateLog(o.paths.vmmLog);
  for (const stale of [o.paths.pidFile, o.paths.controlSocket]) {
    try {
      unlinkSync(stale);
    } catch {
      // none left over
    }
  }
  const out = openSync(o.paths.consoleLog, "a", 0o600);
  const err = openSync(o.paths.vmmLog, "a", 0o600);
  let child: ChildProcess;
  try {
    // Its own process group, its output in files: it outlives the daemon, and no pipe ties them.
    child = spawn(o.command.execPath, [...o.command.prefix, ...args], {
      detached: true,
      stdio: ["ignore", out, err],
      env: vmProcessEnv(process.env, o.spec.name),
    });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  child.unref();
  let gone = false;
  const earlyExit = new Promise<never>((_, reject) => {
    child.once("exit", (code, signal) => {
      gone = true;
      reject(new Error(startFailure(o.paths.vmmLog, code, signal)));
    });
    child.once("error", (e) => {
      gone = true;
      reject(new Error(`Cannot start the VM process: ${e.message}.`));
    });
  });
  return { child, earlyExit, ended: () => gone };
}

function killChildGroup(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Polls a log file until a line matches; resolves with the first group. Gives up once `stop()` says so. */
async function waitForLogLine(path: string, re: RegExp, timeoutMs: number, stop: () => boolean): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (stop()) throw new Error("stopped");
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch {
      // not written yet
    }
    const m = re.exec(text);
    if (m !== null) return m[1]!;
    if (Date.now() > deadline) throw new Error(`The VM process did not start listening within ${Math.round(timeoutMs / 1000)} s; see its log.`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls query-status until the VM has left "starting" (a migrated VM: the source said GO); gives up once `stop()` says so. */
async function untilStarted(client: ControlClient, stop: () => boolean, intervalMs = 50): Promise<void> {
  for (;;) {
    if (stop()) throw new Error("stopped");
    const status = await client.execute<{ state: string }>("query-status");
    if (status.state !== "starting") return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Connects to the control socket once it is there; gives up once `cancelled()` says so (called off, or the process is gone). */
async function connectWhenReady(path: string, timeoutMs: number, cancelled: () => boolean): Promise<ControlClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cancelled()) throw new Error("cancelled");
    if (existsSync(path)) {
      try {
        return await ControlClient.connect(path, { timeoutMs: 2000 });
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
    if (Date.now() > deadline) throw new Error(`The VM process did not open its control socket within ${Math.round(timeoutMs / 1000)} s; see its log.`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startFailure(vmmLog: string, code: number | null, signal: string | null): string {
  let tail = "";
  try {
    tail = readFileSync(vmmLog, "utf8").trim().split("\n").slice(-3).join(" ");
  } catch {
    // no log
  }
  const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
  return `The VM process ${how} before it was ready${tail ? `: ${tail}` : ""}`;
}
