// Privileged architecture: CSR access rules, traps and delegation, xRET, interrupts, WFI, SBI hook.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "./testing/asm.js";
import { makeMachine, load, runTo, RAM_BASE, completeMmioOnBus } from "./testing/machine.js";
import type { TestMachine } from "./testing/machine.js";
import * as K from "./constants.js";
import { EXIT_MMIO, EXIT_SBI } from "./exit.js";

const MTRAP = RAM_BASE + 0x8000;
const STRAP = RAM_BASE + 0x9000;
const INT = 1n << 63n;
const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);

/** Machine whose program starts in M-mode with mtvec = MTRAP and stvec = STRAP. */
function setup(body: (a: Asm) => void): { m: TestMachine; a: Asm } {
  const m = makeMachine();
  const a = new Asm();
  a.li(31, MTRAP).csrrw(0, K.CSR_MTVEC, 31).li(31, STRAP).csrrw(0, K.CSR_STVEC, 31);
  body(a);
  load(m, a);
  return { m, a };
}

/** Emit code that drops to `mode` at label `target` via mret. */
function enterMode(a: Asm, mode: number, target: string): void {
  a.li(30, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, 30);
  if (mode !== 0) a.li(30, mode << K.MSTATUS_MPP_SHIFT).csrrs(0, K.CSR_MSTATUS, 30);
  a.auipc(30, 0).addi(30, 30, 16).csrrw(0, K.CSR_MEPC, 30).mret(); // mepc = the instruction after mret
  a.jal(0, target);
}

const csr = (m: TestMachine, n: number): bigint => m.hart.readCsr(n) ?? -999n;

test("machine information CSRs and 64-bit read/modify/write", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrs(1, K.CSR_MISA, 0).csrrs(2, K.CSR_MHARTID, 0).csrrs(3, K.CSR_MVENDORID, 0);
    a.li(4, 0x123456789abcdef0n).csrrw(0, K.CSR_MSCRATCH, 4).li(5, 0xf0).csrrc(6, K.CSR_MSCRATCH, 5);
    a.csrrsi(7, K.CSR_MSCRATCH, 1).csrrs(8, K.CSR_MSCRATCH, 0).csrrwi(9, K.CSR_SSCRATCH, 31).csrrs(10, K.CSR_SSCRATCH, 0);
    a.csrrs(11, K.CSR_MSTATUS, 0);
    end = a.here;
  });
  runTo(m, end);
  const h = m.hart;
  assert.equal(h.getX(1), s64((2n << 62n) | 0x14112dn), "misa = RV64 IMAFDCSU");
  assert.equal(h.getX(2), 0n);
  assert.equal(h.getX(3), 0n);
  assert.equal(h.getX(6), 0x123456789abcdef0n, "csrrc returns the old value");
  assert.equal(h.getX(7), 0x123456789abcde00n);
  assert.equal(h.getX(8), 0x123456789abcde01n);
  assert.equal(h.getX(10), 31n);
  assert.equal((h.getX(11) >> 32n) & 0xfn, 0xan, "mstatus.UXL = SXL = 2");
});

test("mstatus.SD follows FS; sstatus hides M-only fields", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.li(1, K.MSTATUS_FS | K.MSTATUS_MPP | K.MSTATUS_TVM).csrrs(0, K.CSR_MSTATUS, 1);
    a.csrrs(2, K.CSR_MSTATUS, 0).csrrs(3, K.CSR_SSTATUS, 0);
    end = a.here;
  });
  runTo(m, end);
  const ms = m.hart.getX(2), ss = m.hart.getX(3);
  assert.ok(ms < 0n, "SD set when FS = dirty");
  assert.equal(ms & BigInt(K.MSTATUS_MPP | K.MSTATUS_TVM), BigInt(K.MSTATUS_MPP | K.MSTATUS_TVM));
  assert.equal(ss & BigInt(K.MSTATUS_MPP | K.MSTATUS_TVM), 0n);
  assert.equal(ss & BigInt(K.MSTATUS_FS), BigInt(K.MSTATUS_FS));
  assert.equal((ss >> 32n) & 0xfn, 2n, "sstatus shows UXL only");
});

