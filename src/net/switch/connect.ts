// Plugs a NIC into switch NAME: connects to its socket, starting the switch on demand (a detached
// `nodevisor switch serve NAME` process that stops once its last port has gone), then says hello.

import { spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StreamSocketBackend } from "../stream_backend.js";
import { encodeFrame } from "../stream_framing.js";
import { encodeHello } from "./hello.js";
import { SwitchError, switchPaths } from "./paths.js";
import type { PortMode } from "./vlan.js";

export interface SwitchPortOptions {
  switchName: string;
  mode: PortMode;
  mac: Uint8Array;
  vmName: string | null;
  log?: (msg: string) => void;
  /** How long to keep trying while an on-demand switch starts (default 15 s). */
  timeoutMs?: number;
}

/** How to run this nodevisor's CLI again: the bundle itself, or main.ts through tsx when running from source. */
export function cliCommand(): { args: string[]; cwd: string } {
  return cliCommandFor(fileURLToPath(import.meta.url));
}

/** cliCommand for this module at `here` (exported for tests). */
export function cliCommandFor(here: string): { args: string[]; cwd: string } {
  if (here.endsWith(".ts")) {
    const root = join(dirname(here), "..", "..", "..");
    return { args: ["--import", "tsx", join(root, "src", "cli", "main.ts")], cwd: root };
  }
  // esbuild's code splitting may put this module in a shared chunk in dist/, beside dist/cli/main.js.
  const cliDir = basename(dirname(here)) === "cli" ? dirname(here) : join(dirname(here), "cli");
  return { args: [join(cliDir, "main.js")], cwd: cliDir };
}

function tryConnect(path: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", () => resolve(null));
  });
}

/** Starts `nodevisor switch serve NAME` in the background, logging to the switch's log file. */
export function spawnSwitch(name: string): void {
  const p = switchPaths(name);
  const cli = cliCommand();
  const log = openSync(p.log, "a");
  try {
    spawn(process.execPath, [...cli.args, "switch", "serve", name], { cwd: cli.cwd, detached: true, stdio: ["ignore", log, log] }).unref();
  } finally {
    closeSync(log);
  }
}

export async function connectSwitchPort(o: SwitchPortOptions): Promise<StreamSocketBackend> {
  const p = switchPaths(o.switchName);
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  let spawned = false;
  for (;;) {
    const s = await tryConnect(p.socket);
    if (s !== null) {
      s.write(encodeFrame(encodeHello(o.mac, { mode: o.mode, name: o.vmName })));
      return new StreamSocketBackend(`switch:${o.switchName}`, s, o.log);
    }
    if (!spawned) {
      spawnSwitch(o.switchName);
      spawned = true;
    }
    if (Date.now() > deadline) {
      throw new SwitchError(`Cannot reach the switch "${o.switchName}": its socket ${p.socket} does not answer and starting it failed; see ${p.log}.`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
