// Loads, stores, misaligned access, MMIO, atomics, FP loads/stores, compressed code, and the MMU.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "./testing/asm.js";
import { makeMachine, load, runTo, RAM_BASE } from "./testing/machine.js";
import type { TestMachine } from "./testing/machine.js";
import * as K from "./constants.js";
import { encR } from "./encode.js";

const MTRAP = RAM_BASE + 0x8000;
const DATA = RAM_BASE + 0x10_0000;
const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
const csr = (m: TestMachine, n: number): bigint => m.hart.readCsr(n) ?? -999n;

function prog(body: (a: Asm) => void, origin = RAM_BASE): { m: TestMachine; end: number } {
  const m = makeMachine();
  const a = new Asm(origin);
  a.li(31, MTRAP).csrrw(0, K.CSR_MTVEC, 31);
  body(a);
  const end = a.here;
  load(m, a);
  if (origin !== RAM_BASE) m.hart.setPc(origin);
  return { m, end };
}

function readU64(m: TestMachine, addr: number): bigint {
  return BigInt(m.ram.readU32(addr)) | (BigInt(m.ram.readU32(addr + 4)) << 32n);
}

test("loads sign- or zero-extend every width; stores write exactly their width", () => {
  const { m, end } = prog((a) => {
    a.li(20, DATA).li(1, 0x8182838485868788n).sd(1, 20, 0);
    for (let f3 = 0; f3 <= 6; f3++) if (f3 !== 3) a.load(f3, 1 + f3 + 1, 20, 0); else a.load(3, 4, 20, 0);
    a.li(9, -1).sd(9, 20, 8).li(10, 0x1122334455667788n);
    a.store(0, 10, 20, 8).store(1, 10, 20, 10).store(2, 10, 20, 12);
  });
  runTo(m, end);
  const h = m.hart;
  assert.equal(h.getX(2), s64(0xffffffffffffff88n), "lb");
  assert.equal(h.getX(3), s64(0xffffffffffff8788n), "lh");
  assert.equal(h.getX(4), s64(0x8182838485868788n), "ld");
  assert.equal(h.getX(6), 0x88n, "lbu");
  assert.equal(h.getX(7), 0x8788n, "lhu");
  assert.equal(h.getX(8), 0x85868788n, "lwu");
  assert.equal(readU64(m, DATA + 8), 0x55667788_7788ff88n);
});

test("lw sign-extends", () => {
  const { m, end } = prog((a) => {
    a.li(20, DATA).li(1, 0x80000000).sw(1, 20, 0).lw(2, 20, 0);
  });
  runTo(m, end);
  assert.equal(m.hart.getX(2), -0x80000000n);
});

test("misaligned loads and stores are performed, also across a page boundary", () => {
  const { m, end } = prog((a) => {
    a.li(20, DATA + 4093).li(1, 0x0102030405060708n).sd(1, 20, 0).ld(2, 20, 0);
    a.li(21, DATA + 1).sw(1, 21, 0).lw(3, 21, 0).load(5, 4, 21, 2);
  });
  runTo(m, end);
  assert.equal(m.hart.getX(2), 0x0102030405060708n);
  assert.equal(m.ram.u8[DATA + 4093 - RAM_BASE], 0x08);
  assert.equal(m.ram.u8[DATA + 4100 - RAM_BASE], 0x01);
  assert.equal(m.hart.getX(3), 0x05060708n);
  assert.equal(m.hart.getX(4), 0x0506n);
});

