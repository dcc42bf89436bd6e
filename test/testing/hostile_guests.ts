// Bare-metal M-mode programs that attack the VMM the way a hostile guest would: interrupt
// storms, log floods, console floods, virtio resets with I/O in flight. Each is a firmware
// image for `nodevisor run --firmware FILE`, built with the test assembler.

import { Asm } from "../../src/cpu/testing/asm.js";
import { TEST_BASE, UART_BASE, VIRTIO_BASE, VIRTIO_STRIDE } from "../../src/machine/layout.js";

const RAM = 0x8000_0000;
const TEST_PASS = 0x5555;

// virtio-mmio v2 registers.
const REG_DRIVER_FEATURES = 0x020;
const REG_DRIVER_FEATURES_SEL = 0x024;
const REG_QUEUE_SEL = 0x030;
const REG_QUEUE_NUM = 0x038;
const REG_QUEUE_READY = 0x044;
const REG_QUEUE_NOTIFY = 0x050;
const REG_STATUS = 0x070;
const REG_QUEUE_DESC_LOW = 0x080;
const REG_QUEUE_DRIVER_LOW = 0x090;
const REG_QUEUE_DEVICE_LOW = 0x0a0;
const STATUS_FEATURES_OK = 1 | 2 | 8;
const STATUS_DRIVER_OK = STATUS_FEATURES_OK | 4;

// Where the programs keep their rings and buffers (the program itself sits at the start of RAM).
const DESC = RAM + 0x10_0000;
const AVAIL = RAM + 0x10_1000;
const USED = RAM + 0x10_2000;
const BUFFER = RAM + 0x20_0000;

// Registers: x5-x7 scratch, x8 device base, x9 avail index, x18-x20 loop counters.
const T0 = 5, T1 = 6, T2 = 7, BASE = 8, IDX = 9, S2 = 18, S3 = 19;

function mmioWrite(a: Asm, offset: number, value: number): void {
  a.li(T0, value);
  a.sw(T0, BASE, offset);
}

/** Resets the device at `slot`, accepts VERSION_1 (and `featuresLow`), and brings up queue `queue` with `size` entries. */
function bringUp(a: Asm, slot: number, queue: number, size: number, featuresLow = 0): void {
  a.li(BASE, VIRTIO_BASE + slot * VIRTIO_STRIDE);
  mmioWrite(a, REG_STATUS, 0);
  mmioWrite(a, REG_STATUS, 1);
  mmioWrite(a, REG_STATUS, 3);
  mmioWrite(a, REG_DRIVER_FEATURES_SEL, 1);
  mmioWrite(a, REG_DRIVER_FEATURES, 1); // VIRTIO_F_VERSION_1 (bit 32)
  mmioWrite(a, REG_DRIVER_FEATURES_SEL, 0);
  mmioWrite(a, REG_DRIVER_FEATURES, featuresLow);
  mmioWrite(a, REG_STATUS, STATUS_FEATURES_OK);
  mmioWrite(a, REG_QUEUE_SEL, queue);
  mmioWrite(a, REG_QUEUE_NUM, size);
  mmioWrite(a, REG_QUEUE_DESC_LOW, DESC);
  mmioWrite(a, REG_QUEUE_DESC_LOW + 4, 0);
  mmioWrite(a, REG_QUEUE_DRIVER_LOW, AVAIL);
  mmioWrite(a, REG_QUEUE_DRIVER_LOW + 4, 0);
  mmioWrite(a, REG_QUEUE_DEVICE_LOW, USED);
  mmioWrite(a, REG_QUEUE_DEVICE_LOW + 4, 0);
  mmioWrite(a, REG_QUEUE_READY, 1);
  mmioWrite(a, REG_STATUS, STATUS_DRIVER_OK);
  // Fresh rings: avail and used indexes start at 0.
  a.li(T0, AVAIL).sw(0, T0, 0);
  a.li(T0, USED).sw(0, T0, 0);
  a.li(IDX, 0);
}

