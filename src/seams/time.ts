// The machine's time base, shared by the CLINT, the harts' time CSR and the firmware.

/** Machine-wide time base (the CLINT's mtime, the `time` CSR), in ticks of `frequency` Hz. */
export interface TimeSource {
  readonly frequency: number;
  now(): number;
}

/**
 * A device that must act at a time of its own (an alarm): the VMM's device timers ask it when,
 * wait until then on the device thread, and call fire(). The device calls its `onDeadlineChange`
 * hook whenever the guest re-arms it, so the wait is re-planned.
 */
export interface TimedDevice {
  /** Host milliseconds from now until the device must act, or null when nothing is armed. */
  msUntilDeadline(): number | null;
  /** The deadline came: act (raise the interrupt). */
  fire(): void;
}
