// Storage benchmark: our qcow2 backend side by side with `qemu-img bench` on the same image,
// request size (4 KiB), queue depth and access pattern. Prints a table with the ratio.
//
// Like with like: qemu-img bench -t writeback (page cache, no flush per request) times from the
// first request to the completion of the last one; its final flush happens in blk_unref after
// "Run completed in" is printed. So our timed window ends at the last completion too; the flush
// that follows (and is not timed on either side) is shown separately for the write rows.
// Each case runs `reps` times (env BENCH_STORAGE_REPS, default 3), alternating ours and qemu-img
// on freshly prepared images; the table shows medians, with the range of the ratio.

import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { createQcow2 } from "../src/storage/qcow2/create.js";
import { Qcow2Image } from "../src/storage/qcow2/image.js";

const IMAGE_SIZE = 128 << 20;
const REQ = 4096;
const COUNT = 32768; // 128 MiB per run
const DEPTH = 16;
// An odd stride that wraps around the image: qemu-img bench's way of scattering requests.
const STRIDE = 7919 * REQ;

interface Case {
  name: string;
  write: boolean;
  step: number;
  /** Start from a fresh image, so every write allocates. */
  fresh: boolean;
}

const CASES: Case[] = [
  { name: "seq write 4K (allocating)", write: true, step: REQ, fresh: true },
  { name: "seq read 4K", write: false, step: REQ, fresh: false },
  { name: "strided read 4K", write: false, step: STRIDE, fresh: false },
  { name: "strided write 4K (in place)", write: true, step: STRIDE, fresh: false },
];

async function ours(path: string, c: Case): Promise<{ seconds: number; flushMs: number }> {
  const img = await Qcow2Image.open(path);
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    const buf = new Uint8Array(REQ).fill(0xa5);
    while (next < COUNT) {
      const off = (next++ * c.step) % IMAGE_SIZE;
      if (c.write) await img.write(off, buf);
      else await img.read(off, buf);
    }
  };
  await Promise.all(Array.from({ length: DEPTH }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const f0 = performance.now();
  if (c.write) await img.flush();
  const flushMs = performance.now() - f0;
  await img.close();
  return { seconds, flushMs };
}

function qemu(path: string, c: Case): number {
  const args = ["bench", "-f", "qcow2", "-t", "writeback", "-d", String(DEPTH), "-c", String(COUNT), "-s", String(REQ), "-S", String(c.step)];
  if (c.write) args.push("-w", "--pattern=165");
  const out = execFileSync("qemu-img", [...args, path], { encoding: "utf8" });
  const m = /Run completed in ([\d.]+) seconds/.exec(out);
  if (!m) throw new Error(`qemu-img bench printed no time: ${out}`);
  return Number(m[1]);
}

async function prepare(path: string, fresh: boolean): Promise<void> {
  await rm(path, { force: true });
  await createQcow2(path, { size: IMAGE_SIZE });
  if (!fresh) {
    const img = await Qcow2Image.open(path);
    const chunk = new Uint8Array(1 << 20).fill(0x3c);
    for (let off = 0; off < IMAGE_SIZE; off += chunk.length) await img.write(off, chunk);
    await img.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function benchStorage(reps = Number(process.env.BENCH_STORAGE_REPS ?? 3)): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-storage-"));
  const rows: string[][] = [["qcow2, 4 KiB requests, depth 16", "nodevisor MiB/s", "qemu-img MiB/s", "ratio", "ratio range", "our flush ms"]];
  try {
    const path = join(dir, "bench.qcow2");
    const mib = (COUNT * REQ) / (1 << 20);
    for (const c of CASES) {
      const a: number[] = [];
      const b: number[] = [];
      const flush: number[] = [];
      for (let r = 0; r < Math.max(1, reps); r++) {
        await prepare(path, c.fresh);
        const o = await ours(path, c);
        a.push(o.seconds);
        flush.push(o.flushMs);
        await prepare(path, c.fresh);
        b.push(qemu(path, c));
      }
      const ratios = a.map((x, i) => b[i] / x);
      rows.push([
        c.name,
        (mib / median(a)).toFixed(1),
        (mib / median(b)).toFixed(1),
        median(ratios).toFixed(2),
        `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`,
        c.write ? median(flush).toFixed(0) : "-",
      ]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "));
  console.log("ratio = nodevisor throughput / qemu-img throughput (qemu-img bench -t writeback, same image and pattern), median of runs");
  console.log("both timed to the last request's completion; the final flush is outside the window on both sides (ours shown)");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchStorage();
