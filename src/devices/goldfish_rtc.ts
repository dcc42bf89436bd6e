// Goldfish RTC (Android emulator's real-time clock, Linux rtc-goldfish): wall-clock time in ns, one alarm.
// Guest time = host clock + an offset the guest sets; the offset travels in snapshots, so time keeps flowing.

import type { MmioDevice } from "../seams/mmio.js";
import type { IrqLine } from "../seams/interrupts.js";
import type { TimedDevice } from "../seams/time.js";

const TIME_LOW = 0x00; // reading it latches TIME_HIGH
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08; // writing it arms the alarm at ALARM_HIGH:ALARM_LOW
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;
const CLEAR_INTERRUPT = 0x1c;
/** Size of the register window (as in QEMU virt). */
export const GOLDFISH_RTC_SIZE = 0x1000;

const MASK_64 = (1n << 64n) - 1n;

export interface GoldfishRtcOptions {
  irq: IrqLine;
  /** Host wall clock in nanoseconds since the Unix epoch; defaults to the system clock. */
  now?: () => bigint;
  /** Called when the guest arms or clears the alarm, so the device timers re-plan (TimedDevice). */
  onDeadlineChange?: () => void;
}

/** 64-bit values as decimal strings, so the state survives JSON. */
export interface GoldfishRtcState {
  timeOffsetNs: string;
  timeHighLatch: number;
  alarmNs: string;
  alarmHigh: number;
  alarmArmed: boolean;
  irqEnabled: boolean;
  irqPending: boolean;
}

/** The system clock in ns since the epoch, with the resolution of the monotonic clock. */
export function systemClockNs(): () => bigint {
  const base = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => base + process.hrtime.bigint();
}

export class GoldfishRtc implements MmioDevice, TimedDevice {
  readonly name = "goldfish-rtc";
  private readonly irq: IrqLine;
  private readonly hostNow: () => bigint;
  private readonly onDeadlineChange: () => void;
  private timeOffsetNs = 0n;
  private timeHighLatch = 0;
  private pendingTimeHigh = 0; // written TIME_HIGH, applied with the next TIME_LOW write
  private alarmNs = 0n;
  private alarmHigh = 0;
  private alarmArmed = false;
  private irqEnabled = false;
  private irqPending = false;
  private irqLevel = false;

  constructor(options: GoldfishRtcOptions) {
    this.irq = options.irq;
    this.hostNow = options.now ?? systemClockNs();
    this.onDeadlineChange = options.onDeadlineChange ?? (() => {});
  }

  /** Guest wall-clock time in ns since the epoch. */
  guestNow(): bigint {
    return (this.hostNow() + this.timeOffsetNs) & MASK_64;
  }

  /** Fires the alarm once its time has come; the run loop calls this now and then (each register access does too). */
  update(): void {
    if (this.alarmArmed && this.guestNow() >= this.alarmNs) {
      this.alarmArmed = false;
      this.irqPending = true;
    }
    this.driveIrq(false);
  }

  /** Host-clock ns at which the armed alarm fires, or null; lets an idle VM sleep until then. */
  nextAlarmHostNs(): bigint | null {
    return this.alarmArmed ? this.alarmNs - this.timeOffsetNs : null;
  }

  msUntilDeadline(): number | null {
    return this.alarmArmed ? Number(this.alarmNs - this.guestNow()) / 1e6 : null;
  }

  fire(): void {
    this.update();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0; // 32-bit registers only
    this.update();
    switch (offset) {
      case TIME_LOW: {
        const t = this.guestNow();
        this.timeHighLatch = Number(t >> 32n);
        return Number(t & 0xffffffffn);
      }
      case TIME_HIGH:
        return this.timeHighLatch;
      case ALARM_LOW:
        return Number(this.alarmNs & 0xffffffffn);
      case ALARM_HIGH:
        return Number(this.alarmNs >> 32n);
      case IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case ALARM_STATUS:
        return this.alarmArmed ? 1 : 0;
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    const v = value >>> 0;
    switch (offset) {
      case TIME_HIGH:
        this.pendingTimeHigh = v;
        break;
      case TIME_LOW: {
        // Linux writes TIME_HIGH then TIME_LOW to set the clock.
        const wanted = (BigInt(this.pendingTimeHigh) << 32n) | BigInt(v);
        this.timeOffsetNs = wanted - this.hostNow();
        this.update();
        this.onDeadlineChange(); // the alarm is in guest time: setting the clock moves it
        return;
      }
      case ALARM_HIGH:
        this.alarmHigh = v;
        break;
      case ALARM_LOW:
        this.alarmNs = (BigInt(this.alarmHigh) << 32n) | BigInt(v);
        this.alarmArmed = true; // an alarm already in the past fires at once (in update below)
        this.update();
        this.onDeadlineChange();
        return;
      case IRQ_ENABLED:
        this.irqEnabled = (v & 1) !== 0;
        break;
      case CLEAR_ALARM:
        this.alarmArmed = false;
        this.update();
        this.onDeadlineChange();
        return;
      case CLEAR_INTERRUPT:
        this.irqPending = false;
        break;
      default:
        return; // read-only or unknown registers
    }
    this.update();
  }

  save(): GoldfishRtcState {
    return {
      timeOffsetNs: this.timeOffsetNs.toString(),
      timeHighLatch: this.timeHighLatch,
      alarmNs: this.alarmNs.toString(),
      alarmHigh: this.alarmHigh,
      alarmArmed: this.alarmArmed,
      irqEnabled: this.irqEnabled,
      irqPending: this.irqPending,
    };
  }

  restore(state: GoldfishRtcState): void {
    this.timeOffsetNs = BigInt(state.timeOffsetNs);
    this.timeHighLatch = state.timeHighLatch >>> 0;
    this.alarmNs = BigInt(state.alarmNs) & MASK_64;
    this.alarmHigh = state.alarmHigh >>> 0;
    this.alarmArmed = state.alarmArmed;
    this.irqEnabled = state.irqEnabled;
    this.irqPending = state.irqPending;
    this.update();
    this.driveIrq(true);
  }

  private driveIrq(force: boolean): void {
    const level = this.irqEnabled && this.irqPending;
    if (level === this.irqLevel && !force) return;
    this.irqLevel = level;
    this.irq.set(level);
  }
}
