// NS16550A UART (the console ttyS0 of Linux's 8250 driver): 8 one-byte registers, reg-shift 0.
// Transmission is instantaneous (THR is always empty); host input waits in a bounded receive FIFO.

import type { MmioDevice } from "../seams/mmio.js";
import type { IrqLine } from "../seams/interrupts.js";

// Register offsets (DLAB=1 turns 0 and 1 into the divisor latch).
const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const IER_RDI = 0x01; // receive data available
const IER_THRI = 0x02; // transmit holding register empty
const IER_RLSI = 0x04; // receiver line status
const IER_MASK = 0x0f;

const IIR_NO_INT = 0x01;
const IIR_RLSI = 0x06;
const IIR_RDI = 0x04;
const IIR_THRI = 0x02;
const IIR_CTI = 0x0c; // character timeout: data waiting below the trigger level
const IIR_FIFO_BITS = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const LCR_DLAB = 0x80;
const MCR_MASK = 0x1f;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

// No modem attached: report the lines a connected terminal would hold high (DCD, DSR, CTS).
const MSR_CONNECTED = 0xb0;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

/** Host input the guest has not read yet; beyond this the UART drops new bytes and sets LSR.OE. */
export const UART_RX_CAPACITY = 4096;

export interface Uart16550Options {
  irq: IrqLine;
  /** Called synchronously for each byte the guest transmits; must not block. */
  onTransmit: (byte: number) => void;
}

export interface Uart16550State {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  fifoEnabled: boolean;
  rxTrigger: number;
  overrun: boolean;
  thrInterruptPending: boolean;
  rx: number[];
}

export class Uart16550 implements MmioDevice {
  readonly name = "uart16550";
  private readonly irq: IrqLine;
  private readonly onTransmit: (byte: number) => void;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  private fifoEnabled = false;
  private rxTrigger = 1;
  private overrun = false;
  // The THR-empty interrupt is an event: raised when THR empties or THRI is enabled, cleared by reading IIR or writing THR.
  private thrInterruptPending = false;
  // Ring buffer of received bytes.
  private readonly rx = new Uint8Array(UART_RX_CAPACITY);
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;
  /** Bytes taken into the FIFO, read by the guest and emptied by an FCR reset (query-interrupts; not saved). */
  private readonly rxTotals = { received: 0, read: 0, reset: 0 };

  constructor(options: Uart16550Options) {
    this.irq = options.irq;
    this.onTransmit = options.onTransmit;
  }

  /** Queues host input; returns how many bytes fit (the rest are dropped and LSR.OE is set). */
  receive(bytes: Uint8Array): number {
    let accepted = 0;
    for (const b of bytes) {
      if (this.rxCount === UART_RX_CAPACITY) {
        this.overrun = true;
        break;
      }
      this.rx[(this.rxHead + this.rxCount) % UART_RX_CAPACITY] = b;
      this.rxCount++;
      accepted++;
      this.rxTotals.received++;
    }
    this.updateIrq();
    return accepted;
  }

  /** Free space in the receive FIFO, so the host can hold back input instead of losing it. */
  receiveSpace(): number {
    return UART_RX_CAPACITY - this.rxCount;
  }

  read(offset: number, _size: 1 | 2 | 4): number {
    // Wider accesses act on the one-byte register at `offset` and are zero-extended.
    switch (offset) {
      case RBR_THR_DLL:
        return this.lcr & LCR_DLAB ? this.dll : this.readRbr();
      case IER_DLM:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case IIR_FCR:
        return this.readIir();
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR:
        return this.readLsr();
      case MSR:
        return MSR_CONNECTED;
      case SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case RBR_THR_DLL:
        if (this.lcr & LCR_DLAB) this.dll = v;
        else this.transmit(v);
        return;
      case IER_DLM:
        if (this.lcr & LCR_DLAB) this.dlm = v;
        else this.writeIer(v & IER_MASK);
        return;
      case IIR_FCR:
        this.writeFcr(v);
        return;
      case LCR:
        this.lcr = v;
        return;
      case MCR:
        this.mcr = v & MCR_MASK;
        return;
      case SCR:
        this.scr = v;
        return;
      default:
        return; // LSR and MSR are read-only; unknown offsets are ignored
    }
  }

