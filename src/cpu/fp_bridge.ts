// The hart's link to the FPU (kept as one seam so the hart can swap FPU implementations).
export { executeFp } from "./fpu/execute.js";