test("MMIO goes through the bus with the right offset and size; unmapped is an access fault", () => {
  const log: string[] = [];
  let bad = 0;
  const { m } = prog((a) => {
    a.li(20, 0x1000_0000).li(1, 0x1234).sw(1, 20, 4).lw(2, 20, 8).load(4, 3, 20, 1);
    a.li(5, 0x1122334455667788n).sd(5, 20, 16).ld(6, 20, 16);
    a.li(21, 0x2000_0000);
    bad = a.here;
    a.lw(7, 21, 0);
  });
  m.bus.map(0x1000_0000, 0x100, {
    name: "probe",
    read: (off, size) => { log.push(`r${off}/${size}`); return off === 8 ? 0xfffffffe : off === 16 ? 0x55667788 : off === 20 ? 0x11223344 : 0xab; },
    write: (off, size, v) => { log.push(`w${off}/${size}=${v.toString(16)}`); },
  });
  runTo(m, MTRAP);
  assert.deepEqual(log, ["w4/4=1234", "r8/4", "r1/1", "w16/4=55667788", "w20/4=11223344", "r16/4", "r20/4"]);
  assert.equal(m.hart.getX(2), -2n, "lw from MMIO sign-extends");
  assert.equal(m.hart.getX(3), 0xabn);
  assert.equal(m.hart.getX(6), 0x1122334455667788n);
  assert.equal(csr(m, K.CSR_MCAUSE), 5n);
  assert.equal(csr(m, K.CSR_MEPC), BigInt(bad));
  assert.equal(csr(m, K.CSR_MTVAL), 0x2000_0000n);
});

test("AMOs (W and D) return the old value and store the result", () => {
  const cases: [number, bigint, bigint, bigint][] = [
    // f5, memory, operand, expected memory
    [0x01, 5n, -3n, -3n], [0x00, 5n, -3n, 2n], [0x04, 0xf0n, 0xffn, 0x0fn], [0x0c, 0xf0n, 0x3cn, 0x30n],
    [0x08, 0xf0n, 0x0fn, 0xffn], [0x10, -5n, 3n, -5n], [0x14, -5n, 3n, 3n], [0x18, -5n, 3n, 3n], [0x1c, -5n, 3n, -5n],
  ];
  for (const size of [4, 8] as const) {
    for (const [f5, mem, opnd, want] of cases) {
      const { m, end } = prog((a) => {
        a.li(20, DATA).li(1, mem).sd(1, 20, 0).li(2, opnd).amo(f5, size, 3, 20, 2);
        a.ld(4, 20, 0);
      });
      runTo(m, end);
      const mask = size === 4 ? 0xffffffffn : (1n << 64n) - 1n;
      const signed = (v: bigint): bigint => (size === 4 ? BigInt.asIntN(32, v) : s64(v));
      assert.equal(m.hart.getX(3), signed(mem & mask), `amo ${f5.toString(16)}.${size} old value`);
      assert.equal(signed(m.hart.getX(4) & mask), signed(want & mask), `amo ${f5.toString(16)}.${size} memory`);
    }
  }
});

test("LR/SC: succeeds with a reservation, fails without one or after the value changed", () => {
  const { m, end } = prog((a) => {
    a.li(20, DATA).li(1, 7).sd(1, 20, 0);
    a.amo(0x02, 8, 2, 20, 0).addi(2, 2, 1).amo(0x03, 8, 3, 20, 2); // lr; sc ok
    a.amo(0x03, 8, 4, 20, 2); // sc without reservation: fails
    a.amo(0x02, 4, 5, 20, 0).li(6, 99).sw(6, 20, 0).amo(0x03, 4, 7, 20, 2); // value changed: fails
    a.ld(8, 20, 0);
  });
  runTo(m, end);
  const h = m.hart;
  assert.equal(h.getX(2), 8n);
  assert.equal(h.getX(3), 0n, "sc succeeded");
  assert.equal(h.getX(4), 1n, "sc without reservation failed");
  assert.equal(h.getX(7), 1n, "sc after a changed value failed");
  assert.equal(h.getX(8), 99n);
});

test("misaligned AMO raises store/AMO address misaligned", () => {
  const { m } = prog((a) => {
    a.li(20, DATA + 2).amo(0x00, 4, 1, 20, 0);
  });
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 6n);
  assert.equal(csr(m, K.CSR_MTVAL), BigInt(DATA + 2));
});

