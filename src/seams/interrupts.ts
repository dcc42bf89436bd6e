// Interrupt wiring between devices and the interrupt controller (PLIC), and from controllers to harts.

/** A level-triggered interrupt input (one PLIC source). */
export interface IrqLine {
  set(level: boolean): void;
}

/** What an interrupt controller needs of a hart: drive one bit of its `mip` register. */
export interface InterruptTarget {
  /** bit is the mip bit number: 1 SSIP, 3 MSIP, 5 STIP, 7 MTIP, 9 SEIP, 11 MEIP. */
  setInterruptPending(bit: number, level: boolean): void;
}
