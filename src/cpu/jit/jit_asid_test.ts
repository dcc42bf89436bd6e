// Address spaces (satp's ASID and root) keep their TLB entries across satp writes (hart_base.ts
// satpWritten): U mode has a set per recent address space, the S sets keep global pages and drop
// the rest at a switch, and user pages S mode reads under SUM stay in their set while SUM is
// cleared and set again. A program in S mode switches between address spaces, loads through a
// non-global page, a global one and a user page (twice under SUM), and runs its own U-mode function
// (at one virtual address) in each; both tiers must see each space's own pages and code, agree at
// every budget, and not walk again what a switch or SUM kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import * as K from "../constants.js";
import { BlockCache } from "./block_cache.js";
import { Sv39Tables, leafPte } from "../testing/sv39_tables.js";

const RAM_BASE = 0x8000_0000;
const PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_U = 16n, PTE_G = 32n, PTE_A = 64n, PTE_D = 128n;
/** Two roots, and the pages their tables take. */
const ROOTS = [RAM_BASE + 0x20_0000, RAM_BASE + 0x21_0000];
/** Virtual pages: S-mode data (not global), S-mode data (global), U-mode code and data, and U data S mode reads under SUM (TLB index 291). */
const VA_D = 0x4000_1000, VA_G = 0x4000_2000, VA_UFN = 0x1000_0000, VA_U = 0x1000_3000, VA_SU = 0x1012_3000;
/** Physical pages: each root's VA_D, VA_U and U code, the global page, and VA_U after the remap. */
const P_D = [RAM_BASE + 0x30_0000, RAM_BASE + 0x30_1000], P_U = [RAM_BASE + 0x30_2000, RAM_BASE + 0x30_3000];
const P_UFN = [RAM_BASE + 0x30_5000, RAM_BASE + 0x30_7000];
const P_G = RAM_BASE + 0x30_4000, P_NEW = RAM_BASE + 0x30_6000;
const D_VALUE = [3n, 5n], U_VALUE = [11n, 13n], G_VALUE = 7n, NEW_VALUE = 1000n;
/** The table of satp values the program cycles through (identity-mapped kernel data). */
const SATP_TABLE = RAM_BASE + 0x1_0000;
const S0 = 8, S1 = 9, S2 = 18, S3 = 19, S4 = 20, S5 = 21, S6 = 22, S7 = 23, S8 = 24, S9 = 25;
const A0 = 10, A1 = 11, T0 = 5, T1 = 6, T2 = 7, T3 = 28;

interface Space { asid: number; root: 0 | 1 }

/**
 * `steps` times: satp = the next of `spaces`; S-mode loads of VA_D and VA_G; sret to the U
 * function (load of VA_U, ecall back). Then, in spaces[0], VA_U is remapped to P_NEW and fenced
 * with `sfence.vma x0, asid` before a last U run.
 */