test("FP loads/stores: illegal while FS = Off; NaN-boxing for flw; FS becomes Dirty", () => {
  const off = prog((a) => { a.li(20, DATA).fld(1, 20, 0); });
  runTo(off.m, MTRAP);
  assert.equal(csr(off.m, K.CSR_MCAUSE), 2n);
  const { m, end } = prog((a) => {
    a.li(1, 1 << K.MSTATUS_FS_SHIFT).csrrs(0, K.CSR_MSTATUS, 1); // FS = Initial
    a.li(20, DATA).li(2, 0x400921fb54442d18n).sd(2, 20, 0).li(3, 0x3f800000).sw(3, 20, 8);
    a.fld(1, 20, 0).flw(2, 20, 8).fsd(1, 20, 16).fsd(2, 20, 24).fsw(1, 20, 32);
    a.csrrs(4, K.CSR_MSTATUS, 0);
  });
  runTo(m, end);
  assert.equal(readU64(m, DATA + 16), 0x400921fb54442d18n);
  assert.equal(readU64(m, DATA + 24), 0xffffffff3f800000n, "flw NaN-boxes");
  assert.equal(m.ram.readU32(DATA + 32), 0x54442d18);
  assert.ok(m.hart.getX(4) < 0n, "SD set");
  assert.equal(m.hart.getX(4) & BigInt(K.MSTATUS_FS), BigInt(K.MSTATUS_FS));
});

test("compressed code runs, including c.fldsp/c.fsdsp and a 32-bit instruction straddling a page", () => {
  const m = makeMachine();
  const origin = RAM_BASE + 0x1000 - 6; // the last 32-bit instruction crosses into the next page
  const a = new Asm(origin);
  a.half(0x4529); // c.li a0, 10
  a.half(0x4581); // c.li a1, 0
  a.half(0x95aa); // c.add a1, a1, a0
  a.half(0x157d); // c.addi a0, -1
  a.half(0xfd75); // c.bnez a0, -4
  a.addi(12, 11, 1);
  const end = a.here;
  m.ram.write(origin, a.bytesOut());
  // Run from origin + 4 so the 32-bit addi sits at page offset 0xffe... adjust: place code so addi straddles.
  m.hart.setPc(origin);
  runTo(m, end);
  assert.equal(m.hart.getX(11), 55n);
  assert.equal(m.hart.getX(12), 56n);

  const m2 = makeMachine();
  const b = new Asm(RAM_BASE + 0x0ffe);
  b.addi(5, 0, 77); // at 0xffe: straddles the page boundary
  b.half(0x0001);
  const end2 = b.here;
  m2.ram.write(b.origin, b.bytesOut());
  m2.hart.setPc(b.origin);
  runTo(m2, end2);
  assert.equal(m2.hart.getX(5), 77n);

  const m3 = makeMachine();
  const c = new Asm();
  c.li(1, 1 << K.MSTATUS_FS_SHIFT).csrrs(0, K.CSR_MSTATUS, 1).li(2, DATA).li(3, 0x1122334455667788n).sd(3, 2, 8);
  c.half(0x2522); // c.fldsp fa0, 8(sp)
  c.half(0xa82a); // c.fsdsp fa0, 16(sp)
  const end3 = c.here;
  load(m3, c);
  runTo(m3, end3);
  assert.equal(readU64(m3, DATA + 16), 0x1122334455667788n);
});

test("an illegal compressed instruction reports its 16 bits in mtval", () => {
  const { m } = prog((a) => { a.half(0x0000); });
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 2n);
  assert.equal(csr(m, K.CSR_MTVAL), 0n);
  const r = prog((a) => { a.half(0x4002); a.half(0x0001); }); // c.lwsp x0: reserved
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MTVAL), 0x4002n);
});

// ------------------------------------------------------------------ MMU

const PTE_V = 1n, PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_U = 16n, PTE_A = 64n, PTE_D = 128n;