test("writing a read-only or unknown CSR is an illegal instruction with mtval = the instruction", () => {
  let bad = 0, bad2 = 0;
  const { m } = setup((a) => {
    bad = a.here;
    a.csrrw(0, K.CSR_MHARTID, 1);
  });
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 2n);
  assert.equal(csr(m, K.CSR_MEPC), BigInt(bad));
  assert.equal(csr(m, K.CSR_MTVAL), BigInt(m.ram.readU32(bad)));
  const r = setup((a) => {
    bad2 = a.here;
    a.csrrs(1, 0x14e, 0); // no CSR there
  });
  runTo(r.m, MTRAP);
  assert.equal(csr(r.m, K.CSR_MCAUSE), 2n);
  assert.equal(csr(r.m, K.CSR_MEPC), BigInt(bad2));
});

test("satp accepts Bare/Sv39/Sv48 and ignores Sv57 (the Linux probe)", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.li(1, (9n << 60n) | (0xffffn << 44n) | 0x80123n).csrrw(0, K.CSR_SATP, 1).csrrs(2, K.CSR_SATP, 0);
    a.li(1, (10n << 60n) | 0x80000n).csrrw(0, K.CSR_SATP, 1).csrrs(3, K.CSR_SATP, 0);
    a.li(1, (8n << 60n) | 0x80001n).csrrw(0, K.CSR_SATP, 1).csrrs(4, K.CSR_SATP, 0);
    a.csrrw(0, K.CSR_SATP, 0).csrrs(5, K.CSR_SATP, 0);
    end = a.here;
  });
  runTo(m, end);
  assert.equal(m.hart.getX(2), s64((9n << 60n) | (0xffffn << 44n) | 0x80123n), "Sv48 accepted, all 16 ASID bits kept (Linux probes them)");
  assert.equal(m.hart.getX(3), m.hart.getX(2), "Sv57 write left satp unchanged");
  assert.equal(m.hart.getX(4), s64((8n << 60n) | 0x80001n));
  assert.equal(m.hart.getX(5), 0n);
});

test("U-mode CSR access traps; delegation sends it to S with SPP/SEPC/SCAUSE/STVAL", () => {
  let bad = 0;
  const { m } = setup((a) => {
    a.li(1, 1 << 2).csrrw(0, K.CSR_MEDELEG, 1);
    enterMode(a, 0, "user");
    a.label("user");
    bad = a.here;
    a.csrrs(5, K.CSR_SSTATUS, 0);
  });
  runTo(m, STRAP);
  assert.equal(m.hart.privilege, 1);
  assert.equal(csr(m, K.CSR_SCAUSE), 2n);
  assert.equal(csr(m, K.CSR_SEPC), BigInt(bad));
  assert.equal(csr(m, K.CSR_STVAL), BigInt(m.ram.readU32(bad)));
  assert.equal(csr(m, K.CSR_SSTATUS)! & BigInt(K.MSTATUS_SPP), 0n, "SPP = U");
});

test("without delegation a U-mode trap goes to M with MPP = U", () => {
  const { m } = setup((a) => {
    enterMode(a, 0, "user");
    a.label("user");
    a.csrrs(5, K.CSR_MSTATUS, 0);
  });
  runTo(m, MTRAP);
  assert.equal(m.hart.privilege, 3);
  assert.equal(csr(m, K.CSR_MCAUSE), 2n);
  assert.equal(csr(m, K.CSR_MSTATUS)! & BigInt(K.MSTATUS_MPP), 0n);
});

