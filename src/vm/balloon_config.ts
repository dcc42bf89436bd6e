// The balloon's settings (--balloon) and the checks on a target the host asks for: every problem is
// one ConfigError sentence.

import { formatSize, parseSize } from "../storage/sizes.js";
import { ConfigError } from "./config.js";

export interface BalloonConfig {
  /** Free page reporting: the guest hands free memory back on its own. */
  reporting: boolean;
  /** The guest may take pages back from the balloon before its OOM killer runs (MemTotal then stays put). */
  deflateOnOom: boolean;
  /** How often the guest is asked for its memory statistics, in seconds; 0: never. */
  statsIntervalSec: number;
  /** The smallest memory size a balloon target may leave the guest. */
  floorBytes: number;
}

/** Statistics polling is off by default, as on QEMU: the daemon turns it on for the VMs it runs (every second). */
export const DEFAULT_BALLOON: BalloonConfig = { reporting: true, deflateOnOom: false, statsIntervalSec: 0, floorBytes: 64 * 2 ** 20 };
/** Polling faster than this costs an interpreted guest more than the figures are worth. */
export const MIN_STATS_INTERVAL_SEC = 0.5;

const onOff = (key: string, v: string): boolean => {
  if (v === "on") return true;
  if (v === "off") return false;
  throw new ConfigError(`Cannot use --balloon ${key}=${v}: write ${key}=on or ${key}=off.`);
};

export function checkStatsInterval(sec: number): void {
  if (!Number.isFinite(sec) || sec < 0 || sec > 3600 || (sec > 0 && sec < MIN_STATS_INTERVAL_SEC)) {
    throw new ConfigError(`Cannot poll the guest's memory statistics every ${sec} s: choose 0 (never) or ${MIN_STATS_INTERVAL_SEC} to 3600 seconds.`);
  }
}

/** Parses "reporting=off,deflate-on-oom=on,stats=2,floor=128M" (any subset; the rest keep their defaults). */
export function parseBalloonSpec(spec: string): BalloonConfig {
  const c: BalloonConfig = { ...DEFAULT_BALLOON };
  for (const part of spec.split(",").filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? "" : part.slice(eq + 1);
    switch (key) {
      case "reporting": c.reporting = onOff(key, value); break;
      case "deflate-on-oom": c.deflateOnOom = onOff(key, value); break;
      case "stats":
        c.statsIntervalSec = Number(value);
        if (value === "") c.statsIntervalSec = NaN;
        checkStatsInterval(c.statsIntervalSec);
        break;
      case "floor":
        try {
          c.floorBytes = parseSize(value);
        } catch {
          throw new ConfigError(`Cannot use --balloon floor=${value}: write a size such as 128M.`);
        }
        break;
      default:
        throw new ConfigError(`Cannot use --balloon ${part}: the settings are reporting=on|off, deflate-on-oom=on|off, stats=SECONDS and floor=SIZE.`);
    }
  }
  return c;
}

/** Checks a balloon target (the guest's new memory size, QMP's `value`) against RAM and the floor. */
export function checkBalloonTarget(bytes: number, memoryBytes: number, floorBytes: number): void {
  const floor = Math.min(floorBytes, memoryBytes);
  if (!Number.isFinite(bytes) || bytes > memoryBytes || bytes < floor) {
    throw new ConfigError(
      `Cannot set the guest's memory to ${Number.isFinite(bytes) && bytes >= 0 ? formatSize(bytes) : bytes}: choose a size from ${formatSize(floor)} (the floor) to ${formatSize(memoryBytes)} (its RAM).`,
    );
  }
}
