// The contract between the hart (src/cpu) and the floating-point unit (src/cpu/fpu).
// The hart decodes FP loads/stores itself and hands every other F/D instruction to executeFp().

/** Register file layout shared by hart and FPU: register i's low 32-bit word at [2i], high word at [2i+1]. */
export interface FpContext {
  /** f0..f31; singles are NaN-boxed (high word 0xffffffff). */
  readonly f: Int32Array;
  /** x0..x31 of the hart (same lo/hi layout). The FPU never writes x0. */
  readonly x: Int32Array;
  /** Dynamic rounding mode (fcsr.frm), 0..7. */
  frm: number;
  /** Accrued exception flags (fcsr.fflags): NV 0x10, DZ 0x08, OF 0x04, UF 0x02, NX 0x01. */
  fflags: number;
}

/** Result of executeFp: the hart raises an illegal-instruction trap for Illegal. */
export const enum FpStatus {
  Ok = 0,
  Illegal = 1,
}

export const FFLAG_NV = 0x10;
export const FFLAG_DZ = 0x08;
export const FFLAG_OF = 0x04;
export const FFLAG_UF = 0x02;
export const FFLAG_NX = 0x01;