test("ecall causes per privilege; medeleg cannot delegate ecall-from-M", () => {
  for (const [mode, cause] of [[0, 8n], [1, 9n], [3, 11n]] as const) {
    const { m } = setup((a) => {
      a.li(1, -1).csrrw(0, K.CSR_MEDELEG, 1).csrrw(0, K.CSR_MEDELEG, 0); // no delegation
      if (mode !== 3) enterMode(a, mode, "go");
      a.label("go");
      a.ecall();
    });
    runTo(m, MTRAP);
    assert.equal(csr(m, K.CSR_MCAUSE), cause, `ecall from mode ${mode}`);
  }
  const h = makeMachine().hart;
  h.writeCsr(K.CSR_MEDELEG, -1n);
  assert.equal(h.readCsr(K.CSR_MEDELEG)! & (1n << 11n), 0n);
  assert.equal(h.readCsr(K.CSR_MEDELEG)! & 0xffffn, 0xb3ffn);
});

test("with sbiExits, an S-mode ecall is an SBI exit that retires once the VMM completes it", () => {
  const m = makeMachine();
  const a = new Asm();
  a.li(17, 0x54494d45).li(10, 7).ecall();
  const after = a.here;
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.sbiExits = true;
  const retired = m.hart.run(100);
  assert.equal(m.hart.exit.reason, EXIT_SBI);
  assert.equal(retired, (after - 4 - RAM_BASE) / 4, "the instructions before the ecall retired; it waits for the VMM");
  assert.equal(m.hart.getPc(), after - 4, "pc stays at the ecall");
  assert.throws(() => m.hart.run(1), /before its SBI exit was completed/);
  m.hart.setX(10, m.hart.getX(10) * 6n); // the VMM's answer in a0
  const before = m.hart.readCsr(K.CSR_MINSTRET)!;
  m.hart.completeSbi();
  assert.equal(m.hart.getPc(), after);
  assert.equal(m.hart.readCsr(K.CSR_MINSTRET)! - before, 1n, "the ecall retired");
  assert.equal(m.hart.getX(10), 42n);
  assert.equal(m.hart.privilege, 1);
});

test("without sbiExits an S-mode ecall traps to M-mode as the privileged spec says", () => {
  const { m } = setup((a) => {
    enterMode(a, 1, "s");
    a.label("s").ecall();
  });
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 9n);
});

test("an access to a device outside the vCPU is an MMIO exit; the instruction re-executes with the VMM's result", () => {
  const m = makeMachine(4 << 20, { exits: true });
  const seen: string[] = [];
  let reg = 0x11;
  m.bus.map(0x1000_0000, 0x100, {
    name: "probe",
    read: (off, size) => (seen.push(`r${off}/${size}`), off === 8 ? reg : 0xabcd),
    write: (off, size, v) => (seen.push(`w${off}/${size}=${v}`), (reg = v)),
  });
  const a = new Asm();
  a.li(31, MTRAP).csrrw(0, K.CSR_MTVEC, 31);
  a.li(5, 0x1000_0000).li(6, -2).sb(6, 5, 8).lbu(7, 5, 8).load(0, 8, 5, 8).lw(9, 5, 0x10);
  const faulting = a.here;
  a.lw(10, 5, 0x200);
  load(m, a);
  m.hart.run(1000);
  assert.equal(m.hart.exit.reason, EXIT_MMIO);
  assert.deepEqual([m.hart.exit.mmioAddr, m.hart.exit.mmioSize, m.hart.exit.mmioWrite, m.hart.exit.mmioValueLo], [0x1000_0008, 1, true, 0xfe]);
  assert.deepEqual(seen, [], "nothing ran on the hart's stack");
  completeMmioOnBus(m);
  runTo(m, MTRAP);
  assert.deepEqual(seen, ["w8/1=254", "r8/1", "r8/1", "r16/4"], "each access reached the device exactly once");
  assert.equal(m.hart.getX(7), 0xfen, "lbu zero-extends");
  assert.equal(m.hart.getX(8), -2n, "lb sign-extends");
  assert.equal(m.hart.getX(9), 0xabcdn);
  assert.equal(m.hart.readCsr(K.CSR_MEPC), BigInt(faulting), "the load beyond the device faulted");
  assert.equal(m.hart.readCsr(K.CSR_MCAUSE), 5n, "load access fault");
  assert.equal(m.hart.readCsr(K.CSR_MTVAL), 0x1000_0200n);
});

