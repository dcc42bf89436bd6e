// Test helpers shared by the VMDK and VHD tests: pattern disks, qemu-img as maker and judge.

import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import type { BlockBackend } from "../block_backend.js";

export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "nodevisor-img-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Pseudo-random bytes in 64 KiB stripes: data, hole, half data, and a few lone sectors. */
export function patternDisk(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  const stripe = 64 * 1024;
  for (let start = 0; start < size; start += stripe) {
    const kind = (start / stripe) % 4;
    const end = Math.min(size, start + (kind === 2 ? stripe / 2 : stripe));
    if (kind === 1) continue;
    if (kind === 3) {
      out.fill(0xa5, start + 4096, Math.min(size, start + 4608));
      continue;
    }
    for (let i = start; i < end; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
  }
  return out;
}

export async function writePatternRaw(dir: string, size: number, seed = 1): Promise<{ path: string; data: Uint8Array }> {
  const data = patternDisk(size, seed);
  const path = join(dir, "source.raw");
  await writeFile(path, data);
  return { path, data };
}

export function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8" });
}

/** What qemu-img itself reads from an image: the judge. */
export async function qemuReadsAsRaw(dir: string, image: string, format: string): Promise<Uint8Array> {
  const out = join(dir, "judge.raw");
  qemuImg("convert", "-f", format, "-O", "raw", image, out);
  const data = new Uint8Array(await readFile(out));
  await rm(out);
  return data;
}

export function qemuVirtualSize(image: string, format: string): number {
  return JSON.parse(qemuImg("info", "--output=json", "-f", format, image))["virtual-size"] as number;
}

/** Reads the whole disk in uneven request sizes, several at once, and compares with `expected`. */
export async function assertReadsAs(disk: BlockBackend, expected: Uint8Array): Promise<void> {
  assert.equal(disk.size, expected.length, "disk size");
  const sizes = [512, 4096, 65536 + 512, 1 << 20, 3 * 512];
  const requests: Array<{ offset: number; buf: Uint8Array }> = [];
  for (let offset = 0, i = 0; offset < disk.size; i++) {
    const length = Math.min(sizes[i % sizes.length], disk.size - offset);
    requests.push({ offset, buf: new Uint8Array(length) });
    offset += length;
  }
  for (let i = 0; i < requests.length; i += 8) {
    await Promise.all(requests.slice(i, i + 8).map((r) => disk.read(r.offset, r.buf)));
  }
  for (const r of requests) {
    const want = expected.subarray(r.offset, r.offset + r.buf.length);
    if (!Buffer.from(r.buf).equals(Buffer.from(want))) assert.fail(`bytes at offset ${r.offset} (length ${r.buf.length}) differ`);
  }
}