class PageTables {
  private next: number;
  constructor(private readonly m: TestMachine, readonly root: number, readonly levels: number) {
    this.next = root + 4096;
  }
  /** Map va -> pa with a leaf at `level` (0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB). */
  map(va: bigint, pa: number, flags: bigint, level = 0): void {
    let table = this.root;
    for (let l = this.levels - 1; l > level; l--) {
      const idx = Number((va >> BigInt(12 + 9 * l)) & 0x1ffn);
      const addr = table + idx * 8;
      let pte = readU64(this.m, addr);
      if ((pte & PTE_V) === 0n) {
        const t = this.next;
        this.next += 4096;
        pte = (BigInt(t / 4096) << 10n) | PTE_V;
        this.write(addr, pte);
      }
      table = Number(pte >> 10n) * 4096;
    }
    const idx = Number((va >> BigInt(12 + 9 * level)) & 0x1ffn);
    this.write(table + idx * 8, (BigInt(Math.floor(pa / 4096)) << 10n) | flags | PTE_V);
  }
  pte(va: bigint, level = 0): bigint {
    let table = this.root;
    for (let l = this.levels - 1; l > level; l--) {
      const pte = readU64(this.m, table + Number((va >> BigInt(12 + 9 * l)) & 0x1ffn) * 8);
      table = Number(pte >> 10n) * 4096;
    }
    return readU64(this.m, table + Number((va >> BigInt(12 + 9 * level)) & 0x1ffn) * 8);
  }
  private write(addr: number, v: bigint): void {
    this.m.ram.writeU32(addr, Number(v & 0xffffffffn));
    this.m.ram.writeU32(addr + 4, Number(v >> 32n));
  }
}

const ROOT = RAM_BASE + 0x20_0000;
const KCODE = RAM_BASE; // identity-mapped with a 2 MiB superpage (kernel)

/**
 * Program at RAM_BASE in M-mode: sets satp, drops to `mode` (S or U), then runs `body`.
 * The code page is identity-mapped (2 MiB superpage, U bit when mode = U).
 */
function vmProg(mode: 0 | 1, sv48: boolean, body: (a: Asm) => void, extraMstatus = 0):
  { m: TestMachine; pt: PageTables; end: number } {
  const m = makeMachine(8 << 20);
  const pt = new PageTables(m, ROOT, sv48 ? 4 : 3);
  pt.map(BigInt(KCODE), KCODE, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | (mode === 0 ? PTE_U : 0n), 1);
  const a = new Asm();
  a.li(31, MTRAP).csrrw(0, K.CSR_MTVEC, 31);
  a.li(1, ((sv48 ? 9n : 8n) << 60n) | BigInt(ROOT / 4096)).csrrw(0, K.CSR_SATP, 1);
  a.li(1, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, 1);
  a.li(1, (mode << K.MSTATUS_MPP_SHIFT) | extraMstatus).csrrs(0, K.CSR_MSTATUS, 1);
  a.auipc(1, 0).addi(1, 1, 16).csrrw(0, K.CSR_MEPC, 1).mret();
  body(a);
  const end = a.here;
  load(m, a);
  return { m, pt, end };
}

test("Sv39: 4 KiB page translation with A/D bits set by hardware", () => {
  const VA = 0x4000_1000n;
  const PA = RAM_BASE + 0x30_0000;
  const { m, pt, end } = vmProg(1, false, (a) => {
    a.li(20, VA).ld(2, 20, 8);
  });
  pt.map(VA, PA, PTE_R | PTE_W);
  m.ram.writeU32(PA + 8, 0xcafe);
  runTo(m, end);
  assert.equal(m.hart.getX(2), 0xcafen);
  assert.equal(pt.pte(VA) & (PTE_A | PTE_D), PTE_A, "read sets A only");
  const w = vmProg(1, false, (a) => { a.li(20, VA).li(3, 5).sd(3, 20, 16); });
  w.pt.map(VA, PA, PTE_R | PTE_W);
  runTo(w.m, w.end);
  assert.equal(w.m.ram.readU32(PA + 16), 5);
  assert.equal(w.pt.pte(VA) & (PTE_A | PTE_D), PTE_A | PTE_D, "write sets A and D");
});

test("Sv48: four-level walk and a 2 MiB superpage", () => {
  const VA = 0x7f_4020_0000n; // above the Sv39 range
  const PA = RAM_BASE + 0x40_0000; // 2 MiB aligned
  const { m, pt, end } = vmProg(1, true, (a) => {
    a.li(20, VA + 0x1234n).lw(2, 20, 0);
  });
  pt.map(VA, PA, PTE_R | PTE_A, 1);
  m.ram.writeU32(PA + 0x1234, 0x600d);
  runTo(m, end);
  assert.equal(m.hart.getX(2), 0x600dn);
});

