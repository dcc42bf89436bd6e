// Helpers for the `run` options the daemon uses to start a VM process: the pid file and the
// console terminal's type and size.

import { writeFileSync, readFileSync, unlinkSync } from "node:fs";
import { UsageError } from "./errors.js";
import type { TerminalInfo } from "../vm/config.js";

/** Writes this process's id to `path` and returns the function that removes it (if still ours). */
export function writePidFile(path: string): () => void {
  try {
    writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
  } catch (e) {
    throw new UsageError(`nodevisor run: cannot write the pid file "${path}": ${(e as Error).message}.`);
  }
  return () => {
    try {
      if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
    } catch {
      // Already gone.
    }
  };
}

const TERM_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Parses "xterm-256color" or "xterm-256color,40x132" (rows x columns). */
export function parseTerminalSpec(spec: string): TerminalInfo {
  const [term, size] = spec.split(",", 2) as [string, string | undefined];
  if (!TERM_NAME.test(term)) {
    throw new UsageError(`nodevisor run: --terminal "${spec}" does not start with a terminal type such as xterm-256color.`);
  }
  if (size === undefined) return { term, rows: 24, cols: 80 };
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(size);
  if (m === null || Number(m[1]) < 1 || Number(m[2]) < 1) {
    throw new UsageError(`nodevisor run: the size in --terminal "${spec}" must be ROWSxCOLUMNS, e.g. 40x132.`);
  }
  return { term, rows: Number(m[1]), cols: Number(m[2]) };
}

/** The terminal this process's stdout is, if it is one (TERM from the environment). */
export function terminalOfStdout(stdout: NodeJS.WriteStream = process.stdout, env = process.env): TerminalInfo | null {
  if (!stdout.isTTY || !stdout.rows || !stdout.columns) return null;
  const term = env.TERM && TERM_NAME.test(env.TERM) ? env.TERM : "vt100";
  return { term, rows: stdout.rows, cols: stdout.columns };
}
