// A hostile guest cannot make the VMM unresponsive, unbounded or deaf to signals. Each test
// boots a bare-metal attacker (test/testing/hostile_guests.ts) and asserts a bound the VMM
// promises (docs/limits.md): control-socket answers, resident memory, log volume, exit on a
// signal — never a speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { CLI, ROOT } from "./helpers.js";
import { ControlClient } from "../src/vm/control_client.js";
import { balloonAbuse, blockResetStorm, consoleFlood, interruptStorm, logFlood, spinForever } from "./testing/hostile_guests.js";
import type { VmStats, VmStatus } from "../src/vm/controller.js";

interface Vmm {
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
const KILL_AFTER_MS = 120_000;

function startVmm(firmware: Uint8Array, extraArgs: string[] = []): Vmm {
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

async function connect(vmm: Vmm): Promise<ControlClient> {
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
async function statusLatencies(client: ControlClient, ms: number): Promise<number[]> {
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

const median = (xs: number[]): number => xs[Math.floor(xs.length / 2)]!;

/** Sends quit. As with QMP's quit, the connection may close before the reply arrives: the promise checked is the exit. */
async function quit(client: ControlClient): Promise<void> {
  await client.execute("quit").catch((e: Error) => {
    if (e.name !== "ControlConnectionError") throw e;
  });
}

test("an interrupt storm on the UART: the control socket answers within 100 ms and quit stops the VM within 1 s", async () => {
  const vmm = startVmm(interruptStorm());
  try {
    const client = await connect(vmm);
    const lat = await statusLatencies(client, 2000).catch((e: Error) => {
      throw new Error(`${e.message} VMM stderr: ${vmm.stderrText()}`);
    });
    // The promise is 100 ms; the median must meet it, and no answer may take ten times that
    // even on a CI machine whose two cores run other tests.
    assert.ok(median(lat) < 100, `median query-status ${median(lat).toFixed(1)} ms: ${lat.map((x) => x.toFixed(0)).join(" ")}`);
    assert.ok(lat[lat.length - 1]! < 1000, `slowest query-status ${lat[lat.length - 1]!.toFixed(0)} ms`);
    const t0 = performance.now();
    await quit(client);
    const { at, code } = await vmm.exited;
    assert.equal(code, 0, vmm.stderrText());
    assert.ok(at - t0 < 1000, `quit took ${(at - t0).toFixed(0)} ms to end the process`);
    client.close();
  } finally {
    vmm.cleanup();
  }
});

test("SIGTERM and SIGINT end a VM under an interrupt storm within a few seconds", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const vmm = startVmm(interruptStorm());
    try {
      const client = await connect(vmm);
      await client.execute("query-status");
      const t0 = performance.now();
      vmm.child.kill(signal);
      const { at } = await vmm.exited;
      assert.ok(at - t0 < 5000, `${signal} took ${(at - t0).toFixed(0)} ms to end the process`);
      client.close();
    } finally {
      vmm.cleanup();
    }
  }
});

test("4 vCPUs spinning with interrupts off: paused (nothing retires), resumed, counted and quit", async () => {
  const vmm = startVmm(spinForever(), ["--cpus", "4"]);
  try {
    const client = await connect(vmm);
    const retired = async (): Promise<number> => (await client.execute<VmStats>("query-stats")).instructionsRetired;
    const first = await retired();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await retired()) > first, "the harts run");
    await client.execute("pause");
    assert.equal((await client.execute<VmStatus>("query-status")).state, "paused");
    const paused = await retired();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await retired(), paused, "no hart retires an instruction while paused");
    await client.execute("resume");
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await retired()) > paused, "the harts run again");
    await quit(client);
    assert.equal((await vmm.exited).code, 0, vmm.stderrText());
    client.close();
  } finally {
    vmm.cleanup();
  }
});

test("a flood of ignored register writes logs a bounded amount, with the count of what was suppressed", async () => {
  const vmm = startVmm(logFlood(0));
  try {
    const client = await connect(vmm);
    await new Promise((r) => setTimeout(r, 2500));
    await quit(client);
    await vmm.exited;
    client.close();
    // 20 lines a second of at most ~600 bytes, plus one summary line a second.
    assert.ok(vmm.stderrBytes() < 64 * 1024, `the VMM wrote ${vmm.stderrBytes()} bytes of log in 2.5 s`);
    assert.match(vmm.stderrText(), /ignored: a 1-byte write/);
    assert.match(vmm.stderrText(), /\d+ more messages like these suppressed/);
  } finally {
    vmm.cleanup();
  }
});

test("100 MiB written to the status console (hvc2) costs no memory beyond a short line", async () => {
  // No disks: slot 0 is virtio-rng, then the stdout, stderr and status consoles.
  const vmm = startVmm(consoleFlood(3, 100));
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms; peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
    assert.equal(code, 0, vmm.stderrText());
    // Node and the VMM take ~100 MiB, guest RAM touched ~3 MiB; the old VMM reached 1.2-1.6 GiB here.
    assert.ok(vmm.peakRssMiB() < 300, `peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
  } finally {
    vmm.cleanup();
  }
});

test("virtio-blk reset with 16 x 32 MiB writes in flight, repeated: memory stays bounded and a rate-limited VM still exits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-blk-"));
  const disk = join(dir, "d.img");
  writeFileSync(disk, new Uint8Array(64 << 20));
  const vmm = startVmm(blockResetStorm(0, 16, 32 << 20, 8), ["--disk", `${disk},bps=1M`]);
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms: the VM never exited; peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
    assert.equal(code, 0, vmm.stderrText());
    // Guest RAM touched: 32 MiB buffer; in-flight data is capped at 64 MiB + one request per disk.
    assert.ok(vmm.peakRssMiB() < 128 + 96 + 150, `peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
  } finally {
    vmm.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hostile balloon traffic (PFNs outside RAM or aliasing a live page, pages twice, overlapping and out-of-RAM reports) frees no live page and crashes nothing", async () => {
  // No disks or NICs: the balloon follows the entropy source and the three consoles.
  const vmm = startVmm(balloonAbuse(4, 128 << 20));
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms: the VM never exited; ${vmm.stderrText()}`);
    assert.equal(code, 0, `the live page lost its contents, or the VMM failed: ${vmm.stderrText()}`);
    assert.match(vmm.stderrText(), /virtio-balloon.*outside RAM/);
    assert.doesNotMatch(vmm.stderrText(), /internal error/);
  } finally {
    vmm.cleanup();
  }
});