test("page faults: unmapped, read-only store, misaligned superpage, non-canonical; stval = address", () => {
  const VA = 0x4000_0000n;
  const cases: [string, (pt: PageTables) => void, (a: Asm) => void, bigint, bigint][] = [
    ["unmapped load", () => {}, (a) => a.li(20, VA).ld(2, 20, 0), 13n, VA],
    ["store to read-only", (pt) => pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A), (a) => a.li(20, VA).sd(2, 20, 8), 15n, VA + 8n],
    ["misaligned superpage", (pt) => pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A, 1), (a) => a.li(20, VA).ld(2, 20, 0), 13n, VA],
    ["non-canonical", () => {}, (a) => a.li(20, 0x0000_0040_0000_0000n).ld(2, 20, 0), 13n, 0x0000_0040_0000_0000n],
    ["fetch from non-executable", (pt) => pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A), (a) => a.li(20, VA).jalr(0, 20, 0), 12n, VA],
    ["misaligned load crossing into an unmapped page", (pt) => pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A),
      (a) => a.li(20, VA + 0xffcn).ld(2, 20, 0), 13n, VA + 0x1000n],
  ];
  for (const [name, map, body, cause, tval] of cases) {
    const { m, pt } = vmProg(1, false, body);
    map(pt);
    runTo(m, MTRAP);
    assert.equal(csr(m, K.CSR_MCAUSE), cause, name);
    assert.equal(csr(m, K.CSR_MTVAL), tval, name);
  }
});

test("U/SUM/MXR rules", () => {
  const VA = 0x4000_0000n, PA = RAM_BASE + 0x30_0000;
  // S-mode load from a U page: fault without SUM, allowed with SUM.
  let r = vmProg(1, false, (a) => a.li(20, VA).ld(2, 20, 0));
  r.pt.map(VA, PA, PTE_R | PTE_U | PTE_A);
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 13n, "S load from U page without SUM");
  r = vmProg(1, false, (a) => a.li(20, VA).ld(2, 20, 0), K.MSTATUS_SUM);
  r.pt.map(VA, PA, PTE_R | PTE_U | PTE_A);
  runTo(r.m, r.end);
  // S-mode fetch from a U page faults even with SUM.
  r = vmProg(1, false, (a) => a.li(20, VA).jalr(0, 20, 0), K.MSTATUS_SUM);
  r.pt.map(VA, PA, PTE_X | PTE_U | PTE_A);
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 12n, "S fetch from U page");
  // U-mode access to a supervisor page.
  r = vmProg(0, false, (a) => a.li(20, VA).ld(2, 20, 0));
  r.pt.map(VA, PA, PTE_R | PTE_A);
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 13n, "U load from S page");
  // Execute-only page: readable only with MXR.
  r = vmProg(1, false, (a) => a.li(20, VA).ld(2, 20, 0));
  r.pt.map(VA, PA, PTE_X | PTE_A);
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 13n, "load from X-only page without MXR");
  r = vmProg(1, false, (a) => a.li(20, VA).ld(2, 20, 0), K.MSTATUS_MXR);
  r.pt.map(VA, PA, PTE_X | PTE_A);
  runTo(r.m, r.end);
});

test("clearing SUM drops S-mode entries of user pages at every TLB index (loads and stores fault again)", () => {
  for (const page of [3n, 300n, 1500n, 2047n]) { // the TLB index is the page number's low 11 bits
    const VA = 0x4000_0000n + page * 4096n, PA = RAM_BASE + 0x30_0000;
    for (const [kind, cause] of [["load", 13n], ["store", 15n]] as const) {
      const r = vmProg(1, false, (a) => {
        a.li(20, VA).ld(2, 20, 0).sd(2, 20, 8); // read and write entries, under SUM
        a.li(21, K.MSTATUS_SUM).csrrc(0, K.CSR_SSTATUS, 21);
        if (kind === "load") a.ld(3, 20, 16); else a.sd(3, 20, 16);
      }, K.MSTATUS_SUM);
      r.pt.map(VA, PA, PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
      runTo(r.m, MTRAP);
      assert.equal(csr(r.m, K.CSR_MCAUSE), cause, `${kind} at page ${page} after clearing SUM`);
      assert.equal(csr(r.m, K.CSR_MTVAL), VA + 16n);
    }
  }
});

test("a PTE outside RAM is an access fault; MPRV makes M-mode loads translate", () => {
  const VA = 0x4000_0000n;
  const r = vmProg(1, false, (a) => a.li(20, VA).ld(2, 20, 0));
  // Point the level-1 table at a non-RAM address.
  r.m.ram.writeU32(ROOT + 1 * 8, ((0x1000_0000 / 4096) << 10) | 1);
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 5n);

  const m = makeMachine(8 << 20);
  const pt = new PageTables(m, ROOT, 3);
  pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A);
  m.ram.writeU32(RAM_BASE + 0x30_0000, 0xabcd);
  const a = new Asm();
  a.li(1, (8n << 60n) | BigInt(ROOT / 4096)).csrrw(0, K.CSR_SATP, 1);
  a.li(1, K.MSTATUS_MPRV | (1 << K.MSTATUS_MPP_SHIFT)).csrrs(0, K.CSR_MSTATUS, 1);
  a.li(20, VA).lw(2, 20, 0);
  const end = a.here;
  load(m, a);
  runTo(m, end);
  assert.equal(m.hart.getX(2), 0xabcdn, "M-mode code fetch stays physical, data translates");
});

