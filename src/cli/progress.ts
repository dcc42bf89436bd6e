// Renders build progress on stderr with cli-progress when it is a terminal, as plain lines otherwise.

import { createRequire } from "node:module";

// Loaded only for a terminal: it costs ~20 ms of every start, a restore's included.
export const loadCliProgress = (): typeof import("cli-progress") => createRequire(import.meta.url)("cli-progress") as typeof import("cli-progress");

export interface ProgressUpdate {
  phase: string;
  done: number;
  total: number;
}

export function progressRenderer(): { update: (p: ProgressUpdate) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    let lastPhase = "";
    return {
      update: (p) => {
        if (p.phase !== lastPhase) process.stderr.write(`nodevisor: ${p.phase}...\n`);
        lastPhase = p.phase;
      },
      stop: () => {},
    };
  }
  const cliProgress = loadCliProgress();
  const bar = new cliProgress.SingleBar(
    { format: "{phase} [{bar}] {percentage}% | {value}/{total}", stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update: (p) => {
      const total = Math.max(1, p.total);
      if (!started) {
        bar.start(total, p.done, { phase: p.phase.padEnd(12) });
        started = true;
      }
      bar.setTotal(total);
      bar.update(p.done, { phase: p.phase.padEnd(12) });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