  /** Registers and interrupt state as they are now (reads nothing that has side effects), for query-interrupts. */
  describe(): { ier: number; lcr: number; iir: number; rxCount: number; thrInterruptPending: boolean; irqLevel: boolean; rxTotals: { received: number; read: number; reset: number } } {
    return { ier: this.ier, lcr: this.lcr, iir: this.pendingInterrupt(), rxCount: this.rxCount, thrInterruptPending: this.thrInterruptPending, irqLevel: this.irqLevel, rxTotals: { ...this.rxTotals } };
  }

  save(): Uart16550State {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rx[(this.rxHead + i) % UART_RX_CAPACITY]);
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      fifoEnabled: this.fifoEnabled,
      rxTrigger: this.rxTrigger,
      overrun: this.overrun,
      thrInterruptPending: this.thrInterruptPending,
      rx,
    };
  }

  restore(state: Uart16550State): void {
    this.ier = state.ier & IER_MASK;
    this.lcr = state.lcr & 0xff;
    this.mcr = state.mcr & MCR_MASK;
    this.scr = state.scr & 0xff;
    this.dll = state.dll & 0xff;
    this.dlm = state.dlm & 0xff;
    this.fifoEnabled = state.fifoEnabled;
    this.rxTrigger = RX_TRIGGER_LEVELS.includes(state.rxTrigger) ? state.rxTrigger : 1;
    this.overrun = state.overrun;
    this.thrInterruptPending = state.thrInterruptPending;
    this.rxHead = 0;
    this.rxCount = Math.min(state.rx.length, UART_RX_CAPACITY);
    for (let i = 0; i < this.rxCount; i++) this.rx[i] = state.rx[i] & 0xff;
    // Drive the line even if the level looks unchanged: the wiring behind it was rebuilt too.
    this.irqLevel = this.pendingInterrupt() !== IIR_NO_INT;
    this.irq.set(this.irqLevel);
  }

  private transmit(byte: number): void {
    this.onTransmit(byte);
    // The byte leaves at once, so THR is empty again and THRI fires again if enabled.
    this.thrInterruptPending = true;
    this.updateIrq();
  }

  private readRbr(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rx[this.rxHead];
    this.rxHead = (this.rxHead + 1) % UART_RX_CAPACITY;
    this.rxCount--;
    this.rxTotals.read++;
    this.updateIrq();
    return b;
  }

  private writeIer(v: number): void {
    const enablingThri = (v & IER_THRI) !== 0 && (this.ier & IER_THRI) === 0;
    this.ier = v;
    if (enablingThri) this.thrInterruptPending = true; // THR is empty, so enabling THRI interrupts at once
    this.updateIrq();
  }

  private writeFcr(v: number): void {
    const enable = (v & FCR_ENABLE) !== 0;
    // Switching FIFO mode on or off empties the FIFOs, as on the real part.
    if (enable !== this.fifoEnabled || (v & FCR_CLEAR_RX) !== 0) {
      this.rxTotals.reset += this.rxCount;
      this.rxHead = 0;
      this.rxCount = 0;
    }
    this.fifoEnabled = enable;
    this.rxTrigger = RX_TRIGGER_LEVELS[v >>> 6];
    this.updateIrq();
  }

  private readLsr(): number {
    let lsr = LSR_THRE | LSR_TEMT;
    if (this.rxCount > 0) lsr |= LSR_DR;
    if (this.overrun) lsr |= LSR_OE;
    this.overrun = false; // error bits clear on read
    this.updateIrq();
    return lsr;
  }

  private readIir(): number {
    const id = this.pendingInterrupt();
    if (id === IIR_THRI) {
      this.thrInterruptPending = false; // reading IIR acknowledges THRI
      this.updateIrq();
    }
    return id | (this.fifoEnabled ? IIR_FIFO_BITS : 0);
  }

  // Highest-priority pending cause: line status, then received data / timeout, then THR empty.
  private pendingInterrupt(): number {
    if (this.ier & IER_RLSI && this.overrun) return IIR_RLSI;
    if (this.ier & IER_RDI && this.rxCount > 0) {
      if (!this.fifoEnabled || this.rxCount >= this.rxTrigger) return IIR_RDI;
      return IIR_CTI; // no character timer: data below the trigger level is reported as timed out at once
    }
    if (this.ier & IER_THRI && this.thrInterruptPending) return IIR_THRI;
    return IIR_NO_INT;
  }

  private updateIrq(): void {
    const level = this.pendingInterrupt() !== IIR_NO_INT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