/**
 * Maps VA (x20; x21 = the next page) to a page holding 1, runs `first` (which loads x2 through it),
 * remaps VA behind the hart's back to a page holding 2, then runs `then`: returns the machine.
 */
function remapBetween(first: (a: Asm) => void, then: (a: Asm) => void): TestMachine {
  const VA = 0x4000_0000n;
  const PA1 = RAM_BASE + 0x30_0000, PA2 = RAM_BASE + 0x31_0000;
  let mid = 0;
  const { m, pt, end } = vmProg(1, false, (a) => {
    a.li(20, VA).li(21, VA + 0x1000n);
    first(a);
    mid = a.here;
    then(a);
  });
  pt.map(VA, PA1, PTE_R | PTE_A);
  m.ram.writeU32(PA1, 1);
  m.ram.writeU32(PA2, 2);
  runTo(m, mid);
  pt.map(VA, PA2, PTE_R | PTE_A);
  runTo(m, end);
  assert.equal(m.hart.getX(2), 1n);
  return m;
}

test("sfence.vma drops stale translations", () => {
  const m = remapBetween((a) => a.lw(2, 20, 0), (a) => a.lw(4, 20, 0).sfenceVma().lw(3, 20, 0));
  assert.equal(m.hart.getX(4), 1n, "cached translation used until sfence.vma");
  assert.equal(m.hart.getX(3), 2n);
});

test("sfence.vma with an address drops that page's translation and keeps others", () => {
  const m = remapBetween((a) => a.lw(2, 20, 0), (a) => a.sfenceVma(21).lw(4, 20, 0).sfenceVma(20).lw(3, 20, 0));
  assert.equal(m.hart.getX(4), 1n, "another page's fence left this translation cached");
  assert.equal(m.hart.getX(3), 2n, "this page's fence dropped it");
});

test("F/D arithmetic goes to the FPU: fadd.d, fcvt to x, fcsr flags; illegal while FS = Off", () => {
  const FADD_D = encR(0x53, 3, 7, 1, 2, 0x01); // fadd.d f3, f1, f2, dyn
  const FCVT_L_D = encR(0x53, 5, 1, 3, 2, 0x61); // fcvt.l.d x5, f3, rtz
  const FDIV_D = encR(0x53, 4, 7, 1, 6, 0x0d); // fdiv.d f4, f1, f6 (f6 = 0: divide by zero)
  const off = prog((a) => { a.word(FADD_D); });
  runTo(off.m, MTRAP);
  assert.equal(csr(off.m, K.CSR_MCAUSE), 2n);
  assert.equal(csr(off.m, K.CSR_MTVAL), BigInt(FADD_D >>> 0));
  const { m, end } = prog((a) => {
    a.li(1, 1 << K.MSTATUS_FS_SHIFT).csrrs(0, K.CSR_MSTATUS, 1);
    a.li(20, DATA).li(2, 0x3ff8000000000000n).sd(2, 20, 0).li(2, 0x4004000000000000n).sd(2, 20, 8); // 1.5, 2.5
    a.fld(1, 20, 0).fld(2, 20, 8).word(FADD_D).word(FCVT_L_D).fsd(3, 20, 16);
    a.word(FDIV_D).csrrs(6, K.CSR_FFLAGS, 0).csrrs(7, K.CSR_MSTATUS, 0);
  });
  runTo(m, end);
  assert.equal(readU64(m, DATA + 16), 0x4010000000000000n, "1.5 + 2.5 = 4.0");
  assert.equal(m.hart.getX(5), 4n);
  assert.equal(m.hart.getX(6) & 0x08n, 0x08n, "DZ flag accrued in fflags");
  assert.equal(m.hart.getX(7) & BigInt(K.MSTATUS_FS), BigInt(K.MSTATUS_FS), "FS = Dirty");
});

