import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../seams/guest_ram.js";
import { SbiFirmware, EXT_BASE, EXT_TIME, EXT_IPI, EXT_HSM, EXT_SRST, EXT_DBCN, type SbiHart } from "./sbi.js";

class FakeHart implements SbiHart {
  stopped = false;
  waiting = false;
  stimecmp = Infinity;
  privilege: 0 | 1 | 3 = 1;
  x = new Array<bigint>(32).fill(0n);
  pending = new Map<number, boolean>();
  booted: [number, bigint, bigint] | null = null;
  tlbFlushes = 0;
  constructor(readonly hartId: number) {}
  getX(i: number): bigint {
    return this.x[i]!;
  }
  setX(i: number, v: bigint): void {
    this.x[i] = BigInt.asUintN(64, v);
  }
  setInterruptPending(bit: number, level: boolean): void {
    this.pending.set(bit, level);
  }
  enterSupervisorBoot(pc: number, a0: bigint, a1: bigint): void {
    this.booted = [pc, a0, a1];
  }
  flushTlb(): void {
    this.tlbFlushes++;
  }
  flushIcache(): void {}
}

function setup(n = 2) {
  const harts = Array.from({ length: n }, (_, i) => new FakeHart(i));
  const ram = new GuestRam(0x8000_0000, 1 << 20);
  const out: number[] = [];
  const resets: Array<[string, number]> = [];
  const sbi = new SbiFirmware({
    harts,
    ram,
    consoleWrite: (b) => out.push(...b),
    onSystemReset: (k, c) => resets.push([k, c]),
  });
  const call = (h: FakeHart, ext: number, fid: number, ...args: bigint[]): [bigint, bigint] => {
    h.x[17] = BigInt(ext);
    h.x[16] = BigInt(fid);
    args.forEach((v, i) => (h.x[10 + i] = BigInt.asUintN(64, v)));
    sbi.handle(h);
    return [BigInt.asIntN(64, h.x[10]!), h.x[11]!];
  };
  return { harts, ram, out, resets, sbi, call };
}

test("BASE reports spec 2.0 and probes only implemented extensions", () => {
  const { harts, call } = setup();
  assert.deepEqual(call(harts[0]!, EXT_BASE, 0), [0n, 2n << 24n]);
  assert.deepEqual(call(harts[0]!, EXT_BASE, 3, BigInt(EXT_HSM)), [0n, 1n]);
  assert.deepEqual(call(harts[0]!, EXT_BASE, 3, 0x12345n), [0n, 0n]);
  assert.deepEqual(call(harts[0]!, 0x0a000000, 0), [-2n, 0n]);
});

test("TIME arms stimecmp and clears a pending timer interrupt; all-ones disarms", () => {
  const { harts, call } = setup();
  call(harts[0]!, EXT_TIME, 0, 12345n);
  assert.equal(harts[0]!.stimecmp, 12345);
  assert.equal(harts[0]!.pending.get(5), false);
  call(harts[0]!, EXT_TIME, 0, -1n);
  assert.equal(harts[0]!.stimecmp, Infinity);
});

test("IPI sets SSIP on the harts in the mask, and base -1 means all", () => {
  const { harts, call } = setup(3);
  assert.deepEqual(call(harts[0]!, EXT_IPI, 0, 0b10n, 0n), [0n, 0n]);
  assert.equal(harts[1]!.pending.get(1), true);
  assert.equal(harts[2]!.pending.get(1), undefined);
  call(harts[0]!, EXT_IPI, 0, 0n, -1n);
  assert.equal(harts[2]!.pending.get(1), true);
  assert.deepEqual(call(harts[0]!, EXT_IPI, 0, 0b1n, 7n), [-3n, 0n], "hart 7 does not exist");
});

test("HSM starts a stopped hart at the given address with a0=hartid a1=opaque", () => {
  const { harts, call } = setup();
  harts[1]!.stopped = true;
  assert.deepEqual(call(harts[0]!, EXT_HSM, 2, 1n), [0n, 1n], "stopped");
  assert.deepEqual(call(harts[0]!, EXT_HSM, 0, 1n, 0x8000_2000n, 0xabcn), [0n, 0n]);
  assert.deepEqual(harts[1]!.booted, [0x8000_2000, 1n, 0xabcn]);
  assert.equal(harts[1]!.stopped, false);
  assert.deepEqual(call(harts[0]!, EXT_HSM, 0, 1n, 0x8000_2000n, 0n), [-6n, 0n], "already started");
  assert.deepEqual(call(harts[0]!, EXT_HSM, 0, 9n, 0x8000_2000n, 0n), [-3n, 0n], "no such hart");
  harts[1]!.stopped = true;
  assert.deepEqual(call(harts[0]!, EXT_HSM, 0, 1n, 0x10n, 0n), [-5n, 0n], "start address outside RAM");
});

test("SRST shutdown reports the reason as exit code", () => {
  const { harts, call, resets } = setup();
  call(harts[0]!, EXT_SRST, 0, 0n, 0n);
  call(harts[0]!, EXT_SRST, 0, 0n, 1n);
  call(harts[0]!, EXT_SRST, 0, 1n, 0n);
  assert.deepEqual(resets, [["shutdown", 0], ["shutdown", 1], ["reboot", 0]]);
});

test("DBCN writes guest bytes to the console and rejects buffers outside RAM", () => {
  const { harts, call, ram, out } = setup();
  ram.write(0x8000_1000, new TextEncoder().encode("hi!"));
  assert.deepEqual(call(harts[0]!, EXT_DBCN, 0, 3n, 0x8000_1000n, 0n), [0n, 3n]);
  assert.equal(Buffer.from(out).toString(), "hi!");
  assert.deepEqual(call(harts[0]!, EXT_DBCN, 0, 16n, 0x1000n, 0n), [-3n, 0n]);
  assert.deepEqual(call(harts[0]!, EXT_DBCN, 0, 16n, 0n, 0xffffffffn), [-3n, 0n]);
  call(harts[0]!, EXT_DBCN, 2, 0x41n);
  assert.equal(Buffer.from(out).toString(), "hi!A");
});
