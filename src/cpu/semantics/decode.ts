// The decode step, written once for both interpreter loops (generate.ts puts it between each
// loop's fetch and its `switch`): a compressed instruction is expanded through the RVC table to
// its 32-bit equivalent, so the semantics see one encoding, and the register fields are split out.
// Markers as in instructions.ts; $LET_NEXT declares the next instruction's pc (fast: npo, slow: npc).
// The fetch stays in each loop: the two keep pc differently (page + offset, or one double).

export const DECODE = `
let ilen = 4;
#slow
let raw = insn;
#end
if ((insn & 3) !== 3) {
#fast
  insn = rvc[insn & 0xffff];
#slow
  raw = insn & 0xffff;
  insn = rvc[raw];
#end
  ilen = 2;
}
const rd = (insn >>> 7) & 31;
const rs1 = (insn >>> 15) & 31;
const rs2 = (insn >>> 20) & 31;
const f3 = (insn >>> 12) & 7;
$LET_NEXT;
`;
