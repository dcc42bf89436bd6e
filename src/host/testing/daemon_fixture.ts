// Test daemons: in this process (fast, for API tests) or as a child process (to kill -9 it),
// each with its own state and runtime folders, and tiny kernels for cheap VMs.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import { ApiClient } from "../api_client.js";
import { Daemon, type DaemonOptions } from "../daemon.js";
import type { HostPaths } from "../paths.js";
import { isAlive, readPidFile } from "../vm_process.js";
import { writeTinyKernels } from "./tiny_kernels.js";

export const CLI = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
/** VM processes run the CLI from source, like the daemon under test. */
export const TEST_VM_COMMAND = { execPath: process.execPath, prefix: ["--import", "tsx", CLI] };

export interface TestHost {
  dir: string;
  paths: HostPaths;
  kernels: { idle: string; busy: string; poweroff: string };
}

/** Temp folders (short paths: socket paths are limited to 107 bytes) and tiny kernels; all removed after the test, with any VM left running. */
export function testHost(t: TestContext): TestHost {
  const dir = mkdtempSync(join(tmpdir(), "nvh-"));
  const paths: HostPaths = { stateDir: join(dir, "state"), runtimeDir: join(dir, "run"), apiSocket: join(dir, "run", "api.sock") };
  t.after(() => {
    killLeftoverVms(paths);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, paths, kernels: writeTinyKernels(dir) };
}

export function killLeftoverVms(paths: HostPaths): void {
  const vmsDir = join(paths.runtimeDir, "vms");
  if (!existsSync(vmsDir)) return;
  for (const f of readdirSync(vmsDir)) {
    if (!f.endsWith(".pid")) continue;
    const pid = readPidFile(join(vmsDir, f));
    if (pid !== null && isAlive(pid)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
  }
}


/** A daemon in this process. */
export async function startDaemon(t: TestContext, host: TestHost, opts: Partial<DaemonOptions> = {}): Promise<{ daemon: Daemon; client: ApiClient }> {
  const daemon = await Daemon.start({
    paths: host.paths,
    command: TEST_VM_COMMAND,
    log: () => {},
    stopTimeoutMs: 10_000,
    restartBackoffMs: { first: 200, max: 2000 },
    ...opts,
  });
  t.after(() => daemon.close());
  return { daemon, client: new ApiClient({ socketPath: host.paths.apiSocket }) };
}

/** `nodevisor daemon` as a child process, for kill -9. */
export async function spawnDaemon(host: TestHost, extraArgs: string[] = []): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", CLI, "daemon", "--state-dir", host.paths.stateDir, "--runtime-dir", host.paths.runtimeDir, ...extraArgs],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const deadline = Date.now() + 60_000;
  while (!log.includes("listening on")) {
    if (child.exitCode !== null) throw new Error(`the daemon exited: ${log}`);
    if (Date.now() > deadline) throw new Error(`the daemon did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** Polls `check` until it returns a value that is not undefined/false. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