function machine(jit: boolean, spaces: readonly Space[], steps: number): Hart {
  const ram = new GuestRam(RAM_BASE, 8 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) hart.useJit(new BlockCache(ram, { threshold: 2, background: false }));
  const tables = new Sv39Tables(ram, ROOTS[1]! + 0x1000);
  const map = (root: number, va: number, pa: number, flags: bigint, level = 0): number => tables.map(root, va, pa, flags, level);
  const satp = (s: Space): bigint => (8n << 60n) | (BigInt(s.asid) << 44n) | BigInt(ROOTS[s.root]! / 4096);
  let remapLeaf = 0;
  for (const r of [0, 1] as const) {
    for (const k of [RAM_BASE, RAM_BASE + 0x20_0000]) map(ROOTS[r]!, k, k, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G, 1); // kernel: code, data, tables
    map(ROOTS[r]!, VA_D, P_D[r]!, PTE_R | PTE_A);
    map(ROOTS[r]!, VA_G, P_G, PTE_R | PTE_A | PTE_G);
    map(ROOTS[r]!, VA_UFN, P_UFN[r]!, PTE_R | PTE_X | PTE_U | PTE_A);
    const leaf = map(ROOTS[r]!, VA_U, P_U[r]!, PTE_R | PTE_U | PTE_A);
    map(ROOTS[r]!, VA_SU, P_U[r]!, PTE_R | PTE_U | PTE_A);
    if (r === spaces[0]!.root) remapLeaf = leaf;
    ram.writeU32(P_D[r]!, Number(D_VALUE[r]));
    ram.writeU32(P_U[r]!, Number(U_VALUE[r]));
  }
  ram.writeU32(P_G, Number(G_VALUE));
  ram.writeU32(P_NEW, Number(NEW_VALUE));
  spaces.forEach((s, i) => { const v = satp(s); ram.writeU32(SATP_TABLE + 8 * i, Number(v & 0xffffffffn)); ram.writeU32(SATP_TABLE + 8 * i + 4, Number(v >> 32n)); });

  for (const r of [0, 1]) { // U mode: S5 += *VA_U (root 1's code: twice); back to S
    const u = new Asm(P_UFN[r]!);
    u.ld(A0, S4, 0).add(S5, S5, A0);
    if (r === 1) u.add(S5, S5, A0);
    u.ecall();
    ram.write(u.origin, u.bytesOut());
  }

  const a = new Asm(RAM_BASE);
  a.li(T0, 1 << K.CAUSE_USER_ECALL).csrrw(0, K.CSR_MEDELEG, T0);
  a.li(T0, RAM_BASE + 0x800).csrrw(0, K.CSR_STVEC, T0); // the handler below: on to S8
  a.li(T0, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, T0).li(T0, K.PRV_S << K.MSTATUS_MPP_SHIFT).csrrs(0, K.CSR_MSTATUS, T0);
  a.li(T0, RAM_BASE + 0x100).csrrw(0, K.CSR_MEPC, T0).mret();
  while (a.here < RAM_BASE + 0x100) a.addi(0, 0, 0);
  // S mode: S0 steps left, S6 the table index, S1 / S7 / A1 the sums of VA_D / VA_G / VA_SU, S5 of VA_U.
  a.li(S0, steps).li(S6, 0).li(S1, 0).li(S7, 0).li(S5, 0).li(A1, 0).li(S4, VA_U).li(S2, VA_D).li(S3, VA_G).li(S9, SATP_TABLE);
  a.label("loop");
  a.add(T1, S9, S6).ld(T1, T1, 0).csrrw(0, K.CSR_SATP, T1);
  a.ld(A0, S2, 0).add(S1, S1, A0).ld(A0, S3, 0).add(S7, S7, A0).li(T2, VA_SU);
  a.li(T0, K.MSTATUS_SUM).csrrs(0, K.CSR_SSTATUS, T0).ld(A0, T2, 0).csrrc(0, K.CSR_SSTATUS, T0).add(A1, A1, A0);
  a.csrrs(0, K.CSR_SSTATUS, T0).ld(A0, T2, 8).csrrc(0, K.CSR_SSTATUS, T0); // a second user copy: its entry is still there
  a.li(T0, VA_UFN).csrrw(0, K.CSR_SEPC, T0).auipc(S8, 0).addi(S8, S8, 12).sret();
  a.addi(S6, S6, 8).li(T0, 8 * spaces.length).bne(S6, T0, "next").li(S6, 0);
  a.label("next").addi(S0, S0, -1).bne(S0, 0, "loop");
  // spaces[0] again; its VA_U now maps P_NEW, fenced by ASID only.
  a.ld(T1, S9, 0).csrrw(0, K.CSR_SATP, T1);
  a.li(T1, remapLeaf).li(T2, leafPte(P_NEW, PTE_R | PTE_U | PTE_A)).sd(T2, T1, 0);
  a.li(T3, spaces[0]!.asid).sfenceVma(0, T3);
  a.li(T0, VA_UFN).csrrw(0, K.CSR_SEPC, T0).auipc(S8, 0).addi(S8, S8, 12).sret();
  a.label("done").jal(0, "done");
  while (a.here < RAM_BASE + 0x800) a.addi(0, 0, 0);
  a.jalr(0, S8, 0); // stvec: back where the sret left
  ram.write(a.origin, a.bytesOut());
  hart.setPc(RAM_BASE);
  return hart;
}

