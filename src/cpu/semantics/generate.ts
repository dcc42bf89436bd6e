// Expands the decode step (decode.ts) and the instruction table (instructions.ts) into the two
// interpreter loops: everything from a fetched word to the next pc, in the generated region of
// exec_fast.ts / exec_slow.ts.
import { DECODE } from "./decode.js";
import { INSTRUCTIONS, type InstructionSemantics } from "./instructions.js";

export type LoopKind = "fast" | "slow";

export const REGION_BEGIN = "// @generated-begin from src/cpu/semantics/ (decode.ts, instructions.ts) by `npm run gen:interpreter`; do not edit";
export const REGION_END = "// @generated-end";

const SLOW_ILLEGAL = "{ this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }";

/** One body for one loop: #fast/#slow/#end blocks chosen, markers replaced. */
export function expandBody(body: string, kind: LoopKind): string[] {
  const out: string[] = [];
  let keep = true;
  for (const line of body.split("\n")) {
    const t = line.trim();
    if (t === "#fast" || t === "#slow") { keep = t === `#${kind}`; continue; }
    if (t === "#end") { keep = true; continue; }
    if (keep && t !== "") out.push(line);
  }
  return out.map((line) => {
    let l = line
      .replaceAll("$ILLEGAL;", kind === "fast" ? "break loop;" : SLOW_ILLEGAL)
      .replaceAll("$MISS;", kind === "fast" ? "break loop;" : "break hit;")
      .replaceAll("$LET_NEXT;", kind === "fast" ? "let npo = po + ilen;" : "let npc = pc + ilen;")
      .replaceAll("$PC", kind === "fast" ? "(page + po)" : "pc")
      .replaceAll("$NPC", kind === "fast" ? "(page + npo)" : "npc");
    l = l.replace(/\$BRANCH\((.*)\);/, (_m, off: string) => (kind === "fast" ? `npo = po + (${off});` : `npc = pc + (${off});`));
    l = l.replace(/\$JUMP\((\w+), (\w+)\);/, (_m, h: string, lo: string) => (kind === "fast"
      ? `{ const tpage = ${h} * 4294967296 + ((${lo} & -4096) >>> 0); if (tpage !== page) { page = tpage; hb = -1; } npo = ${lo} & 0xfff; }`
      : `npc = ${h} * 4294967296 + (${lo} >>> 0);`));
    if (/\$[A-Z]/.test(l)) throw new Error(`Unknown marker in instruction semantics: ${l.trim()}`);
    return l;
  });
}

/** The generated `case` clauses for one loop, indented for its switch. */
export function generateCases(kind: LoopKind, table: InstructionSemantics[] = INSTRUCTIONS): string {
  const lines: string[] = [];
  for (const ins of table) {
    if (ins.only !== undefined && ins.only !== kind) continue;
    const body = expandBody(ins.body, kind);
    lines.push(`        ${ins.opcodes.map((o) => `case ${o}:`).join(" ")} { // ${ins.name}`);
    for (const l of body) lines.push(`          ${l}`);
    const last = body.length > 0 ? body[body.length - 1]!.trim() : "";
    if (last !== "break;" && last !== "continue;") lines.push("          break;");
    lines.push("        }");
  }
  lines.push("        default:");
  lines.push(kind === "fast" ? "          break loop;" : "          this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);\n          break loop;");
  return lines.join("\n");
}

/** The whole generated region of one loop: decode, the `switch` over the opcode, the pc advance. */
export function generateRegion(kind: LoopKind, table: InstructionSemantics[] = INSTRUCTIONS): string {
  const lines = expandBody(DECODE, kind).map((l) => `      ${l}`);
  lines.push("      switch ((insn >>> 2) & 31) { // opcode[6:2]: a dense jump table (low bits are 11 after RVC expansion)");
  lines.push(generateCases(kind, table));
  lines.push("      }");
  lines.push(kind === "fast" ? "      po = npo;" : "      pc = npc;");
  return lines.join("\n");
}

/** `source` with its generated region replaced by the current expansion. */
export function regenerate(source: string, kind: LoopKind): string {
  const begin = source.indexOf(REGION_BEGIN);
  const end = source.indexOf(REGION_END);
  if (begin < 0 || end < begin) throw new Error(`The ${kind} loop has no generated region (${REGION_BEGIN} ... ${REGION_END})`);
  const head = source.slice(0, source.indexOf("\n", begin) + 1);
  const tail = source.slice(source.lastIndexOf("\n", end) + 1);
  return `${head}${generateRegion(kind)}\n${tail}`;
}

export const LOOP_FILES: Record<LoopKind, URL> = {
  fast: new URL("../exec_fast.ts", import.meta.url),
  slow: new URL("../exec_slow.ts", import.meta.url),
};
