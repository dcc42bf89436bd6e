// Sv39 page tables written straight into guest RAM, for tests that run code under translation.
import type { GuestRam } from "../../seams/guest_ram.js";

const PTE_V = 1n;

/** A leaf PTE mapping physical `pa` with `flags` (V added). */
export function leafPte(pa: number, flags: bigint): bigint {
  return (BigInt(pa / 4096) << 10n) | flags | PTE_V;
}

/** Sv39 tables in `ram`: each table below a root is a zeroed page taken from `nextFree` on. */
export class Sv39Tables {
  constructor(private readonly ram: GuestRam, private nextFree: number) {}

  /** Writes the leaf PTE for `va` at `level` (0 = 4 KiB) under `root`, making the tables above it; returns the leaf's address. */
  map(root: number, va: number, pa: number, flags: bigint, level = 0): number {
    let table = root;
    for (let l = 2; l > level; l--) {
      const addr = table + ((va / 2 ** (12 + 9 * l)) & 0x1ff) * 8;
      let pte = this.read(addr);
      if ((pte & PTE_V) === 0n) {
        pte = (BigInt(this.nextFree / 4096) << 10n) | PTE_V;
        this.nextFree += 4096;
        this.write(addr, pte);
      }
      table = Number(pte >> 10n) * 4096;
    }
    const leaf = table + ((va / 2 ** (12 + 9 * level)) & 0x1ff) * 8;
    this.write(leaf, leafPte(pa, flags));
    return leaf;
  }

  private read(addr: number): bigint {
    return BigInt(this.ram.readU32(addr)) | (BigInt(this.ram.readU32(addr + 4)) << 32n);
  }

  private write(addr: number, v: bigint): void {
    this.ram.writeU32(addr, Number(v & 0xffffffffn));
    this.ram.writeU32(addr + 4, Number(v >> 32n));
  }
}