test("a completed MMIO exit has retired its instruction: a state saved before the next run() holds the value and the next pc, and a restore reads the device no more", () => {
  const m = makeMachine(4 << 20, { exits: true });
  let reads = 0;
  m.bus.map(0x1000_0000, 0x100, { name: "probe", read: () => (reads++, 0x5a), write: () => {} });
  const a = new Asm();
  a.li(5, 0x1000_0000);
  const at = a.here;
  a.lbu(7, 5, 0).addi(8, 7, 1);
  load(m, a);
  m.hart.run(1000);
  assert.equal(m.hart.exit.reason, EXIT_MMIO);
  assert.equal(m.hart.getPc(), at, "the exit leaves the load unretired");
  completeMmioOnBus(m);
  // A pause (snapshot, migration) may take the state here, before the hart runs again.
  const saved = m.hart.save();
  assert.equal(saved.pc, at + 4, "the load retired with the exit's completion");
  assert.equal(m.hart.getX(7), 0x5an);
  const other = makeMachine(4 << 20, { exits: true });
  other.bus.map(0x1000_0000, 0x100, { name: "probe", read: () => (reads++, 0x11), write: () => {} });
  load(other, a);
  other.hart.restore(saved);
  other.hart.run(1);
  assert.equal(other.hart.getX(8), 0x5bn, "the restored hart goes on after the load");
  assert.equal(reads, 1, "the device was read once");
});

test("counters: time reads the clock; S/U access needs mcounteren/scounteren", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrs(1, K.CSR_TIME, 0).li(2, 2).csrrw(0, K.CSR_MCOUNTEREN, 2);
    enterMode(a, 1, "s");
    a.label("s");
    a.csrrs(3, K.CSR_TIME, 0);
    end = a.here;
    a.csrrs(4, K.CSR_CYCLE, 0); // mcounteren.CY = 0: illegal
  });
  m.clock.ticks = 12345;
  runTo(m, end);
  assert.equal(m.hart.getX(1), 12345n);
  assert.equal(m.hart.getX(3), 12345n);
  runTo(m, MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), 2n);
});

test("instret counts retired instructions exactly", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrs(1, K.CSR_INSTRET, 0).addi(0, 0, 0).addi(0, 0, 0).csrrs(2, K.CSR_INSTRET, 0);
    end = a.here;
  });
  runTo(m, end);
  assert.equal(m.hart.getX(2) - m.hart.getX(1), 3n);
});

test("a CSR write to minstret or mcycle replaces that instruction's own increment", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrwi(0, K.CSR_MINSTRET, 0).csrrs(1, K.CSR_MINSTRET, 0); // reads 0: the write's own retirement is not counted
    a.li(5, 1000).csrrw(0, K.CSR_MCYCLE, 5).addi(0, 0, 0).csrrs(2, K.CSR_MCYCLE, 0); // 1000 + 1 instruction
    a.csrrs(3, K.CSR_MINSTRET, 0);
    end = a.here;
  });
  runTo(m, end);
  assert.equal(m.hart.getX(1), 0n);
  assert.equal(m.hart.getX(2), 1001n);
  assert.equal(m.hart.getX(3), 5n, "minstret and mcycle are separate counters");
});

test("mcountinhibit stops mcycle and minstret separately", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrwi(0, K.CSR_MINSTRET, 0).csrrwi(0, K.CSR_MCOUNTINHIBIT, 4); // IR: minstret stops (counting this write)
    a.addi(0, 0, 0).addi(0, 0, 0).csrrs(1, K.CSR_MINSTRET, 0);
    a.csrrwi(0, K.CSR_MCOUNTINHIBIT, 0).addi(0, 0, 0).csrrs(2, K.CSR_MINSTRET, 0);
    a.csrrwi(0, K.CSR_MCYCLE, 0).csrrwi(0, K.CSR_MCOUNTINHIBIT, 1).addi(0, 0, 0).csrrs(3, K.CSR_MCYCLE, 0).csrrs(4, K.CSR_MCOUNTINHIBIT, 0);
    end = a.here;
  });
  runTo(m, end);
  assert.equal(m.hart.getX(1), 1n);
  assert.equal(m.hart.getX(2), 2n, "resumes from the frozen value (1) after the write that resumed it; the nop makes 2");
  assert.equal(m.hart.getX(3), 1n);
  assert.equal(m.hart.getX(4), 1n);
});