test("code can run from a bus device (boot ROM); an exception in vectored mode goes to the base", () => {
  const m = makeMachine();
  const rom = new Asm(0x1000);
  rom.li(5, 0x1234).li(6, RAM_BASE).jalr(0, 6, 0);
  const bytes = rom.bytesOut();
  m.bus.map(0x1000, 0x1000, {
    name: "rom",
    read: (off, size) => { let v = 0; for (let i = size - 1; i >= 0; i--) v = (v << 8) | (bytes[off + i] ?? 0); return v >>> 0; },
    write: () => {},
  });
  const a = new Asm();
  a.li(31, MTRAP + 1).csrrw(0, K.CSR_MTVEC, 31).ecall();
  load(m, a);
  m.hart.setPc(0x1000);
  runTo(m, MTRAP);
  assert.equal(m.hart.getX(5), 0x1234n);
  assert.equal(csr(m, K.CSR_MCAUSE), 11n);
});

test("a 32-bit instruction whose second half is on an unmapped page faults with tval = that page", () => {
  const VA = 0x4000_0000n;
  const { m, pt } = vmProg(1, false, (a) => { a.li(20, VA + 0xffen).jalr(0, 20, 0); });
  pt.map(VA, RAM_BASE + 0x30_0000, PTE_X | PTE_R | PTE_A);
  m.ram.writeU32(RAM_BASE + 0x30_0ffe, 0x00000013); // low half of a nop at the page end
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 12n);
  assert.equal(csr(m, K.CSR_MTVAL), VA + 0x1000n);
  assert.equal(csr(m, K.CSR_MEPC), VA + 0xffen);
});

test("AMOs and SC fault as stores (cause 15) on read-only pages; LR faults as a load (cause 13)", () => {
  const VA = 0x4000_0000n;
  for (const [f5, cause] of [[0x00, 15n], [0x03, 15n], [0x02, 13n]] as const) {
    const { m, pt } = vmProg(1, false, (a) => { a.li(20, VA).amo(f5, 8, 1, 20, f5 === 0x02 ? 0 : 2); });
    if (f5 !== 0x02) pt.map(VA, RAM_BASE + 0x30_0000, PTE_R | PTE_A);
    runTo(m, MTRAP);
    assert.equal(csr(m, K.CSR_MCAUSE), cause, `amo funct5 0x${f5.toString(16)}`);
    assert.equal(csr(m, K.CSR_MTVAL), VA);
  }
});

test("fcsr, frm and fflags share one register and need FS != Off", () => {
  const off = prog((a) => { a.csrrs(1, K.CSR_FFLAGS, 0); });
  runTo(off.m, MTRAP);
  assert.equal(csr(off.m, K.CSR_MCAUSE), 2n);
  const { m, end } = prog((a) => {
    a.li(1, 1 << K.MSTATUS_FS_SHIFT).csrrs(0, K.CSR_MSTATUS, 1);
    a.li(2, 0xff).csrrw(0, K.CSR_FCSR, 2).csrrs(3, K.CSR_FRM, 0).csrrs(4, K.CSR_FFLAGS, 0);
    a.csrrwi(0, K.CSR_FRM, 1).csrrci(0, K.CSR_FFLAGS, 1).csrrs(5, K.CSR_FCSR, 0);
  });
  runTo(m, end);
  assert.equal(m.hart.getX(3), 7n);
  assert.equal(m.hart.getX(4), 0x1fn);
  assert.equal(m.hart.getX(5), 0x3en);
});
