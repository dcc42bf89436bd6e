// The general interpreter loop: executes every instruction, calling the slow paths where needed.
import * as FP from "./fp_bridge.js";
import * as KC from "./constants.js";
import * as RVC from "./rvc.js";
import * as I64 from "./int64.js";
import { HartSystem } from "./hart_system.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { executeFp } = FP;
const { RVC_TABLE } = RVC;
const { R, divrem64, mulh64, mulhsu64, mulhu64, mulhu32 } = I64;
const { CAUSE_ILLEGAL_INSTRUCTION, MSTATUS_FS } = KC;

export abstract class HartSlowLoop extends HartSystem {
  /** The full interpreter: runs at most `limit` instructions; stops after any SYSTEM instruction or fault. Returns instructions retired. */
  // Literals (4294967296 = 2^32, 2047 = TLB_MASK) rather than module consts: TurboFan reloaded and
  // type-checked the context slot of a module const on every use in this loop.
  protected execSlow(limit: number): number {
    const x = this.x;
    const u8 = this.u8, u16 = this.u16, i32 = this.i32;
    const f64 = this.f64, d64 = this.d64, d32 = this.d32;
    const rTagLo = this.rTagLo, rTagHi = this.rTagHi, rOff = this.rOff;
    const xTagLo = this.xTagLo, xTagHi = this.xTagHi, xOff = this.xOff;
    const wTagLo = this.wTagLo, wTagHi = this.wTagHi, wOff = this.wOff;
    const rvc = RVC_TABLE;
    const pcBox = this.pcBox;
    // Unary + types field loads and call results as Number, so TurboFan keeps pc, codeVBase and
    // codeOff as raw float64 in the loop; a tagged phi boxed a HeapNumber for every kernel pc.
    let pc = +this.pc;
    this.irqRaised = false;
    let codeVBase = +this.codeVBase;
    let codeOff = +this.codeOff;
    limit |= 0;
    let n = 0;
    let counted = 0; // part of n already added to this.instret (CSR reads must see an exact count)
    loop: while (n < limit) {
      // ---- fetch
      let insn: number;
      const d = pc - codeVBase;
      if (d >= 0 && d <= 4092) {
        const o = (codeOff + d) >>> 1; // unsigned: RAM may exceed 2 GiB
        insn = u16[o] | (u16[o + 1] << 16);
      } else {
        // New code page: try the fetch TLB inline before the slow path.
        const lo = pc | 0;
        const po = lo & 0xfff;
        const idx = (lo >>> 12) & 2047;
        if (po <= 4092 && xTagLo[idx] === (lo & -4096) && xTagHi[idx] === (Math.floor(pc / 4294967296) | 0)) {
          codeVBase = pc - po;
          codeOff = xOff[idx];
          const o = (codeOff + po) >>> 1;
          insn = u16[o] | (u16[o + 1] << 16);
        } else {
          pcBox[0] = pc;
          insn = this.fetchSlow() | 0;
          if (this.excPending) break loop;
          codeVBase = +this.codeVBase;
          codeOff = +this.codeOff;
        }
      }
      let ilen = 4;
      let raw = insn;
      if ((insn & 3) !== 3) {
        raw = insn & 0xffff;
        insn = rvc[raw];
        ilen = 2;
      }
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      const f3 = (insn >>> 12) & 7;
      let npc = pc + ilen;
      switch ((insn >>> 2) & 31) { // opcode[6:2]: a dense jump table (low bits are 11 after RVC expansion)
        case 13: { // LUI
          if (rd !== 0) { const v = insn & 0xfffff000; x[2 * rd] = v; x[2 * rd + 1] = v >> 31; }
          break;
        }
        case 5: { // AUIPC
          if (rd !== 0) {
            const v = pc + (insn & 0xfffff000);
            x[2 * rd] = v | 0; // ToInt32 = low word; `% 4294967296` compiles to an x87 fprem loop
            x[2 * rd + 1] = Math.floor(v / 4294967296) | 0;
          }
          break;
        }
        case 27: { // JAL
          const imm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
          if (rd !== 0) { x[2 * rd] = npc | 0; x[2 * rd + 1] = Math.floor(npc / 4294967296) | 0; }
          npc = pc + imm;
          break;
        }
        case 25: { // JALR
          if (f3 !== 0) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const th = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const tl = (s | 0) & ~1;
          if (rd !== 0) { x[2 * rd] = npc | 0; x[2 * rd + 1] = Math.floor(npc / 4294967296) | 0; }
          npc = th * 4294967296 + (tl >>> 0);
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
            default: this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop;
          }
          if (taken) {
            npc = pc + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
          }
          break;
        }
        case 0: { // LOAD
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          let vl = 0, vh = 0, done = false;
          if (rTagLo[idx] === (lo & -4096) && rTagHi[idx] === hi) {
            const off = rOff[idx] + (lo & 0xfff);
            switch (f3) {
              case 0: vl = (u8[off] << 24) >> 24; vh = vl >> 31; done = true; break;
              case 4: vl = u8[off]; done = true; break;
              case 1: if ((off & 1) === 0) { vl = (u16[off >>> 1] << 16) >> 16; vh = vl >> 31; done = true; } break;
              case 5: if ((off & 1) === 0) { vl = u16[off >>> 1]; done = true; } break;
              case 2: if ((off & 3) === 0) { vl = i32[off >>> 2]; vh = vl >> 31; done = true; } break;
              case 6: if ((off & 3) === 0) { vl = i32[off >>> 2]; done = true; } break;
              case 3: if ((off & 7) === 0) { d64[0] = f64[off >>> 3]; vl = d32[0]; vh = d32[1]; done = true; } break;
              default: break;
            }
          }
          if (!done) {
            if (f3 === 7) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
            pcBox[0] = pc;
            if (!this.loadSlow(lo, hi, f3)) break loop;
            if (rd !== 0) { x[2 * rd] = this.ldLo; x[2 * rd + 1] = this.ldHi; }
            if (this.irqRaised) { pc = npc; n++; break loop; } // a device raised an interrupt: take it now
            break;
          }
          if (rd !== 0) { x[2 * rd] = vl; x[2 * rd + 1] = vh; }
          break;
        }
        case 8: { // STORE
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          const vl = x[2 * rs2];
          let done = false;
          if (wTagLo[idx] === (lo & -4096) && wTagHi[idx] === hi) {
            const off = wOff[idx] + (lo & 0xfff);
            switch (f3) {
              case 0: u8[off] = vl; done = true; break;
              case 1: if ((off & 1) === 0) { u16[off >>> 1] = vl; done = true; } break;
              case 2: if ((off & 3) === 0) { i32[off >>> 2] = vl; done = true; } break;
              case 3: if ((off & 7) === 0) { d32[0] = vl; d32[1] = x[2 * rs2 + 1]; f64[off >>> 3] = d64[0]; done = true; } break;
              default: break;
            }
          }
          if (!done) {
            if (f3 > 3) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
            pcBox[0] = pc;
            if (!this.storeSlow(lo, hi, f3, vl, x[2 * rs2 + 1])) break loop;
            if (this.irqRaised) { pc = npc; n++; break loop; }
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
              if (insn >>> 26 !== 0) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
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
              } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
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
          else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
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
          } else if (f7 === 1) {
            switch (f3) {
              case 0: rl = Math.imul(al, bl); rh = (mulhu32(al, bl) + Math.imul(al, bh) + Math.imul(ah, bl)) | 0; break;
              case 1: mulh64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              case 2: mulhsu64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              case 3: mulhu64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              default: divrem64(f3 - 4, al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
            }
          } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
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
            else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          } else if (f7 === 0x20) {
            if (f3 === 0) r = (a - b) | 0;
            else if (f3 === 5) r = a >> (b & 31);
            else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          } else if (f7 === 1) {
            switch (f3) {
              case 0: r = Math.imul(a, b); break;
              case 4: r = b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : (a / b) | 0; break;
              case 5: r = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0; break;
              case 6: r = b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : (a % b) | 0; break;
              case 7: r = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0; break;
              default: this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop;
            }
          } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 3: { // MISC-MEM: fence, fence.i (no decoded-instruction cache, so nothing to drop)
          if (f3 > 1) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          break;
        }
        case 11: { // AMO
          pcBox[0] = pc;
          if (!this.execAtomic(insn)) break loop;
          break;
        }
        case 28: { // SYSTEM: ends the slice when interrupt enables, privilege or translation may change
          pcBox[0] = pc;
          this.instret += n - counted;
          counted = n;
          this.sliceExit = true;
          const next = +this.execSystem(insn, ilen, raw);
          if (next !== next) break loop; // NaN: exception raised
          n++;
          pc = next;
          if (this.sliceExit) break loop;
          continue;
        }
        case 1: case 9: { // LOAD-FP / STORE-FP
          pcBox[0] = pc;
          if (!this.execFpMem(insn, (insn & 0x7f) === 0x27, raw)) break loop;
          break;
        }
        case 20: case 16: case 17: case 18: case 19: { // F/D arithmetic: the FPU
          if ((this.mstatus & MSTATUS_FS) === 0 || executeFp(insn, this.fp) !== 0) {
            this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
            break loop;
          }
          this.mstatus |= MSTATUS_FS;
          break;
        }
        default:
          this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
          break loop;
      }
      pc = npc;
      n++;
    }
    pcBox[0] = pc;
    this.instret += n - counted;
    return n;
  }
}
