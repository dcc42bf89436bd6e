import { test } from "node:test";
import assert from "node:assert/strict";
import { Uart16550, UART_RX_CAPACITY } from "./uart16550.js";

function setup() {
  const levels: boolean[] = [];
  const out: number[] = [];
  const irq = {
    level: false,
    set(level: boolean) {
      this.level = level;
      levels.push(level);
    },
  };
  const uart = new Uart16550({ irq, onTransmit: (b) => out.push(b) });
  return { uart, irq, out, levels };
}

test("transmits THR writes to the host at once and keeps LSR.THRE/TEMT set", () => {
  const { uart, out } = setup();
  for (const c of "hi\n") uart.write(0, 1, c.charCodeAt(0));
  assert.deepEqual(out, [0x68, 0x69, 0x0a]);
  assert.equal(uart.read(5, 1) & 0x60, 0x60);
  assert.equal(uart.read(5, 1) & 0x01, 0, "no data ready");
});

test("DLAB switches offsets 0 and 1 to the divisor latch without transmitting", () => {
  const { uart, out } = setup();
  uart.write(3, 1, 0x83);
  uart.write(0, 1, 0x01);
  uart.write(1, 1, 0x02);
  assert.equal(uart.read(0, 1), 0x01);
  assert.equal(uart.read(1, 1), 0x02);
  uart.write(3, 1, 0x03);
  assert.equal(uart.read(3, 1), 0x03);
  assert.equal(uart.read(1, 1), 0, "IER untouched by the divisor write");
  assert.deepEqual(out, []);
});

test("received bytes set LSR.DR, raise RDI when enabled and clear once read", () => {
  const { uart, irq } = setup();
  uart.receive(new Uint8Array([0x41, 0x42]));
  assert.equal(irq.level, false, "IER is zero");
  assert.equal(uart.read(5, 1) & 1, 1);
  uart.write(1, 1, 0x01);
  assert.equal(irq.level, true);
  assert.equal(uart.read(2, 1), 0x04, "IIR reports receive data, FIFO off");
  assert.equal(uart.read(0, 1), 0x41);
  assert.equal(irq.level, true);
  assert.equal(uart.read(0, 1), 0x42);
  assert.equal(irq.level, false);
  assert.equal(uart.read(2, 1), 0x01, "no interrupt");
  assert.equal(uart.read(5, 1) & 1, 0);
  assert.equal(uart.read(0, 1), 0, "empty RBR reads 0");
});

test("FIFO mode shows in IIR and reports data below the trigger level as a timeout", () => {
  const { uart } = setup();
  uart.write(2, 1, 0xc1); // enable FIFO, trigger at 14
  uart.write(1, 1, 0x01);
  uart.receive(new Uint8Array(3));
  assert.equal(uart.read(2, 1), 0xcc);
  uart.receive(new Uint8Array(11));
  assert.equal(uart.read(2, 1), 0xc4);
  uart.write(2, 1, 0xc3); // clear the receive FIFO
  assert.equal(uart.read(5, 1) & 1, 0);
  assert.equal(uart.read(2, 1), 0xc1);
});

test("THR-empty interrupt fires when enabled, is acknowledged by reading IIR and re-fires after a write", () => {
  const { uart, irq } = setup();
  uart.write(1, 1, 0x02);
  assert.equal(irq.level, true);
  assert.equal(uart.read(2, 1), 0x02);
  assert.equal(irq.level, false);
  assert.equal(uart.read(2, 1), 0x01);
  uart.write(0, 1, 0x58);
  assert.equal(irq.level, true);
  uart.write(1, 1, 0x00);
  assert.equal(irq.level, false);
});

test("receive data outranks THR empty, and line status outranks both", () => {
  const { uart, irq } = setup();
  uart.write(1, 1, 0x07);
  uart.receive(new Uint8Array(UART_RX_CAPACITY + 5));
  assert.equal(uart.read(2, 1), 0x06, "overrun reported first");
  assert.equal(uart.read(5, 1) & 0x03, 0x03, "DR and OE");
  assert.equal(uart.read(5, 1) & 0x02, 0, "OE clears on read");
  assert.equal(uart.read(2, 1), 0x04);
  for (let i = 0; i < UART_RX_CAPACITY; i++) uart.read(0, 1);
  assert.equal(uart.read(2, 1), 0x02);
  assert.equal(uart.read(2, 1), 0x01);
  assert.equal(irq.level, false);
});

test("overflow keeps the oldest bytes, drops new ones and reports how many fit", () => {
  const { uart } = setup();
  const big = new Uint8Array(UART_RX_CAPACITY + 10).map((_, i) => i & 0xff);
  assert.equal(uart.receive(big), UART_RX_CAPACITY);
  assert.equal(uart.receiveSpace(), 0);
  assert.equal(uart.read(0, 1), 0);
  assert.equal(uart.read(0, 1), 1);
  assert.equal(uart.receiveSpace(), 2);
});

test("hostile offsets, sizes and values neither throw nor change other registers", () => {
  const { uart, out } = setup();
  for (const off of [8, 0xff, -1, 1e9, 0.5]) {
    for (const size of [1, 2, 4] as const) {
      assert.equal(uart.read(off, size), 0);
      uart.write(off, size, 0xffffffff);
    }
  }
  uart.write(5, 1, 0); // LSR is read-only
  assert.equal(uart.read(5, 1), 0x60);
  uart.write(0, 4, 0x12345678);
  assert.deepEqual(out, [0x78]);
  assert.equal(uart.read(6, 1), 0xb0);
});

test("save and restore carry registers, pending input and the interrupt line", () => {
  const a = setup();
  a.uart.write(7, 1, 0x5a);
  a.uart.write(2, 1, 0x41);
  a.uart.write(1, 1, 0x01);
  a.uart.receive(new Uint8Array([9, 8, 7]));
  a.uart.read(0, 1);
  const state = JSON.parse(JSON.stringify(a.uart.save()));
  const b = setup();
  b.uart.restore(state);
  assert.equal(b.irq.level, true);
  assert.equal(b.uart.read(7, 1), 0x5a);
  assert.equal(b.uart.read(2, 1), 0xcc, "FIFO on, 2 bytes below the trigger level of 4");
  assert.equal(b.uart.read(0, 1), 8);
  assert.equal(b.uart.read(0, 1), 7);
  assert.equal(b.irq.level, false);
});

test("rxTotals count input taken, read by the guest and emptied by an FCR reset", () => {
  const { uart } = setup();
  uart.write(2, 1, 0x01); // FIFO on
  assert.equal(uart.receive(new TextEncoder().encode("abcd")), 4);
  uart.read(0, 1);
  uart.read(0, 1);
  uart.read(0, 1); // three read
  uart.write(2, 1, 0x03); // reset the receive FIFO: one unread byte goes
  uart.read(0, 1); // empty: reads nothing
  assert.deepEqual(uart.describe().rxTotals, { received: 4, read: 3, reset: 1 });
});