/** Runs both tiers in lockstep over `budgets` in turn until the interpreter reaches `done`; checks the sums; the TLB fills of each. */
function lockstep(spaces: readonly Space[], steps: number, budgets: readonly number[]): { interp: number; jit: number } {
  const interp = machine(false, spaces, steps), jit = machine(true, spaces, steps);
  for (let i = 0; interp.getX(S0) !== 0n || interp.getX(A0) !== NEW_VALUE; i++) {
    assert.ok(i < 200_000, "the program ends");
    const b = budgets[i % budgets.length]!;
    assert.equal(jit.run(b), interp.run(b), `run ${i} (budget ${b}): instructions retired`);
    assert.equal(jit.getPc(), interp.getPc(), `run ${i}: pc`);
    for (let r = 1; r < 32; r++) assert.equal(jit.getX(r), interp.getX(r), `run ${i}: x${r}`);
  }
  let d = 0n, uSum = 0n, uSumOnce = 0n;
  for (let i = 0; i < steps; i++) {
    const s = spaces[i % spaces.length]!;
    d += D_VALUE[s.root]!;
    uSum += U_VALUE[s.root]! * BigInt(s.root + 1);
    uSumOnce += U_VALUE[s.root]!;
  }
  assert.equal(interp.getX(S1), d, "each address space's non-global S page");
  assert.equal(interp.getX(S7), G_VALUE * BigInt(steps), "the global page");
  assert.equal(interp.getX(A1), uSumOnce, "each address space's U page, read in S mode under SUM");
  assert.equal(interp.getX(S5), uSum + NEW_VALUE * BigInt(spaces[0]!.root + 1), "each address space's U code and page, and the remap after sfence.vma x0, asid");
  assert.ok(jit.jitCache!.stats.instructionsCompiled > steps * 4, "the loop ran compiled");
  return { interp: interp.tlbFills, jit: jit.tlbFills };
}

const STEPS = 200;
const BUDGETS = [1, 2, 3, 5, 7, 11, 64, 100, 1000];

test("two address spaces over two roots: each sees its own pages, both tiers agree, and a switch back walks only the non-global S pages again", () => {
  const { interp, jit } = lockstep([{ asid: 1, root: 0 }, { asid: 2, root: 1 }], STEPS, BUDGETS);
  // Per step, only the S entries of VA_D and VA_SU are filled again (a flush at each satp write made it six: code, VA_D, VA_G,
  // VA_SU, U code, VA_U; dropping user pages when SUM is cleared, three).
  for (const [tier, fills] of [["interpreter", interp], ["JIT", jit]] as const) {
    assert.ok(fills <= 2 * STEPS + 20, `${tier}: ${fills} TLB fills over ${STEPS} switches`);
  }
});

test("more address spaces than U sets: the least recently used set is reused, and nothing of its space survives", () => {
  const spaces = Array.from({ length: 10 }, (_, i) => ({ asid: 100 + i, root: (i % 2) as 0 | 1 }));
  const many = lockstep(spaces, STEPS, BUDGETS);
  // Ten spaces in turn over eight sets: each switch finds its set taken and fills U code and data again.
  assert.ok(many.interp >= 3.5 * STEPS, `ten spaces: ${many.interp} fills over ${STEPS} switches`);
  const eight = lockstep(spaces.slice(0, 8), STEPS, BUDGETS);
  assert.ok(eight.interp <= 2 * STEPS + 40, `eight spaces: ${eight.interp} fills over ${STEPS} switches`);
});