/** Writes descriptor `i`: addr, len, flags, next. */
function descriptor(a: Asm, i: number, addr: number, len: number, flags: number, next: number): void {
  a.li(T0, DESC + 16 * i);
  a.li(T1, addr).sd(T1, T0, 0);
  a.li(T1, len).sw(T1, T0, 8);
  a.li(T1, flags | (next << 16)).sw(T1, T0, 12);
}

/** Publishes head `head` in avail slot IDX % size, bumps the index (x9) and notifies `queue`. */
function publish(a: Asm, head: number, size: number, queue: number): void {
  a.andi(T0, IDX, size - 1).slli(T0, T0, 1).li(T1, AVAIL + 4).add(T0, T0, T1);
  a.li(T1, head).store(1, T1, T0, 0);
  a.addi(IDX, IDX, 1);
  a.fence();
  a.li(T0, AVAIL).store(1, IDX, T0, 2);
  a.fence();
  mmioWrite(a, REG_QUEUE_NOTIFY, queue);
}

/** Spins until the device has used everything published (used.idx == x9, 16 bits). */
function waitUsed(a: Asm, label: string): void {
  a.slli(T1, IDX, 48).srli(T1, T1, 48);
  a.label(label).li(T0, USED).load(5, T0, T0, 2).bne(T0, T1, label);
}

function powerOff(a: Asm): void {
  a.li(T0, TEST_BASE).li(T1, TEST_PASS).sw(T1, T0, 0);
  a.label("halt").jal(0, "halt");
}

/**
 * Interrupt storm: toggles the UART's transmit-empty interrupt and prints a byte, for ever,
 * so that every few instructions a device raises an interrupt line.
 */
export function interruptStorm(): Uint8Array {
  const a = new Asm(RAM);
  a.li(BASE, UART_BASE);
  a.label("loop");
  a.li(T0, 0x02).sb(T0, BASE, 1); // IER: THR empty interrupt on (it fires at once)
  a.sb(0, BASE, 1); // and off again
  a.li(T0, 0x2e).sb(T0, BASE, 0); // "."
  a.jal(0, "loop");
  return a.bytesOut();
}

/** Every hart spins with interrupts off (M-mode, mie = 0), for ever: nothing but the VMM can stop it. */
export function spinForever(): Uint8Array {
  const a = new Asm(RAM);
  a.csrrw(0, 0x304, 0); // mie = 0
  a.label("spin").addi(T0, T0, 1).jal(0, "spin");
  return a.bytesOut();
}

/** Log flood: one-byte writes to virtio registers, which the transport ignores (and logs), for ever. */
export function logFlood(slot: number): Uint8Array {
  const a = new Asm(RAM);
  a.li(BASE, VIRTIO_BASE + slot * VIRTIO_STRIDE);
  a.label("loop");
  a.sb(0, BASE, REG_QUEUE_SEL + 1);
  a.jal(0, "loop");
  return a.bytesOut();
}

/**
 * Console flood: sends `mib` MiB of "yyy\n" lines to the transmit queue of the virtio console
 * at `slot`, 1 MiB per request, then powers off.
 */
export function consoleFlood(slot: number, mib: number): Uint8Array {
  const a = new Asm(RAM);
  const chunk = 1 << 20;
  a.li(T0, BUFFER).li(T1, BUFFER + chunk).li(T2, 0x0a79_7979_0a79_7979n);
  a.label("fill").sd(T2, T0, 0).addi(T0, T0, 8).bltu(T0, T1, "fill");
  bringUp(a, slot, 1, 1);
  descriptor(a, 0, BUFFER, chunk, 0, 0);
  a.li(S2, mib);
  a.label("send");
  publish(a, 0, 1, 1);
  waitUsed(a, "wait");
  a.addi(S2, S2, -1).bne(S2, 0, "send");
  powerOff(a);
  return a.bytesOut();
}

/**
 * Reset storm on virtio-blk at `slot`: queues `requests` writes of `bytes` each (all from one
 * buffer), resets the device without waiting, and repeats `rounds` times; then powers off.
 */
