// Where the daemon keeps its socket, its inventory and each VM's files.

import { join } from "node:path";
import { homedir } from "node:os";

export interface HostPaths {
  /** Inventory (SQLite) and per-VM logs: survive a reboot. */
  stateDir: string;
  /** Sockets and pid files: gone after a reboot, like the processes they name. */
  runtimeDir: string;
  apiSocket: string;
}

/** $XDG_STATE_HOME/nodevisor and $XDG_RUNTIME_DIR/nodevisor, or /var/lib and /run as root. */
export function defaultHostPaths(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 1000): HostPaths {
  const root = uid === 0;
  const stateDir = root ? "/var/lib/nodevisor" : join(env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local/state"), "nodevisor");
  const runtimeDir = root ? "/run/nodevisor" : env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, "nodevisor") : `/tmp/nodevisor-${uid}`;
  return { stateDir, runtimeDir, apiSocket: join(runtimeDir, "api.sock") };
}

export interface VmPaths {
  dir: string;
  controlSocket: string;
  pidFile: string;
  consoleLog: string;
  vmmLog: string;
}

export function vmPaths(paths: HostPaths, name: string): VmPaths {
  const dir = join(paths.stateDir, "vms", name);
  return {
    dir,
    controlSocket: join(paths.runtimeDir, "vms", `${name}.sock`),
    pidFile: join(paths.runtimeDir, "vms", `${name}.pid`),
    consoleLog: join(dir, "console.log"),
    vmmLog: join(dir, "vmm.log"),
  };
}