test("tselect exists and never reads back the index written: no debug triggers", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.csrrwi(0, 0x7a0, 0).csrrs(1, 0x7a0, 0).csrrs(2, 0x7a1, 0).csrrs(3, 0x7a4, 0);
    end = a.here;
  });
  runTo(m, end);
  assert.notEqual(m.hart.getX(1), 0n);
  assert.equal(m.hart.getX(2), 0n, "tdata1 type 0: no trigger");
  assert.equal(m.hart.getX(3), 1n);
});

test("mret restores MIE from MPIE and privilege from MPP; sret likewise", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.li(1, K.MSTATUS_MPIE).csrrs(0, K.CSR_MSTATUS, 1);
    enterMode(a, 1, "s");
    a.label("s");
    a.li(1, K.MSTATUS_SPIE | K.MSTATUS_SPP).csrrs(0, K.CSR_SSTATUS, 1);
    a.auipc(2, 0).addi(2, 2, 16).csrrw(0, K.CSR_SEPC, 2).sret();
    end = a.here;
  });
  runTo(m, end);
  assert.equal(m.hart.privilege, 1);
  const st = csr(m, K.CSR_MSTATUS);
  assert.equal(st & BigInt(K.MSTATUS_MIE), BigInt(K.MSTATUS_MIE), "MIE <- MPIE");
  assert.equal(st & BigInt(K.MSTATUS_SIE), BigInt(K.MSTATUS_SIE), "SIE <- SPIE");
  assert.equal(st & BigInt(K.MSTATUS_MPP), 0n, "MPP <- U");
});

test("TSR, TW and TVM make sret, wfi, sfence.vma and satp illegal in S-mode", () => {
  const cases: [number, (a: Asm) => void][] = [
    [K.MSTATUS_TSR, (a) => a.sret()],
    [K.MSTATUS_TW, (a) => a.wfi()],
    [K.MSTATUS_TVM, (a) => a.sfenceVma()],
    [K.MSTATUS_TVM, (a) => a.csrrs(1, K.CSR_SATP, 0)],
  ];
  for (const [bit, emit] of cases) {
    let bad = 0;
    const { m } = setup((a) => {
      a.li(1, bit).csrrs(0, K.CSR_MSTATUS, 1);
      enterMode(a, 1, "s");
      a.label("s");
      bad = a.here;
      emit(a);
    });
    runTo(m, MTRAP);
    assert.equal(csr(m, K.CSR_MCAUSE), 2n, `bit 0x${bit.toString(16)}`);
    assert.equal(csr(m, K.CSR_MEPC), BigInt(bad));
  }
});

test("mret from S-mode and sret from U-mode are illegal", () => {
  for (const [mode, emit] of [[1, (a: Asm) => a.mret()], [0, (a: Asm) => a.sret()]] as const) {
    const { m } = setup((a) => {
      enterMode(a, mode, "go");
      a.label("go");
      emit(a);
    });
    runTo(m, MTRAP);
    assert.equal(csr(m, K.CSR_MCAUSE), 2n);
  }
});

test("machine timer interrupt: vectored mtvec, mcause interrupt bit, MPIE", () => {
  let loop = 0;
  const m = makeMachine();
  const a = new Asm();
  a.li(31, MTRAP + 1).csrrw(0, K.CSR_MTVEC, 31);
  a.li(1, K.MIP_MTIP).csrrw(0, K.CSR_MIE, 1).csrrsi(0, K.CSR_MSTATUS, K.MSTATUS_MIE);
  loop = a.here;
  a.jal(0, 0);
  load(m, a);
  m.hart.run(50);
  assert.equal(m.hart.getPc(), loop);
  m.hart.setInterruptPending(K.IRQ_M_TIMER, true);
  m.hart.run(1);
  assert.equal(m.hart.getPc(), MTRAP + 4 * 7);
  assert.equal(csr(m, K.CSR_MCAUSE), s64(INT | 7n));
  assert.equal(csr(m, K.CSR_MEPC), BigInt(loop));
  const st = csr(m, K.CSR_MSTATUS);
  assert.equal(st & BigInt(K.MSTATUS_MIE | K.MSTATUS_MPIE), BigInt(K.MSTATUS_MPIE));
});

