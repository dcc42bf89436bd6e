// A VM's configuration and its validation. Every problem becomes one ConfigError sentence that
// names what is wrong and how to fix it; the CLI prints it and exits with status 2.

import { accessSync, constants, statSync } from "node:fs";
import { MAX_CPUS, MAX_MEMORY, MIN_MEMORY, VIRTIO_SLOTS } from "../machine/layout.js";
import { FIXED_VIRTIO_DEVICES, FREE_VIRTIO_SLOTS, virtioSlotPlan } from "./virtio_slots.js";
import { formatSize, parseSize } from "../storage/sizes.js";
import type { RateLimitConfig } from "../storage/ratelimit/rate_limited_backend.js";
import type { DiskFormat } from "../storage/open.js";
import type { NetConfig } from "../net/spec.js";
import type { BalloonConfig } from "./balloon_config.js";

/** The name of a VM started without --name. */
export const DEFAULT_VM_NAME = "vm";

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface DiskConfig {
  path: string;
  readOnly: boolean;
  format?: DiskFormat;
  /** Firecracker-style token buckets; absent means unlimited. */
  limits?: RateLimitConfig;
}

export interface VmConfig {
  name: string;
  memoryBytes: number;
  cpus: number;
  kernel: string | null;
  initrd: string | null;
  firmware: string | null;
  /** Kernel command line as given by the user (the VM adds what its devices need). */
  append: string;
  disks: DiskConfig[];
  /** Virtual NICs (--net), in guest order (eth0, eth1, ...). */
  nets?: NetConfig[];
  consoleLog: string | null;
  controlSocket: string | null;
  /** A command to run in the guest (argv); null for an interactive console. */
  command: string[] | null;
  /** CPU cap, per cent of a host core per vCPU; null or absent: uncapped. */
  cpuCap?: number | null;
  /** Execution tier: the interpreter, or the JIT compiling hot blocks to wasm (absent: defaultCpuTier()). */
  cpuTier?: CpuTier;
  /** The terminal the serial console is shown on (TERM and size), told to the guest at boot. */
  terminal?: TerminalInfo | null;
  /** The memory balloon's settings (--balloon); absent: DEFAULT_BALLOON. */
  balloon?: BalloonConfig;
}

export type CpuTier = "interp" | "jit";
export const CPU_TIERS: readonly CpuTier[] = ["interp", "jit"];

/**
 * The tier a VM gets when none is chosen: NODEVISOR_CPU_TIER (so a whole test run can use either),
 * else the faster one, the JIT, with any number of vCPUs (several run on worker threads, each
 * compiling its own hart's code: docs/jit.md, "Several vCPU threads").
 */
export function defaultCpuTier(): CpuTier {
  const env = process.env.NODEVISOR_CPU_TIER;
  if (env === "jit" || env === "interp") return env;
  return "jit";
}

/** Parses --cpu-tier. */
export function parseCpuTier(text: string): CpuTier {
  if ((CPU_TIERS as readonly string[]).includes(text)) return text as CpuTier;
  throw new ConfigError(`Cannot use CPU tier "${text}": choose ${CPU_TIERS.join(" or ")}.`);
}

export interface TerminalInfo {
  term: string;
  rows: number;
  cols: number;
}

/** Run-time disk limits (bytes and requests per second) as the rate limiter's one-second buckets. */
export function diskLimitsToRateLimit(l: { bps?: number; iops?: number; burst?: number }): RateLimitConfig {
  const c: RateLimitConfig = {};
  if (l.bps) c.bandwidth = { size: l.bps, refillTimeMs: 1000, ...(l.burst ? { oneTimeBurst: l.burst } : {}) };
  if (l.iops) c.ops = { size: l.iops, refillTimeMs: 1000 };
  return c;
}

export function checkCpuCap(cap: number): void {
  if (!Number.isFinite(cap) || cap < 1 || cap > 100) {
    throw new ConfigError(`Cannot cap the vCPUs at ${cap}%: choose a per cent of a core from 1 to 100.`);
  }
}

/** Parses "512M", "2G", "1048576" (bytes); a bare number below 64Ki is taken as MiB, like QEMU's -m. */
export function parseMemorySize(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch {
    throw new ConfigError(`Cannot use memory size "${text}": write a number with an optional K, M or G suffix, e.g. 512M.`);
  }
  return /^\s*\d+(\.\d+)?\s*$/.test(text) && bytes < 65536 ? Math.round(bytes * 2 ** 20) : bytes;
}

export function checkMemory(bytes: number): void {
  if (!Number.isFinite(bytes) || bytes < MIN_MEMORY || bytes > MAX_MEMORY) {
    throw new ConfigError(
      `Cannot give the VM ${Number.isFinite(bytes) ? formatSize(bytes) : bytes} of memory: choose between ${formatSize(MIN_MEMORY)} and ${formatSize(MAX_MEMORY)}.`,
    );
  }
  if (bytes % (1 << 20) !== 0) throw new ConfigError(`Cannot give the VM ${bytes} bytes of memory: use a whole number of MiB.`);
}

export function checkCpus(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_CPUS) {
    throw new ConfigError(`Cannot give the VM ${n} vCPUs: choose a whole number from 1 to ${MAX_CPUS}.`);
  }
}

/** Checks that a file the VM needs exists and is readable (and writable for read-write disks). */
export function checkFile(what: string, path: string, writable = false): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new ConfigError(`Cannot find the ${what} "${path}": check the path.`);
  }
  if (!isFile) throw new ConfigError(`Cannot use the ${what} "${path}": it is not a regular file.`);
  try {
    accessSync(path, writable ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch {
    throw new ConfigError(
      `Cannot ${writable ? "write" : "read"} the ${what} "${path}": check its permissions${writable ? ", or attach it with ,readonly" : ""}.`,
    );
  }
}

export function validateConfig(c: VmConfig): void {
  checkMemory(c.memoryBytes);
  checkCpus(c.cpus);
  if (!c.kernel && !c.firmware) throw new ConfigError("Nothing to boot: give --kernel FILE, --firmware FILE or --image NAME.");
  if (c.kernel) checkFile("kernel", c.kernel);
  if (c.initrd) checkFile("initrd", c.initrd);
  if (c.firmware) checkFile("firmware", c.firmware);
  for (const d of c.disks) checkFile("disk", d.path, !d.readOnly);
  if (virtioSlotPlan(c).length > VIRTIO_SLOTS) {
    const nics = c.nets?.length ?? 0;
    throw new ConfigError(
      `Cannot attach ${c.disks.length} disks${nics ? ` and ${nics} NICs` : ""}: this board has room for ${FREE_VIRTIO_SLOTS} (${VIRTIO_SLOTS} virtio slots, ${FIXED_VIRTIO_DEVICES.length} taken by the entropy source, the consoles and the balloon; disks and NICs share the rest).`,
    );
  }
}
