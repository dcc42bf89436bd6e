// The jump cache of `go` (jit/dispatcher.ts) maps a virtual pc straight to a compiled block, so it
// must forget what the fetch TLB forgets: a page remapped and flushed with sfence.vma, and an entry
// evicted by another page's fill (after which the interpreter would walk the page tables again and
// see a PTE changed without sfence). An S-mode program under Sv39 calls a function through a
// register (`go` each time) while the test's PTE changes underneath it.
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
const ROOT = RAM_BASE + 0x20_0000;
const PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_A = 64n, PTE_D = 128n;
/** The function's virtual page, and one 8 MiB on: the same fetch-TLB entry (2048 pages apart). */
const VA_FN = 0x4000_5000, VA_OTHER = VA_FN + 0x80_0000, VA_OTHER2 = VA_FN + 0x100_0000; // the same TLB index
/** Physical pages of the two versions of the function, and of a bare `ret`. */
const P_ONE = RAM_BASE + 0x30_0000, P_HUNDRED = RAM_BASE + 0x30_1000, P_RET = RAM_BASE + 0x30_2000;

test("the jump cache forgets a remapped page (sfence.vma) and an evicted fetch-TLB entry", () => {
  const ram = new GuestRam(RAM_BASE, 8 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BlockCache(ram, { threshold: 2, background: false });
  hart.useJit(cache);
  const tables = new Sv39Tables(ram, ROOT + 4096);
  const pt = { map: (va: number, pa: number, flags: bigint, level = 0): number => tables.map(ROOT, va, pa, flags, level) };
  pt.map(RAM_BASE, RAM_BASE, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D, 1); // this code, identity-mapped
  pt.map(RAM_BASE + 0x20_0000, RAM_BASE + 0x20_0000, PTE_R | PTE_W | PTE_A | PTE_D, 1); // the tables and the functions' pages, writable
  const code = PTE_R | PTE_X | PTE_A;
  const leaf = pt.map(VA_FN, P_ONE, code);
  pt.map(VA_OTHER, P_RET, code);
  pt.map(VA_OTHER2, P_RET, code);
  for (const [at, add] of [[P_ONE, 1], [P_HUNDRED, 100]] as const) ram.write(at, new Asm(at).addi(10, 10, add).jalr(0, 1, 0).bytesOut());
  ram.write(P_RET, new Asm(P_RET).jalr(0, 1, 0).bytesOut());

  const a = new Asm(RAM_BASE);
  const trapped = RAM_BASE + 0x1000;
  a.li(31, trapped).csrrw(0, K.CSR_MTVEC, 31);
  a.li(1, (8n << 60n) | BigInt(ROOT / 4096)).csrrw(0, K.CSR_SATP, 1);
  a.li(1, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, 1).li(1, 1 << K.MSTATUS_MPP_SHIFT).csrrs(0, K.CSR_MSTATUS, 1);
  a.auipc(1, 0).addi(1, 1, 16).csrrw(0, K.CSR_MEPC, 1).mret();
  // S-mode: x10 counts, x5 holds the function's address, x6 its leaf PTE's, x7 and x9 the two PTEs, x8 the other page's address
  a.li(10, 0).li(5, VA_FN).li(6, leaf).li(7, leafPte(P_HUNDRED, code)).li(9, leafPte(P_ONE, code)).li(8, VA_OTHER);
  // 1: remapped and flushed with sfence.vma, then called twice (the first call fills the fetch TLB,
  // the second finds the function through it and caches it in the jump cache), each call in a block
  // of its own so that compiled code makes it
  a.li(11, 300).label("flushed");
  a.sd(7, 6, 0).word(0x12028073).jal(0, "call_hundred"); // sfence.vma x5, x0
  a.label("call_hundred").jalr(1, 5, 0).jalr(1, 5, 0);
  a.sd(9, 6, 0).word(0x12028073).jal(0, "call_one");
  a.label("call_one").jalr(1, 5, 0).jalr(1, 5, 0);
  a.addi(11, 11, -1).bne(11, 0, "flushed");
  // 2: remapped without sfence.vma, but calls to two pages that share its fetch-TLB index evict it
  // from both ways first, so the interpreter would walk the tables again
  a.li(12, VA_OTHER2).li(11, 300).label("evicted");
  a.sd(7, 6, 0).jalr(1, 8, 0).jalr(1, 12, 0);
  a.jalr(1, 5, 0).jalr(1, 5, 0);
  a.sd(9, 6, 0).jalr(1, 8, 0).jalr(1, 12, 0);
  a.jalr(1, 5, 0).jalr(1, 5, 0);
  a.addi(11, 11, -1).bne(11, 0, "evicted");
  const done = a.here;
  a.label("done").jal(0, "done");
  ram.write(a.origin, a.bytesOut());
  ram.write(trapped, new Asm(trapped).label("spin").jal(0, "spin").bytesOut());
  hart.setPc(a.origin);
  for (let n = 0; n < 10_000 && hart.getPc() !== done && hart.getPc() !== trapped; n++) hart.run(1000);
  assert.equal(hart.getPc(), done, `the program ran to its end (mcause ${hart.readCsr(K.CSR_MCAUSE)})`);
  assert.equal(hart.getX(10), 2n * 300n * 202n, "each call ran the function its page maps now");
  assert.ok(cache.stats.instructionsCompiled > 5000, `the calls ran compiled (${cache.stats.instructionsCompiled} instructions)`);
});
