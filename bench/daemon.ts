// The host daemon: API latency with 100 VMs in the inventory, host CPU of 10 idle VMs at their
// shell prompt, and VMM memory beyond the guest RAM each VM touched.

import { VMM_ARGS } from "./boot.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../src/host/api_client.js";
import { Daemon } from "../src/host/daemon.js";
import { killLeftoverVms } from "../src/host/testing/daemon_fixture.js";
import { writeTinyKernels } from "../src/host/testing/tiny_kernels.js";
import { ensureDefaultImage } from "../src/image/index.js";
import { touchedBytesFromSmaps } from "../src/vm/memory_touched.js";

const TICKS_PER_SECOND = 100;
const SAMPLE_MS = 10_000;

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * Resident bytes: all; anonymous only (the node binary's file pages are shared by every VM
 * process); and the proportional share (PSS: each shared page divided among its sharers).
 */
function rssBytes(pid: number): { all: number; anon: number; pss: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (text: string, key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * 1024;
  return { all: kib(status, "VmRSS"), anon: kib(status, "RssAnon"), pss: kib(rollup, "Pss") };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function benchDaemon(): Promise<void> {
  await ensureDefaultImage();
  const dir = mkdtempSync(join(tmpdir(), "nvb-"));
  const paths = { stateDir: join(dir, "state"), runtimeDir: join(dir, "run"), apiSocket: join(dir, "run", "api.sock") };
  const kernels = writeTinyKernels(dir);
  const daemon = await Daemon.start({
    paths,
    command: { execPath: process.execPath, prefix: VMM_ARGS },
    capacity: { cores: 64, cpuOvercommit: 4, memoryOvercommit: 4 },
    log: () => {},
  });
  const api = new ApiClient({ socketPath: paths.apiSocket });
  try {
    for (let i = 0; i < 100; i++) await api.call("POST", "/v1/vms", { name: `filler${i}`, kernel: kernels.idle, memoryMiB: 32 });
    const create: number[] = [];
    const start: number[] = [];
    const kill: number[] = [];
    const list: number[] = [];
    for (let i = 0; i < 10; i++) {
      create.push(await timed(() => api.call("POST", "/v1/vms", { name: `lat${i}`, kernel: kernels.idle, memoryMiB: 32 })));
      start.push(await timed(() => api.call("POST", `/v1/vms/lat${i}/actions`, { action: "start" })));
      kill.push(await timed(() => api.call("POST", `/v1/vms/lat${i}/actions`, { action: "kill" })));
      list.push(await timed(() => api.call("GET", "/v1/vms")));
    }
    console.log("daemon API latency with 110 VMs in the inventory (median of 10, tiny kernel):");
    console.log(`  create ${median(create).toFixed(1)} ms, start ${median(start).toFixed(0)} ms (spawns the VM process and waits for its control socket), kill ${median(kill).toFixed(0)} ms, list ${median(list).toFixed(1)} ms`);

    // 10 VMs with the default image, idle at the shell prompt.
    const names = Array.from({ length: 10 }, (_, i) => `idle${i}`);
    for (const n of names) await api.call("POST", "/v1/vms", { name: n, memoryMiB: 128 });
    await Promise.all(names.map((n) => api.call("POST", `/v1/vms/${n}/actions`, { action: "start" })));
    // Wait until every guest has reached its prompt (console log), then let boot work settle.
    const deadline = Date.now() + 600_000;
    for (const n of names) {
      while (!(await api.call<string>("GET", `/v1/vms/${n}/logs`)).includes("root@nodevisor")) {
        if (Date.now() > deadline) throw new Error(`VM ${n} did not reach its prompt`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    await new Promise((r) => setTimeout(r, 5000));
    const pids = await Promise.all(names.map(async (n) => (await api.call("GET", `/v1/vms/${n}`)).pid as number));
    const c0 = pids.map(cpuSeconds);
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    const percents = pids.map((p, i) => (100 * (cpuSeconds(p) - c0[i]!)) / (SAMPLE_MS / 1000));
    const overhead: number[] = [];
    const privateOverhead: number[] = [];
    const proportionalOverhead: number[] = [];
    for (const i of names.keys()) {
      // Read here, with the figures it is subtracted from, not the VM's sample (up to 10 s old).
      const touched = touchedBytesFromSmaps(readFileSync(`/proc/${pids[i]!}/smaps`, "latin1"), 128 * 2 ** 20) ?? 0;
      const rss = rssBytes(pids[i]!);
      overhead.push(rss.all - touched);
      privateOverhead.push(rss.anon - touched);
      proportionalOverhead.push(rss.pss - touched);
    }
    console.log("10 idle VMs (default image, 128 MiB, at the shell prompt):");
    console.log(`  host CPU per VM: median ${median(percents).toFixed(2)}% of a core, max ${Math.max(...percents).toFixed(2)}% (target < 1%)`);
    const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
    console.log(`  VMM memory beyond touched guest RAM (RSS): median ${mib(median(overhead))} MiB, max ${mib(Math.max(...overhead))} MiB (target < 40 MiB)`);
    console.log(`  the same counting private memory only (RssAnon; node's own file pages are shared): median ${mib(median(privateOverhead))} MiB, max ${mib(Math.max(...privateOverhead))} MiB`);
    console.log(`  the same counting shared pages in proportion (PSS, 10 VM processes and the daemon share node's file pages): median ${mib(median(proportionalOverhead))} MiB, max ${mib(Math.max(...proportionalOverhead))} MiB`);
  } finally {
    await daemon.close();
    killLeftoverVms(paths);
    rmSync(dir, { recursive: true, force: true });
  }
}
