// The machine's time base, shared by the CLINT, the harts' time CSR and the firmware.

/** Machine-wide time base (the CLINT's mtime, the `time` CSR), in ticks of `frequency` Hz. */
export interface TimeSource {
  readonly frequency: number;
  now(): number;
}
