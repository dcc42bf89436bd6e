// Sstc: the supervisor timer compare as a CSR (stimecmp), gated by menvcfg.STCE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "./testing/asm.js";
import { makeMachine, load, runTo, RAM_BASE } from "./testing/machine.js";
import type { TestMachine } from "./testing/machine.js";
import * as K from "./constants.js";

const STRAP = RAM_BASE + 0x9000;
const csr = (m: TestMachine, n: number): bigint => m.hart.readCsr(n) ?? -999n;
const stip = (m: TestMachine): bigint => csr(m, K.CSR_SIP) & BigInt(K.MIP_STIP);

/** An S-mode machine (as the VMM boots Linux: STCE on) running `body`; returns it and the address after the body. */
function supervisor(body: (a: Asm) => void): { m: TestMachine; end: number } {
  const m = makeMachine();
  const a = new Asm();
  body(a);
  const end = a.here;
  a.jal(0, 0);
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.writeCsr(K.CSR_STVEC, BigInt(STRAP));
  return { m, end };
}

test("Sstc: S-mode writes stimecmp and reads back what it wrote, all ones included", () => {
  const { m, end } = supervisor((a) => {
    a.li(1, 0x1234_5678_9abcn).csrrw(0, K.CSR_STIMECMP, 1).csrrs(2, K.CSR_STIMECMP, 0);
    a.li(3, -1).csrrw(0, K.CSR_STIMECMP, 3).csrrs(4, K.CSR_STIMECMP, 0);
  });
  runTo(m, end);
  assert.equal(m.hart.getX(2), 0x1234_5678_9abcn);
  assert.equal(m.hart.getX(4), -1n, "all ones");
  assert.equal(m.hart.stimecmp, Infinity, "all ones: the timer is off");
  assert.equal(BigInt.asUintN(64, csr(m, K.CSR_MENVCFG)) >> 63n, 1n, "menvcfg.STCE reads as set");
});

test("Sstc: writing stimecmp raises STIP once time has reached it and clears it when moved later", () => {
  const { m, end } = supervisor((a) => {
    a.li(1, 500).csrrw(0, K.CSR_STIMECMP, 1);
  });
  m.clock.ticks = 1000;
  runTo(m, end);
  assert.notEqual(stip(m), 0n, "time 1000 >= stimecmp 500: pending at once");
  const later = supervisor((a) => {
    a.li(1, 500).csrrw(0, K.CSR_STIMECMP, 1).li(1, 2000).csrrw(0, K.CSR_STIMECMP, 1);
  });
  later.m.clock.ticks = 1000;
  runTo(later.m, later.end);
  assert.equal(stip(later.m), 0n, "stimecmp moved to 2000: no longer pending");
  assert.equal(later.m.hart.stimecmp, 2000);
});

test("Sstc: with STCE on, M-mode cannot set STIP through mip; with STCE off, S-mode access to stimecmp is illegal", () => {
  const { m } = supervisor(() => {});
  m.hart.stimecmp = Infinity;
  m.hart.writeCsr(K.CSR_MIP, BigInt(K.MIP_STIP));
  assert.equal(csr(m, K.CSR_MIP) & BigInt(K.MIP_STIP), 0n, "STIP is stimecmp's alone");
  let bad = 0;
  const off = supervisor((a) => {
    bad = a.here;
    a.csrrs(1, K.CSR_STIMECMP, 0);
  });
  off.m.hart.menvcfg = 0;
  off.m.hart.run(1);
  assert.equal(off.m.hart.getPc(), STRAP);
  assert.equal(csr(off.m, K.CSR_SCAUSE), 2n, "illegal instruction");
  assert.equal(csr(off.m, K.CSR_SEPC), BigInt(bad));
  off.m.hart.writeCsr(K.CSR_MIP, BigInt(K.MIP_STIP));
  assert.notEqual(csr(off.m, K.CSR_MIP) & BigInt(K.MIP_STIP), 0n, "STCE off: M-mode software drives STIP, as before Sstc");
});
