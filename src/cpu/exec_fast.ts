// The call-free fast loop for the common case; it stops before anything it does not handle.
import * as KC from "./constants.js";
import * as RVC from "./rvc.js";
import * as AT from "./atomics.js";
import { HartSlowLoop } from "./exec_slow.js";
import { noteTaken } from "./jit/block_scan.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { RVC_TABLE } = RVC;
const { oldWords } = AT;
const { MSTATUS_FS } = KC;

export abstract class HartFastLoop extends HartSlowLoop {
  /** On the JIT tier, its per-RAM-page gates (nonzero: the page has compiled code); null on the interpreter. */
  protected codeGates: Int32Array | null = null;
  /** Set when execFast stopped because execution entered a page with compiled code (codeGates). */
  protected reachedCode = false;
  /** On the JIT tier, the taken-transfer map (block_scan.ts takenBefore); null on the interpreter. */
  protected takenMap: Uint8Array | null = null;

  /**
   * The fast loop: only instructions that need no call (so TurboFan keeps typed-array checks and
   * loop state across iterations). Stops, without side effects, before any instruction it does not
   * handle; execSlow then executes that one. Returns instructions retired.
   */
  // Literals (4294967296 = 2^32, 2047 = TLB_MASK) as in execSlow.
  protected execFast(limit: number): number {
    const x = this.x;
    const u8 = this.u8, u16 = this.u16, i32 = this.i32;
    const f64 = this.f64, d64 = this.d64, d32 = this.d32;
    const rTagLo = this.rTagLo, rTagHi = this.rTagHi, rOff = this.rOff;
    const xTagLo = this.xTagLo, xTagHi = this.xTagHi, xOff = this.xOff;
    const wTagLo = this.wTagLo, wTagHi = this.wTagHi, wOff = this.wOff;
    const f = this.f;
    const rvc = RVC_TABLE;
    const pcBox = this.pcBox;
    const gates = this.codeGates;
    const taken = this.takenMap;
    // pc = page + po: the virtual code page (a double) and an int32 offset that may leave [0, 4096)
    // after a jump; hb = the page's RAM index in u16 units (RAM < 4 GiB), -1 until looked up.
    const pc0 = +pcBox[0]!;
    let po = (pc0 | 0) & 0xfff;
    let page = pc0 - po;
    let hb = page === this.codeVBase ? this.codeOff >>> 1 : -1;
    limit |= 0;
    let n = 0;
    loop: while (n < limit) {
      // ---- fetch
      let insn: number;
      if (hb >= 0 && (po >>> 0) <= 4092) {
        const o = hb + (po >> 1);
        insn = u16[o] | (u16[o + 1] << 16);
      } else {
        if (hb < 0 || (po >>> 0) > 4095) { // another page: look up the fetch TLB
          const pc = page + po;
          const lo = pc | 0;
          po = lo & 0xfff;
          page = pc - po;
          const idx = (lo >>> 12) & 2047;
          if (xTagLo[idx] !== (lo & -4096) || xTagHi[idx] !== (Math.floor(pc / 4294967296) | 0)) { hb = -1; break loop; }
          hb = xOff[idx] >>> 1;
          // On the JIT tier: stop where another page has compiled code, so it runs compiled (exec_jit.ts).
          if (gates !== null && n !== 0 && gates[hb >>> 11] !== 0) { this.reachedCode = true; break loop; }
        }
        if (po <= 4092) {
          const o = hb + (po >> 1);
          insn = u16[o] | (u16[o + 1] << 16);
        } else {
          insn = u16[hb + 2047]; // last halfword of the page
          if ((insn & 3) === 3) break loop; // crosses into the next page
        }
      }
      const from = po;
      // @generated-begin from src/cpu/semantics/ (decode.ts, instructions.ts) by `npm run gen:interpreter`; do not edit
      let ilen = 4;
      if ((insn & 3) !== 3) {
        insn = rvc[insn & 0xffff];
        ilen = 2;
      }
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      const f3 = (insn >>> 12) & 7;
      let npo = po + ilen;
      switch ((insn >>> 2) & 31) { // opcode[6:2]: a dense jump table (low bits are 11 after RVC expansion)
        case 13: { // LUI
          if (rd !== 0) { const v = insn & 0xfffff000; x[2 * rd] = v; x[2 * rd + 1] = v >> 31; }
          break;
        }
        case 5: { // AUIPC
          if (rd !== 0) {
            const v = (page + po) + (insn & 0xfffff000);
            x[2 * rd] = v | 0; // ToInt32 = low word; `% 4294967296` compiles to an x87 fprem loop
            x[2 * rd + 1] = Math.floor(v / 4294967296) | 0;
          }
          break;
        }
        case 27: { // JAL
          const imm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
          if (rd !== 0) { const l = (page + npo); x[2 * rd] = l | 0; x[2 * rd + 1] = Math.floor(l / 4294967296) | 0; }
          npo = po + (imm);
          break;
        }
        case 25: { // JALR
          if (f3 !== 0) break loop;
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const th = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const tl = (s | 0) & ~1;
          if (rd !== 0) { const l = (page + npo); x[2 * rd] = l | 0; x[2 * rd + 1] = Math.floor(l / 4294967296) | 0; }
          { const tpage = th * 4294967296 + ((tl & -4096) >>> 0); if (tpage !== page) { page = tpage; hb = -1; } npo = tl & 0xfff; }
          break;
        }
        case 24: { // BRANCH
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          let taken: boolean;
          switch (f3) {
            case 0: taken = al === bl && ah === bh; break;
            case 1: taken = al !== bl || ah !== bh; break;
            case 4: taken = ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 5: taken = ah > bh || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            case 6: taken = (ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 7: taken = (ah >>> 0) > (bh >>> 0) || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            default: break loop;
          }
          if (taken) {
            npo = po + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
          }
          break;
        }
        case 0: { // LOAD: inline when the TLB hits and the access is aligned
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
          const off = rOff[idx] + (lo & 0xfff);
          let vl: number, vh = 0;
          switch (f3) {
            case 0: vl = (u8[off] << 24) >> 24; vh = vl >> 31; break;
            case 4: vl = u8[off]; break;
            case 1: if ((off & 1) !== 0) break loop; vl = (u16[off >>> 1] << 16) >> 16; vh = vl >> 31; break;
            case 5: if ((off & 1) !== 0) break loop; vl = u16[off >>> 1]; break;
            case 2: if ((off & 3) !== 0) break loop; vl = i32[off >>> 2]; vh = vl >> 31; break;
            case 6: if ((off & 3) !== 0) break loop; vl = i32[off >>> 2]; break;
            case 3: if ((off & 7) !== 0) break loop; d64[0] = f64[off >>> 3]; vl = d32[0]; vh = d32[1]; break;
            default: break loop;
          }
          if (rd !== 0) { x[2 * rd] = vl; x[2 * rd + 1] = vh; }
          break;
        }
        case 8: { // STORE: inline when the TLB hits and the access is aligned
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const vl = x[2 * rs2];
          const idx = (lo >>> 12) & 2047;
          if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
          const off = wOff[idx] + (lo & 0xfff);
          switch (f3) {
            case 0: u8[off] = vl; break;
            case 1: if ((off & 1) !== 0) break loop; u16[off >>> 1] = vl; break;
            case 2: if ((off & 3) !== 0) break loop; i32[off >>> 2] = vl; break;
            case 3: if ((off & 7) !== 0) break loop; d32[0] = vl; d32[1] = x[2 * rs2 + 1]; f64[off >>> 3] = d64[0]; break;
            default: break loop;
          }
          break;
        }
        case 4: { // OP-IMM
          const imm = insn >> 20;
          const al = x[2 * rs1], ah = x[2 * rs1 + 1];
          let rl: number, rh: number;
          switch (f3) {
            case 0: { const s = (al >>> 0) + imm; rl = s | 0; rh = (ah + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0; break; }
            case 2: { const ih = imm >> 31; rl = (ah < ih || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 3: { const ih = imm >> 31; rl = ((ah >>> 0) < (ih >>> 0) || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 4: rl = al ^ imm; rh = ah ^ (imm >> 31); break;
            case 6: rl = al | imm; rh = ah | (imm >> 31); break;
            case 7: rl = al & imm; rh = ah & (imm >> 31); break;
            case 1: {
              if (insn >>> 26 === 0x18) { // Zbb: CLZ CTZ CPOP SEXT.B SEXT.H
                rh = 0;
                switch ((insn >>> 20) & 63) {
                  case 0: rl = ah !== 0 ? Math.clz32(ah) : 32 + Math.clz32(al); break;
                  case 1: rl = al !== 0 ? 31 - Math.clz32(al & -al) : ah !== 0 ? 63 - Math.clz32(ah & -ah) : 64; break;
                  case 2: {
                    let u = al - ((al >>> 1) & 0x55555555), v = ah - ((ah >>> 1) & 0x55555555);
                    u = (u & 0x33333333) + ((u >>> 2) & 0x33333333);
                    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
                    rl = (Math.imul((u + (u >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) + (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
                    break;
                  }
                  case 4: rl = (al << 24) >> 24; rh = rl >> 31; break;
                  case 5: rl = (al << 16) >> 16; rh = rl >> 31; break;
                  default: break loop;
                }
                break;
              }
              if (insn >>> 26 !== 0) break loop;
              const sh = (insn >>> 20) & 63;
              if (sh === 0) { rl = al; rh = ah; }
              else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
              else { rl = 0; rh = al << (sh - 32); }
              break;
            }
            default: { // 5: SRLI / SRAI
              const top = insn >>> 26;
              const sh = (insn >>> 20) & 63;
              if (top === 0) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
              } else if (top === 0x10) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
                else { rl = ah >> (sh - 32); rh = ah >> 31; }
              } else if (top === 0x18) { // Zbb: RORI
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = (ah >>> sh) | (al << (32 - sh)); }
                else if (sh === 32) { rl = ah; rh = al; }
                else { rl = (ah >>> (sh - 32)) | (al << (64 - sh)); rh = (al >>> (sh - 32)) | (ah << (64 - sh)); }
              } else if ((insn >>> 20) === 0x287) { // Zbb: ORC.B (a byte's top bit after the add is set iff the byte is nonzero)
                rl = Math.imul(((((al & 0x7f7f7f7f) + 0x7f7f7f7f) | al) & 0x80808080) >>> 7, 0xff);
                rh = Math.imul(((((ah & 0x7f7f7f7f) + 0x7f7f7f7f) | ah) & 0x80808080) >>> 7, 0xff);
              } else if ((insn >>> 20) === 0x6b8) { // Zbb: REV8
                rl = (ah << 24) | ((ah & 0xff00) << 8) | ((ah >>> 8) & 0xff00) | (ah >>> 24);
                rh = (al << 24) | ((al & 0xff00) << 8) | ((al >>> 8) & 0xff00) | (al >>> 24);
              } else break loop;
              break;
            }
          }
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 6: { // OP-IMM-32
          const al = x[2 * rs1];
          let r: number;
          if (f3 === 0) r = (al + (insn >> 20)) | 0;
          else if (f3 === 1 && insn >>> 25 === 0) r = al << rs2;
          else if (f3 === 5 && insn >>> 25 === 0) r = al >>> rs2;
          else if (f3 === 5 && insn >>> 25 === 0x20) r = al >> rs2;
          else if (f3 === 5 && insn >>> 25 === 0x30) r = rs2 === 0 ? al : (al >>> rs2) | (al << (32 - rs2)); // Zbb: RORIW
          else if (f3 === 1 && insn >>> 25 === 0x30 && rs2 === 0) r = Math.clz32(al); // Zbb: CLZW
          else if (f3 === 1 && insn >>> 25 === 0x30 && rs2 === 1) r = al === 0 ? 32 : 31 - Math.clz32(al & -al); // CTZW
          else if (f3 === 1 && insn >>> 25 === 0x30 && rs2 === 2) { // CPOPW
            const u = (al - ((al >>> 1) & 0x55555555)), v = (u & 0x33333333) + ((u >>> 2) & 0x33333333);
            r = Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
          }
          else break loop;
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 12: { // OP
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          const f7 = insn >>> 25;
          let rl: number, rh: number;
          if (f7 === 0) {
            switch (f3) {
              case 0: rl = (al + bl) | 0; rh = (ah + bh + ((rl >>> 0) < (al >>> 0) ? 1 : 0)) | 0; break;
              case 1: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
                else { rl = 0; rh = al << (sh - 32); }
                break;
              }
              case 2: rl = (ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 3: rl = ((ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 4: rl = al ^ bl; rh = ah ^ bh; break;
              case 5: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
                break;
              }
              case 6: rl = al | bl; rh = ah | bh; break;
              default: rl = al & bl; rh = ah & bh; break;
            }
          } else if (f7 === 0x20 && f3 === 0) {
            rl = (al - bl) | 0;
            rh = (ah - bh - ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
          } else if (f7 === 0x20 && f3 === 5) {
            const sh = bl & 63;
            if (sh === 0) { rl = al; rh = ah; }
            else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
            else { rl = ah >> (sh - 32); rh = ah >> 31; }
          } else if (f7 === 0x20 && f3 >= 4 && f3 !== 5) { // Zbb: XNOR ORN ANDN
            if (f3 === 4) { rl = ~(al ^ bl); rh = ~(ah ^ bh); }
            else if (f3 === 6) { rl = al | ~bl; rh = ah | ~bh; }
            else { rl = al & ~bl; rh = ah & ~bh; }
          } else if (f7 === 5 && f3 >= 4) { // Zbb: MIN MINU MAX MAXU
            const lt = (f3 & 1) === 0 ? ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0)) : (ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0));
            const a = f3 < 6 ? lt : !lt;
            rl = a ? al : bl; rh = a ? ah : bh;
          } else if (f7 === 0x30 && (f3 === 1 || f3 === 5)) { // Zbb: ROL ROR (a left rotation is a right one by 64 - n)
            const sh = (f3 === 5 ? bl : -bl) & 63;
            if (sh === 0) { rl = al; rh = ah; }
            else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = (ah >>> sh) | (al << (32 - sh)); }
            else if (sh === 32) { rl = ah; rh = al; }
            else { rl = (ah >>> (sh - 32)) | (al << (64 - sh)); rh = (al >>> (sh - 32)) | (ah << (64 - sh)); }
          } else if (f7 === 1 && f3 === 0) { // MUL (the high word of the low product inlined: no calls in the fast loop)
            const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
            const p01 = a0 * b1, p10 = a1 * b0;
            const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
            const hu = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
            rl = Math.imul(al, bl);
            rh = (hu + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
          } else if (f7 === 1 && f3 <= 3) { // MULH / MULHSU / MULHU
            // High word of a 32x32 unsigned product: the double product is within 2^12 of exact, and
            // the exact low word (imul) removes the rounding.
            const ul = al >>> 0, uh = ah >>> 0, vl = bl >>> 0, vh = bh >>> 0;
            const lo00 = Math.imul(al, bl) >>> 0, lo01 = Math.imul(al, bh) >>> 0;
            const lo10 = Math.imul(ah, bl) >>> 0, lo11 = Math.imul(ah, bh) >>> 0;
            const hi00 = Math.round((ul * vl - lo00) / 4294967296), hi01 = Math.round((ul * vh - lo01) / 4294967296);
            const hi10 = Math.round((uh * vl - lo10) / 4294967296), hi11 = Math.round((uh * vh - lo11) / 4294967296);
            const mid = hi00 + lo01 + lo10; // < 3 * 2^32, exact
            const low = lo11 + hi01 + hi10 + Math.floor(mid / 4294967296);
            rl = low | 0;
            rh = (hi11 + Math.floor(low / 4294967296)) | 0;
            if (f3 !== 3 && ah < 0) { // signed a: subtract b << 64
              const t = rl;
              rl = (t - bl) | 0;
              rh = (rh - bh - ((t >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
            }
            if (f3 === 1 && bh < 0) { // signed b: subtract a << 64
              const t = rl;
              rl = (t - al) | 0;
              rh = (rh - ah - ((t >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
            }
          } else if (f7 === 1 && (f3 & 1) === 0 && (bl | bh) !== 0 && ah === (al >> 31) && bh === (bl >> 31)) {
            // DIV / REM with both operands in int32 range (divisor nonzero): exact in doubles.
            const r = f3 === 6 ? al % bl : Math.trunc(al / bl);
            rl = r | 0;
            rh = r < 0 ? -1 : 0;
          } else if (f7 === 1 && (f3 & 1) === 1 && ah === 0 && bh === 0 && bl !== 0) {
            // DIVU / REMU of values below 2^32.
            const a = al >>> 0, b = bl >>> 0;
            const r = f3 === 7 ? a % b : Math.floor(a / b);
            rl = r | 0;
            rh = 0;
          } else if (f7 === 1) { // 64-bit division, or by zero
            break loop;
          } else break loop;
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 14: { // OP-32
          const a = x[2 * rs1], b = x[2 * rs2];
          const f7 = insn >>> 25;
          let r: number;
          if (f7 === 0) {
            if (f3 === 0) r = (a + b) | 0;
            else if (f3 === 1) r = a << (b & 31);
            else if (f3 === 5) r = a >>> (b & 31);
            else break loop;
          } else if (f7 === 0x20) {
            if (f3 === 0) r = (a - b) | 0;
            else if (f3 === 5) r = a >> (b & 31);
            else break loop;
          } else if (f7 === 1) {
            switch (f3) {
              case 0: r = Math.imul(a, b); break;
              case 4: r = b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : (a / b) | 0; break;
              case 5: r = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0; break;
              case 6: r = b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : (a % b) | 0; break;
              case 7: r = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0; break;
              default: break loop;
            }
          } else if (f7 === 0x30 && (f3 === 1 || f3 === 5)) { // Zbb: ROLW RORW
            const sh = (f3 === 5 ? b : -b) & 31;
            r = sh === 0 ? a : (a >>> sh) | (a << (32 - sh));
          } else if (f7 === 4 && f3 === 4 && rs2 === 0) { // Zbb: ZEXT.H
            r = a & 0xffff;
          } else break loop;
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 3: { // MISC-MEM: fence, fence.i (no decoded-instruction cache, so nothing to drop)
          if (f3 > 1) break loop;
          if (f3 === 0 && this.hostFences) {
            break loop;
          }
          break;
        }
        case 1: { // LOAD-FP (flw / fld): inline when the FPU is on, the TLB hits and the access is aligned
          if ((f3 !== 2 && f3 !== 3) || (this.mstatus & 0x6000) === 0) break loop; // 0x6000 = MSTATUS_FS
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
          const off = rOff[idx] + (lo & 0xfff);
          if (f3 === 2) {
            if ((off & 3) !== 0) break loop;
            f[2 * rd] = i32[off >>> 2];
            f[2 * rd + 1] = -1; // NaN-box singles
          } else {
            if ((off & 7) !== 0) break loop;
            d64[0] = f64[off >>> 3];
            f[2 * rd] = d32[0];
            f[2 * rd + 1] = d32[1];
          }
          this.mstatus |= 0x6000;
          break;
        }
        case 9: { // STORE-FP (fsw / fsd): inline when the FPU is on, the TLB hits and the access is aligned
          if ((f3 !== 2 && f3 !== 3) || (this.mstatus & 0x6000) === 0) break loop;
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
          const off = wOff[idx] + (lo & 0xfff);
          if (f3 === 2) {
            if ((off & 3) !== 0) break loop;
            i32[off >>> 2] = f[2 * rs2];
          } else {
            if ((off & 7) !== 0) break loop;
            d32[0] = f[2 * rs2];
            d32[1] = f[2 * rs2 + 1];
            f64[off >>> 3] = d64[0];
          }
          break;
        }
        case 11: { // AMO: LR/SC and the bitwise/add/swap ops inline when aligned with a TLB hit
          if (f3 !== 2 && f3 !== 3) break loop;
          const f5 = insn >>> 27;
          const lo = x[2 * rs1], hi = x[2 * rs1 + 1];
          const wide = f3 === 3;
          if ((lo & (wide ? 7 : 3)) !== 0) break loop;
          const idx = (lo >>> 12) & 2047;
          let off: number;
          if (f5 === 2) {
            if (rs2 !== 0 || rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
            off = rOff[idx] + (lo & 0xfff);
          } else {
            if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
            off = wOff[idx] + (lo & 0xfff);
          }
          if (f5 > 0x0c || (f5 > 0x04 && (f5 & 3) !== 0)) break loop; // min/max and invalid encodings
          this.atomicAt(off, f5, wide, x[2 * rs2], x[2 * rs2 + 1]);
          if (rd !== 0) { x[2 * rd] = oldWords[0]!; x[2 * rd + 1] = oldWords[1]!; }
          break;
        }
        default:
          break loop;
      }
      po = npo;
      // @generated-end
      // On the JIT tier, where a branch or jump went in the page: compiles leave out targets never gone to (block_scan.ts planBlocks).
      if (po !== from + ilen && taken !== null && hb >= 0 && (po >>> 0) <= 4094) noteTaken(taken, hb + (po >> 1));
      n++;
    }
    pcBox[0] = page + po;
    this.codeVBase = hb >= 0 ? page : NaN;
    this.codeOff = hb >= 0 ? hb * 2 : 0;
    this.instret += n;
    return n;
  }
}