export function blockResetStorm(slot: number, requests: number, bytes: number, rounds: number): Uint8Array {
  const a = new Asm(RAM);
  const header = BUFFER - 0x1000;
  const status = header + 0x800;
  const size = 64;
  a.li(S3, rounds);
  a.label("round");
  bringUp(a, slot, 0, size);
  a.li(T0, header).li(T1, 1).sw(T1, T0, 0).sw(0, T0, 4).sd(0, T0, 8); // VIRTIO_BLK_T_OUT, sector 0
  for (let r = 0; r < requests; r++) {
    descriptor(a, 3 * r, header, 16, 1, 3 * r + 1); // NEXT
    descriptor(a, 3 * r + 1, BUFFER, bytes, 1, 3 * r + 2); // NEXT, device-readable data
    descriptor(a, 3 * r + 2, status + r, 1, 2, 0); // WRITE
    publish(a, 3 * r, size, 0);
  }
  a.addi(S3, S3, -1).bne(S3, 0, "round");
  powerOff(a);
  return a.bytesOut();
}

/**
 * Hostile balloon traffic on the virtio-balloon at `slot`: inflates PFNs outside RAM, PFNs that
 * alias a live page in 32-bit arithmetic, and pages twice; reports overlapping ranges, then a
 * range 4 GiB above a live page (outside RAM). The live page ("canary") must keep its contents:
 * powers off with status 0 if it did, 1 if it lost them.
 */
export function balloonAbuse(slot: number, ramBytes: number): Uint8Array {
  const a = new Asm(RAM);
  const canary = BUFFER + 0x4_0000;
  const canaryPfn = canary / 4096;
  const pfns = BUFFER;
  const pattern = 0x5a5a_a5a5_5a5a_a5a5n;
  a.li(T0, canary).li(T1, canary + 4096).li(T2, pattern);
  a.label("fill").sd(T2, T0, 0).addi(T0, T0, 8).bltu(T0, T1, "fill");
  const list = [0, 1, 0xffff_ffff, canaryPfn + 0x10_0000, canaryPfn - 0x8_0000, (RAM + ramBytes) / 4096, RAM / 4096 - 1];
  for (let i = 0; i < 64; i++) list.push((BUFFER + 0x10_0000) / 4096 + i, (BUFFER + 0x10_0000) / 4096 + i);
  a.li(T0, pfns);
  list.forEach((pfn, i) => a.li(T1, pfn).sw(T1, T0, 4 * i));
  bringUp(a, slot, 0, 8);
  descriptor(a, 0, pfns, 4 * list.length + 3, 0, 0); // a ragged length too
  publish(a, 0, 8, 0);
  waitUsed(a, "inflated");
  // Free page reporting (feature bit 5) without the stats queue: the reporting queue is queue 2.
  // bringUp clears the rings only after DRIVER_OK; clear them first so the old chain is not taken again.
  a.li(T0, AVAIL).sw(0, T0, 0);
  a.li(T0, USED).sw(0, T0, 0);
  bringUp(a, slot, 2, 8, 1 << 5);
  descriptor(a, 0, BUFFER + 0x20_0000, 0x1_0000, 3, 1); // NEXT | WRITE
  descriptor(a, 1, BUFFER + 0x20_8000, 0x1_0000, 2, 0); // overlaps the first
  publish(a, 0, 8, 2);
  waitUsed(a, "reported");
  descriptor(a, 2, canary + 2 ** 32, 4096, 2, 0); // 4 GiB above the canary: outside RAM
  publish(a, 2, 8, 2);
  a.li(T0, 0).li(T1, 100_000);
  a.label("pause").addi(T0, T0, 1).bltu(T0, T1, "pause");
  a.li(T0, canary).li(T1, canary + 4096).li(T2, pattern);
  a.label("check").ld(S2, T0, 0).bne(S2, T2, "lost").addi(T0, T0, 8).bltu(T0, T1, "check");
  powerOff(a);
  a.label("lost").li(T0, TEST_BASE).li(T1, 0x3333 | (1 << 16)).sw(T1, T0, 0);
  a.label("halt2").jal(0, "halt2");
  return a.bytesOut();
}
