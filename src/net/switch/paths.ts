// Where switches live: one directory per user holding, for switch NAME, NAME.sock (the ports),
// NAME.pid, NAME.log and, for a persistent switch, NAME.json (its network).

import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export class SwitchError extends Error {
  override name = "SwitchError";
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export function checkSwitchName(name: string): void {
  if (!NAME.test(name)) {
    throw new SwitchError(`Cannot use the switch name "${name}": use 1-32 letters, digits, dots, dashes or underscores, starting with a letter or digit.`);
  }
}

/** $NODEVISOR_SWITCH_DIR, else $XDG_RUNTIME_DIR/nodevisor/switches, else a per-user directory under the temp dir. */
export function switchDir(): string {
  const dir =
    process.env.NODEVISOR_SWITCH_DIR ??
    (process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, "nodevisor", "switches") : join(tmpdir(), `nodevisor-${process.getuid?.() ?? "user"}`, "switches"));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function switchPaths(name: string, dir = switchDir()): { socket: string; pid: string; log: string; config: string } {
  checkSwitchName(name);
  return { socket: join(dir, `${name}.sock`), pid: join(dir, `${name}.pid`), log: join(dir, `${name}.log`), config: join(dir, `${name}.json`) };
}