test("interrupt priority: MEI before MTI before SEI; disabled sources stay pending", () => {
  const m = makeMachine();
  const a = new Asm();
  a.jal(0, 0);
  load(m, a);
  m.hart.writeCsr(K.CSR_MTVEC, BigInt(MTRAP));
  m.hart.writeCsr(K.CSR_MIE, BigInt(K.MIP_MEIP | K.MIP_MTIP | K.MIP_SEIP));
  m.hart.setInterruptPending(K.IRQ_M_TIMER, true);
  m.hart.setInterruptPending(K.IRQ_S_EXT, true);
  m.hart.setInterruptPending(K.IRQ_M_EXT, true);
  m.hart.run(5);
  assert.equal(m.hart.getPc(), RAM_BASE, "MIE = 0 in M-mode: nothing taken");
  m.hart.writeCsr(K.CSR_MSTATUS, BigInt(K.MSTATUS_MIE));
  m.hart.run(1);
  assert.equal(csr(m, K.CSR_MCAUSE), s64(INT | 11n));
  assert.equal(csr(m, K.CSR_MIP)! & BigInt(K.MIP_MTIP | K.MIP_SEIP), BigInt(K.MIP_MTIP | K.MIP_SEIP));
});

test("supervisor timer via stimecmp is delegated to S and respects sstatus.SIE", () => {
  const m = makeMachine();
  const a = new Asm();
  a.jal(0, 0);
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.writeCsr(K.CSR_STVEC, BigInt(STRAP));
  m.hart.writeCsr(K.CSR_SIE, BigInt(K.MIP_STIP));
  m.hart.stimecmp = 100;
  m.clock.ticks = 50;
  m.hart.writeCsr(K.CSR_SSTATUS, BigInt(K.MSTATUS_SIE));
  m.hart.run(10);
  assert.equal(m.hart.getPc(), RAM_BASE);
  m.clock.ticks = 150;
  m.hart.writeCsr(K.CSR_SSTATUS, 0n);
  m.hart.run(10);
  assert.equal(m.hart.getPc(), RAM_BASE, "SIE = 0: not taken");
  assert.notEqual(csr(m, K.CSR_SIP)! & BigInt(K.MIP_STIP), 0n, "but pending");
  m.hart.writeCsr(K.CSR_SSTATUS, BigInt(K.MSTATUS_SIE));
  m.hart.run(1);
  assert.equal(m.hart.getPc(), STRAP);
  assert.equal(m.hart.privilege, 1);
  assert.equal(csr(m, K.CSR_SCAUSE), s64(INT | 5n));
  m.hart.stimecmp = Infinity;
  assert.equal(csr(m, K.CSR_SIP)! & BigInt(K.MIP_STIP), 0n, "new stimecmp clears STIP");
});

test("M-level interrupts are taken in S-mode even with MIE = 0", () => {
  const m = makeMachine();
  const a = new Asm();
  a.jal(0, 0);
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.writeCsr(K.CSR_MTVEC, BigInt(MTRAP));
  m.hart.writeCsr(K.CSR_MIE, BigInt(K.MIP_MSIP));
  m.hart.setInterruptPending(K.IRQ_M_SOFT, true);
  m.hart.run(1);
  assert.equal(m.hart.getPc(), MTRAP);
  assert.equal(m.hart.privilege, 3);
  assert.equal(csr(m, K.CSR_MCAUSE), s64(INT | 3n));
});

