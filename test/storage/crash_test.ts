// kill -9 at random moments: after each kill qemu-img check finds no corruption (leaks are
// allowed) and everything flushed before the kill reads back.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runDiskCommand } from "../../src/cli/disk.js";
import { openDisk } from "../../src/storage/open.js";
import { createQcow2 } from "../../src/storage/qcow2/create.js";
import { qemuCheck, rng, withTmp } from "../../src/storage/qcow2/test_util.js";
import { OPS_PER_FLUSH, crashOp, opData } from "./crash_ops.js";

const WRITER = fileURLToPath(new URL("./crash_writer.ts", import.meta.url));
const DISK = 16 << 20;

/** Runs the writer until a random moment after its first flush, kills it, and returns how many ops were durable. */
function runAndKill(path: string, seed: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, path, String(seed)], { stdio: ["ignore", "pipe", "inherit"] });
    let flushed = 0;
    let timer: NodeJS.Timeout | undefined;
    let text = "";
    child.stdout.on("data", (b: Buffer) => {
      text += b.toString();
      for (const m of text.matchAll(/flushed (\d+)\n/g)) flushed = Math.max(flushed, Number(m[1]));
      text = text.slice(text.lastIndexOf("\n") + 1);
      if (timer === undefined && /ready|flushed/.test(b.toString())) timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`writer exited by itself (code ${code})`));
      else resolve(flushed);
    });
    setTimeout(() => child.kill("SIGKILL"), 30000).unref();
  });
}

async function readAll(path: string): Promise<Uint8Array> {
  const d = await openDisk(path, { readOnly: true });
  const buf = new Uint8Array(d.size);
  for (let off = 0; off < d.size; off += 1 << 20) await d.read(off, buf.subarray(off, off + (1 << 20)));
  await d.close();
  return buf;
}

for (const clusterSize of [512, 65536]) {
  test(`SIGKILL during writes never corrupts a ${clusterSize}-byte-cluster image; flushed data survives`, { timeout: 240000 }, async () => {
    await withTmp(async (dir) => {
      const path = join(dir, "crash.qcow2");
      await createQcow2(path, { size: DISK, clusterSize });
      let expected: Uint8Array = new Uint8Array(DISK);
      const r = rng(clusterSize);
      const kills = 12;
      for (let round = 0; round < kills; round++) {
        const seed = round + 1;
        const flushed = await runAndKill(path, seed, Math.floor(r() * 600));
        const check = qemuCheck(path);
        assert.equal(check.corruptions, 0, `round ${round}: ${check.text}`);
        assert.ok(check.status === 0 || check.status === 3, `round ${round}: qemu-img check status ${check.status}: ${check.text}`);
        // Replay the durable ops; bytes that later (unflushed) ops may have touched are don't-care.
        const careless = new Uint8Array(DISK);
        for (let i = 0; i < flushed; i++) {
          const op = crashOp(seed, i, DISK);
          if (op.kind === "write") expected.set(opData(op), op.offset);
          else if (op.kind === "zero") expected.fill(0, op.offset, op.offset + op.length);
          // Discard unmaps only the whole clusters inside the range; partial ones keep their data.
          else expected.fill(0, Math.ceil(op.offset / clusterSize) * clusterSize, Math.floor((op.offset + op.length) / clusterSize) * clusterSize);
        }
        for (let i = flushed; i < flushed + 2 * OPS_PER_FLUSH; i++) {
          const op = crashOp(seed, i, DISK);
          careless.fill(1, op.offset, op.offset + op.length);
        }
        const actual = await readAll(path);
        for (let b = 0; b < DISK; b++) {
          if (!careless[b] && actual[b] !== expected[b]) assert.fail(`round ${round}: byte ${b} lost (flushed ops: ${flushed})`);
        }
        expected = actual;
      }
      const repair = await runDiskCommand(["check", "--repair", path], { stdout: () => {}, stderr: () => {} });
      assert.equal(repair, 0);
      const after = qemuCheck(path);
      assert.equal(after.status, 0, after.text);
      assert.ok(Buffer.from(await readAll(path)).equals(Buffer.from(expected)), "repair changed the disk content");
    });
  });
}
