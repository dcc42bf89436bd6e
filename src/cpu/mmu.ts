// Sv39/Sv48 page-table walk with superpages, U/SUM/MXR permission checks and
// hardware A/D updates (Svadu-style, a 64-bit compare-and-swap of the PTE in guest RAM).
import type { GuestRam } from "../seams/guest_ram.js";
import * as KC from "./constants.js";

const { MSTATUS_MXR, MSTATUS_SUM, PRV_S, PRV_U, SATP_SV39 } = KC; // local copies: no getter per read

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_FETCH = 2;

/** walk() results below zero: which fault the caller must raise. */
export const WALK_PAGE_FAULT = -1;
export const WALK_ACCESS_FAULT = -2;

const TWO32 = 4294967296;

/** Leaf of the last successful walk: [0] = level (0 = 4 KiB page, 1 = 2 MiB, ...), [1] = PTE low word. */
export const WALK_LEAF = new Int32Array(2);
/** Scratch for moving one PTE out of RAM bit-exactly. */
const PTE_F64 = new Float64Array(1);
const PTE_I32 = new Int32Array(PTE_F64.buffer);
const PTE_V = 1, PTE_R = 2, PTE_W = 4, PTE_X = 8, PTE_U = 16, PTE_A = 64, PTE_D = 128;

/**
 * Translate the virtual address (lo, hi) for `access` at privilege `priv` (U or S).
 * Returns the guest-physical address, or WALK_PAGE_FAULT / WALK_ACCESS_FAULT.
 */
export function walk(
  ram: GuestRam,
  satpMode: number,
  rootPpn: number,
  lo: number,
  hi: number,
  access: number,
  priv: number,
  mstatus: number,
): number {
  const levels = satpMode === SATP_SV39 ? 3 : 4;
  // Canonical form: all bits above the top VA bit equal it.
  const top = levels === 3 ? hi >> 6 : hi >> 15;
  if (top !== 0 && top !== -1) return WALK_PAGE_FAULT;
  const f64 = ram.f64;
  retry: for (let retry = 0; retry < 8; retry++) {
    let table = rootPpn * 4096;
    for (let level = levels - 1; level >= 0; level--) {
      let vpn: number;
      if (level === 0) vpn = (lo >>> 12) & 0x1ff;
      else if (level === 1) vpn = (lo >>> 21) & 0x1ff;
      else if (level === 2) vpn = ((lo >>> 30) | (hi << 2)) & 0x1ff;
      else vpn = (hi >>> 7) & 0x1ff;
      const pteAddr = table + vpn * 8;
      if (pteAddr < ram.base || pteAddr + 8 > ram.end) return WALK_ACCESS_FAULT;
      const dword = (pteAddr - ram.base) >>> 3;
      if (ram.lazyState !== null) ram.ensurePresent(dword * 8, 8); // lazy restore: page tables come in on first touch
      // The whole PTE in one host access: another hart may be rewriting it.
      PTE_F64[0] = f64[dword];
      const pteLo = PTE_I32[0]!;
      const pteHi = PTE_I32[1]!;
      if ((pteLo & PTE_V) === 0 || (pteLo & (PTE_R | PTE_W)) === PTE_W) return WALK_PAGE_FAULT;
      // Bits 54-63 (Svpbmt, Svnapot, reserved) are not implemented: must be zero.
      if (pteHi >>> 22 !== 0) return WALK_PAGE_FAULT;
      const ppn = (pteLo >>> 10) + (pteHi & 0x3fffff) * 4194304;
      if ((pteLo & (PTE_R | PTE_X)) === 0) {
        if (level === 0) return WALK_PAGE_FAULT;
        table = ppn * 4096;
        continue;
      }
      // Leaf: privilege and permission checks.
      if (priv === PRV_U) {
        if ((pteLo & PTE_U) === 0) return WALK_PAGE_FAULT;
      } else if (priv === PRV_S && (pteLo & PTE_U) !== 0) {
        if (access === ACCESS_FETCH || (mstatus & MSTATUS_SUM) === 0) return WALK_PAGE_FAULT;
      }
      if (access === ACCESS_FETCH) {
        if ((pteLo & PTE_X) === 0) return WALK_PAGE_FAULT;
      } else if (access === ACCESS_READ) {
        if ((pteLo & PTE_R) === 0 && ((mstatus & MSTATUS_MXR) === 0 || (pteLo & PTE_X) === 0)) return WALK_PAGE_FAULT;
      } else if ((pteLo & PTE_W) === 0) {
        return WALK_PAGE_FAULT;
      }
      // Misaligned superpage: the low 9*level PPN bits must be zero (ppn bits 0-21 are pteLo 10-31).
      if (level !== 0 && (((pteLo >>> 10) & ((1 << (9 * level)) - 1)) !== 0 || (level === 3 && (pteHi & 0x1f) !== 0))) {
        return WALK_PAGE_FAULT;
      }
      const want = PTE_A | (access === ACCESS_WRITE ? PTE_D : 0);
      if ((pteLo & want) !== want) {
        // Set A (and D) only if the whole PTE is still the one checked; otherwise walk again.
        const seen = (BigInt(pteHi) << 32n) | BigInt(pteLo >>> 0);
        if (Atomics.compareExchange(ram.i64, dword, seen, seen | BigInt(want)) !== seen) continue retry;
        ram.markDirty(dword * 8, 8); // the PTE changed: live snapshots and migration copy it again
      }
      WALK_LEAF[0] = level;
      WALK_LEAF[1] = pteLo;
      // Offset inside the (super)page comes from the virtual address.
      let inPage: number;
      if (level <= 1) inPage = lo & ((1 << (12 + 9 * level)) - 1);
      else if (level === 2) inPage = lo & 0x3fffffff;
      else inPage = (lo >>> 0) + (hi & 0x7f) * TWO32;
      return ppn * 4096 + inPage;
    }
  }
  return WALK_PAGE_FAULT;
}
