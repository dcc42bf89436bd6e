// The deterministic write sequence shared by the crash-test writer and its judge.

import { pattern, rng } from "../../src/storage/qcow2/test_util.js";

export interface CrashOp {
  kind: "write" | "discard" | "zero";
  offset: number;
  length: number;
  seed: number;
}

export const OPS_PER_FLUSH = 6;

/** Op i of the sequence for a seed (writes of 512 B to 256 KiB, some discards and write-zeroes). */
export function crashOp(seed: number, i: number, diskSize: number): CrashOp {
  const r = rng(seed * 7919 + i * 104729 + 1);
  const k = r();
  const length = (1 + Math.floor(r() * 512)) * 512;
  const offset = Math.floor(r() * ((diskSize - length) / 512)) * 512;
  const kind = k < 0.8 ? "write" : k < 0.9 ? "discard" : "zero";
  return { kind, offset, length, seed: seed * 1_000_000 + i };
}

export function opData(op: CrashOp): Uint8Array {
  return pattern(op.length, op.seed);
}
