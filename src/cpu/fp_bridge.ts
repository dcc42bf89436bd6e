// The hart's link to the FPU. SHIM until src/cpu/fpu/execute.ts exists: every F/D arithmetic
// instruction is reported illegal. Replace the body with:
//   export { executeFp } from "./fpu/execute.js";
import type { FpContext } from "./fpu/context.js";

/** Executes one OP-FP/FMADD/FMSUB/FNMSUB/FNMADD instruction; returns 0 (Ok) or 1 (Illegal). */
export function executeFp(_insn: number, _ctx: FpContext): number {
  return 1;
}