test("WFI parks the hart until an enabled interrupt is pending, then resumes after it", () => {
  let after = 0;
  const m = makeMachine();
  const a = new Asm();
  a.wfi();
  after = a.here;
  a.addi(1, 1, 1).jal(0, 0);
  load(m, a);
  m.hart.writeCsr(K.CSR_MIE, BigInt(K.MIP_MTIP));
  const n = m.hart.run(1000);
  assert.equal(n, 1);
  assert.equal(m.hart.waiting, true);
  assert.equal(m.hart.getPc(), after);
  assert.equal(m.hart.run(1000), 0, "still parked");
  m.hart.setInterruptPending(K.IRQ_M_TIMER, true);
  assert.equal(m.hart.waiting, false);
  m.hart.run(1);
  assert.equal(m.hart.getX(1), 1n, "MIE = 0: resumes after wfi without trapping");
});

test("a sleeping S-mode hart wakes when time passes stimecmp", () => {
  const m = makeMachine();
  const a = new Asm();
  a.wfi().jal(0, 0);
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.writeCsr(K.CSR_STVEC, BigInt(STRAP));
  m.hart.writeCsr(K.CSR_SIE, BigInt(K.MIP_STIP));
  m.hart.writeCsr(K.CSR_SSTATUS, BigInt(K.MSTATUS_SIE));
  m.hart.stimecmp = 1000;
  m.hart.run(100);
  assert.equal(m.hart.waiting, true);
  m.clock.ticks = 1000;
  m.hart.run(1);
  assert.equal(m.hart.waiting, false);
  assert.equal(csr(m, K.CSR_SCAUSE), s64(INT | 5n));
});

test("stopped harts do not run", () => {
  const m = makeMachine();
  m.hart.stopped = true;
  assert.equal(m.hart.run(100), 0);
  assert.equal(m.hart.getPc(), RAM_BASE);
});

test("mepc clears bit 0, mtvec mode 2 falls back to direct, mideleg only takes S interrupts", () => {
  const h = makeMachine().hart;
  h.writeCsr(K.CSR_MEPC, 0x80000003n);
  assert.equal(h.readCsr(K.CSR_MEPC), 0x80000002n);
  h.writeCsr(K.CSR_MTVEC, 0x80000002n);
  assert.equal(h.readCsr(K.CSR_MTVEC), 0x80000000n);
  h.writeCsr(K.CSR_MIDELEG, -1n);
  assert.equal(h.readCsr(K.CSR_MIDELEG), 0x222n);
});

test("enterSupervisorBoot sets a0/a1, S-mode, delegation and counter access", () => {
  const h = makeMachine().hart;
  h.enterSupervisorBoot(0x80200000, 0n, 0x82000000n);
  assert.equal(h.privilege, 1);
  assert.equal(h.getPc(), 0x80200000);
  assert.equal(h.getX(11), 0x82000000n);
  assert.equal(h.readCsr(K.CSR_MIDELEG), 0x222n);
  assert.notEqual(h.readCsr(K.CSR_MEDELEG)! & 4n, 0n, "illegal instruction delegated");
  assert.equal(h.readCsr(K.CSR_MSTATUS)! & BigInt(K.MSTATUS_FS), 0n, "FS off");
  assert.equal(h.readCsr(K.CSR_SCOUNTEREN), 7n, "user rdtime allowed, as OpenSBI leaves it");
});

test("save/restore round-trips the architectural state", () => {
  let end = 0;
  const { m } = setup((a) => {
    a.li(5, -12345).li(6, 0x1122334455667788n).csrrw(0, K.CSR_MSCRATCH, 6);
    end = a.here;
  });
  runTo(m, end);
  const saved = JSON.parse(JSON.stringify(m.hart.save()));
  const other = makeMachine().hart;
  other.restore(saved);
  assert.equal(other.getX(5), -12345n);
  assert.equal(other.getPc(), end);
  assert.equal(other.readCsr(K.CSR_MSCRATCH), 0x1122334455667788n);
  assert.equal(other.readCsr(K.CSR_MTVEC), BigInt(MTRAP));
  assert.throws(() => other.restore({ ...saved, x: [1, 2] }), /wrong length/);
});

