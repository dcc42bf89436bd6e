// Helpers for the qcow2 tests: temp dirs, qemu-img as the independent judge, deterministic patterns.

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "qcow2-test-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** qemu-img check --output=json; exit status 0 (clean) or 3 (leaks only) is returned with the report. */
export function qemuCheck(path: string): { status: number; corruptions: number; leaks: number; text: string } {
  const r = spawnSync("qemu-img", ["check", "--output=json", path], { encoding: "utf8" });
  let j: { corruptions?: number; leaks?: number } = {};
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    // keep empty: the status and text tell what went wrong
  }
  return { status: r.status ?? -1, corruptions: j.corruptions ?? 0, leaks: j.leaks ?? 0, text: r.stdout + r.stderr };
}

/** qemu-img compare of two images (formats probed, backing chains followed); true when identical. */
export function qemuCompare(a: string, b: string, formatA?: string, formatB?: string): { same: boolean; text: string } {
  const args = ["compare"];
  if (formatA) args.push("-f", formatA);
  if (formatB) args.push("-F", formatB);
  const r = spawnSync("qemu-img", [...args, a, b], { encoding: "utf8" });
  return { same: r.status === 0, text: r.stdout + r.stderr };
}

/** Deterministic pseudo-random bytes (xorshift32) for a seed. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
    out[i + 1] = x >>> 8;
    out[i + 2] = x >>> 16;
    out[i + 3] = x >>> 24;
  }
  return out;
}

/** A tiny deterministic random number generator for test choices. */
export function rng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
