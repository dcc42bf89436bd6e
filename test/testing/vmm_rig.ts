// A VMM process for the hostile-guest tests: a bare-metal guest as its firmware, its control
// socket, stderr, peak resident memory, and a kill after two minutes so a broken promise fails a
// test instead of hanging it.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { CLI, ROOT } from "../helpers.js";
import { ControlClient } from "../../src/vm/control_client.js";

export interface Vmm {
  child: ChildProcess;
  sock: string;
  dir: string;
  stderrBytes: () => number;
  stderrText: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Highest resident set size seen so far, in MiB (sampled every 20 ms from /proc). */
  peakRssMiB: () => number;
  cleanup: () => void;
}

/** A VMM that breaks its promises must fail the test, not hang it: it is killed after this. */
export const KILL_AFTER_MS = 120_000;

export function startVmm(firmware: Uint8Array, extraArgs: string[] = []): Vmm {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-hostile-"));
  const fw = join(dir, "fw.bin");
  writeFileSync(fw, firmware);
  const sock = join(dir, "vm.sock");
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "run", "--memory", "128M", "--firmware", fw, "--control-socket", sock, ...extraArgs], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.resume(); // a reader that keeps up, as a terminal would
  let stderr = "";
  let stderrBytes = 0;
  child.stderr!.on("data", (d: Buffer) => {
    stderrBytes += d.length;
    if (stderr.length < 65536) stderr += d.toString();
  });
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // the process is gone
    }
  }, 20);
  const killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
    child.on("close", (code, signal) => {
      clearInterval(sampler);
      clearTimeout(killer);
      r({ code, signal, at: performance.now() });
    }),
  );
  return {
    child,
    sock,
    dir,
    stderrBytes: () => stderrBytes,
    stderrText: () => stderr,
    exited,
    peakRssMiB: () => peak,
    cleanup: () => {
      clearInterval(sampler);
      clearTimeout(killer);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connect(vmm: Vmm): Promise<ControlClient> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    // The socket file appears at bind(), a moment before the server listens: a connection in
    // between is refused (seen once in CI on a loaded machine), so that is retried too.
    if (existsSync(vmm.sock)) {
      try {
        return await ControlClient.connect(vmm.sock);
      } catch (e) {
        if (!/ECONNREFUSED/.test((e as Error).message) || performance.now() > deadline) throw new Error(`${(e as Error).message} VMM stderr: ${vmm.stderrText()}`);
      }
    }
    if (performance.now() > deadline) throw new Error(`the control socket never appeared: ${vmm.stderrText()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** query-status round trips, in ms, one every 50 ms for `ms`. */
export async function statusLatencies(client: ControlClient, ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await client.execute("query-status");
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
  return out.sort((x, y) => x - y);
}

export const median = (xs: number[]): number => xs[Math.floor(xs.length / 2)]!;

/** Sends quit. As with QMP's quit, the connection may close before the reply arrives: the promise checked is the exit. */
export async function quit(client: ControlClient): Promise<void> {
  await client.execute("quit").catch((e: Error) => {
    if (e.name !== "ControlConnectionError") throw e;
  });
}