test("an interrupt raised by an MMIO store is taken right after that store", () => {
  let after = 0;
  const m = makeMachine();
  const a = new Asm();
  a.li(31, MTRAP).csrrw(0, K.CSR_MTVEC, 31).li(1, K.MIP_MSIP).csrrw(0, K.CSR_MIE, 1).csrrsi(0, K.CSR_MSTATUS, K.MSTATUS_MIE);
  a.li(20, 0x0200_0000).li(2, 1).sw(2, 20, 0);
  after = a.here;
  for (let i = 0; i < 100; i++) a.addi(3, 3, 1);
  load(m, a);
  m.bus.map(0x0200_0000, 0x10000, {
    name: "msip",
    read: () => 0,
    write: (_off, _size, v) => m.hart.setInterruptPending(K.IRQ_M_SOFT, (v & 1) !== 0),
  });
  m.ram.writeU32(MTRAP, 0x0000006f); // handler: j .
  m.hart.run(1000); // one call: the store's side effect must end the slice
  assert.equal(m.hart.getPc(), MTRAP);
  assert.equal(csr(m, K.CSR_MCAUSE), s64(INT | 3n));
  assert.equal(csr(m, K.CSR_MEPC), BigInt(after));
  assert.equal(m.hart.getX(3), 0n, "no instruction ran between the store and the trap");
});

test("PMP and HPM CSRs read back the way OpenSBI probes them", () => {
  const h = makeMachine().hart;
  assert.equal(h.writeCsr(K.CSR_PMPADDR0 + 63, -1n), true);
  assert.equal(h.readCsr(K.CSR_PMPADDR0 + 63), 0x003f_ffff_ffff_ffffn, "54 address bits, granularity 4 bytes");
  h.writeCsr(K.CSR_PMPCFG0 + 2, 0x1f1f1f1f1f1f1f1fn);
  assert.equal(h.readCsr(K.CSR_PMPCFG0 + 2), 0x1f1f1f1f1f1f1f1fn);
  assert.equal(h.readCsr(K.CSR_PMPCFG0 + 1), null, "odd pmpcfg registers do not exist on RV64");
  h.writeCsr(0xb03, 5n);
  assert.equal(h.readCsr(0xb03), 0n, "mhpmcounter3 is read-only zero");
  assert.equal(h.readCsr(0x323), 0n);
});

test("vectored stvec: a delegated supervisor external interrupt lands at base + 4 * 9", () => {
  const m = makeMachine();
  const a = new Asm();
  a.jal(0, 0);
  load(m, a);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  m.hart.writeCsr(K.CSR_STVEC, BigInt(STRAP + 1));
  m.hart.writeCsr(K.CSR_SIE, BigInt(K.MIP_SEIP));
  m.hart.writeCsr(K.CSR_SSTATUS, BigInt(K.MSTATUS_SIE));
  m.hart.setInterruptPending(K.IRQ_S_EXT, true);
  m.hart.run(1);
  assert.equal(m.hart.getPc(), STRAP + 36);
  assert.equal(csr(m, K.CSR_SCAUSE), s64(INT | 9n));
  assert.equal(csr(m, K.CSR_SSTATUS)! & BigInt(K.MSTATUS_SPP | K.MSTATUS_SPIE | K.MSTATUS_SIE), BigInt(K.MSTATUS_SPP | K.MSTATUS_SPIE));
});

test("restore drops a pending exit and a waiting MMIO result: a saved hart is at an instruction boundary", () => {
  const m = makeMachine(4 << 20, { exits: true });
  m.bus.map(0x1000_0000, 0x100, { name: "probe", read: () => 7, write: () => {} });
  const a = new Asm();
  a.li(5, 0x1000_0000).lw(6, 5, 0);
  load(m, a);
  const saved = m.hart.save();
  m.hart.run(100);
  assert.equal(m.hart.exit.reason, EXIT_MMIO);
  m.hart.restore(saved);
  assert.doesNotThrow(() => m.hart.run(1), "no exit is pending after restore");
});
