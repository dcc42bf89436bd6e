// Generates the flattened device tree for the devices actually configured on the board.

import { VMGENID_ID_BYTES } from "../devices/vmgenid.js";
import { FdtBuilder } from "./fdt.js";
import {
  CLINT_BASE,
  CLINT_SIZE,
  PLIC_BASE,
  PLIC_SIZE,
  PLIC_SOURCES,
  RAM_BASE,
  RTC_BASE,
  RTC_IRQ,
  VMGENID_BASE,
  VMGENID_IRQ,
  RTC_SIZE,
  TEST_BASE,
  TEST_SIZE,
  TIMEBASE_HZ,
  UART_BASE,
  UART_IRQ,
  UART_SIZE,
  VIRTIO_BASE,
  VIRTIO_IRQ_BASE,
  VIRTIO_STRIDE,
} from "./layout.js";

/** The ISA we implement, advertised exactly (RV64GC = IMAFD + C, Zicsr, Zifencei, counters, Zbb bit manipulation, Sstc's stimecmp). */
export const ISA_STRING = "rv64imafdc_zicsr_zifencei_zicntr_zbb_sstc";
export const ISA_EXTENSIONS = ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zicntr", "zbb", "sstc"];

export interface DeviceTreeOptions {
  cpus: number;
  memoryBytes: number;
  bootargs: string;
  initrd: { start: number; end: number } | null;
  /** Slot numbers (0-based) of populated virtio-mmio slots, in the order the guest should probe them. */
  virtioSlots: number[];
  /** Random bytes for /chosen/rng-seed so the guest's RNG starts seeded. */
  rngSeed?: Uint8Array;
}

const hi = (v: number): number => Math.floor(v / 2 ** 32);
const lo = (v: number): number => v >>> 0;
const reg = (base: number, size: number): number[] => [hi(base), lo(base), hi(size), lo(size)];

export function buildDeviceTree(o: DeviceTreeOptions): Uint8Array {
  const fdt = new FdtBuilder();
  // phandles: 1 PLIC, 2 test device, 10+h each hart's interrupt controller, 100+h each cpu
  const PLIC = 1;
  const TEST = 2;
  const intc = (h: number): number => 10 + h;
  const cpu = (h: number): number => 100 + h;

  fdt.beginNode("");
  fdt.propU32("#address-cells", 2);
  fdt.propU32("#size-cells", 2);
  fdt.propString("compatible", "riscv-virtio");
  fdt.propString("model", "nodevisor,virt");

  fdt.beginNode("chosen");
  fdt.propString("bootargs", o.bootargs);
  fdt.propString("stdout-path", `/soc/serial@${UART_BASE.toString(16)}`);
  if (o.initrd) {
    fdt.propCells("linux,initrd-start", [hi(o.initrd.start), lo(o.initrd.start)]);
    fdt.propCells("linux,initrd-end", [hi(o.initrd.end), lo(o.initrd.end)]);
  }
  if (o.rngSeed) fdt.propBytes("rng-seed", o.rngSeed);
  fdt.endNode();

  fdt.beginNode(`memory@${RAM_BASE.toString(16)}`);
  fdt.propString("device_type", "memory");
  fdt.propCells("reg", reg(RAM_BASE, o.memoryBytes));
  fdt.endNode();

  fdt.beginNode("cpus");
  fdt.propU32("#address-cells", 1);
  fdt.propU32("#size-cells", 0);
  fdt.propU32("timebase-frequency", TIMEBASE_HZ);
  for (let h = 0; h < o.cpus; h++) {
    fdt.beginNode(`cpu@${h}`);
    fdt.propU32("phandle", cpu(h));
    fdt.propString("device_type", "cpu");
    fdt.propU32("reg", h);
    fdt.propString("status", "okay");
    fdt.propString("compatible", "riscv");
    fdt.propString("riscv,isa", ISA_STRING);
    fdt.propString("riscv,isa-base", "rv64i");
    fdt.propStrings("riscv,isa-extensions", ISA_EXTENSIONS);
    fdt.propString("mmu-type", "riscv,sv48");
    fdt.beginNode("interrupt-controller");
    fdt.propU32("#address-cells", 0);
    fdt.propU32("#interrupt-cells", 1);
    fdt.propEmpty("interrupt-controller");
    fdt.propString("compatible", "riscv,cpu-intc");
    fdt.propU32("phandle", intc(h));
    fdt.endNode();
    fdt.endNode();
  }
  fdt.beginNode("cpu-map");
  fdt.beginNode("cluster0");
  for (let h = 0; h < o.cpus; h++) {
    fdt.beginNode(`core${h}`);
    fdt.propU32("cpu", cpu(h));
    fdt.endNode();
  }
  fdt.endNode();
  fdt.endNode();
  fdt.endNode(); // cpus

  fdt.beginNode("soc");
  fdt.propU32("#address-cells", 2);
  fdt.propU32("#size-cells", 2);
  fdt.propString("compatible", "simple-bus");
  fdt.propEmpty("ranges");

  fdt.beginNode(`test@${TEST_BASE.toString(16)}`);
  fdt.propStrings("compatible", ["sifive,test1", "sifive,test0", "syscon"]);
  fdt.propCells("reg", reg(TEST_BASE, TEST_SIZE));
  fdt.propU32("phandle", TEST);
  fdt.endNode();

  fdt.beginNode(`rtc@${RTC_BASE.toString(16)}`);
  fdt.propString("compatible", "google,goldfish-rtc");
  fdt.propCells("reg", reg(RTC_BASE, RTC_SIZE));
  fdt.propU32("interrupt-parent", PLIC);
  fdt.propU32("interrupts", RTC_IRQ);
  fdt.endNode();

  // Linux's vmgenid driver reads the 16-byte ID from reg and re-reads it on the interrupt.
  fdt.beginNode(`vmgenid@${VMGENID_BASE.toString(16)}`);
  fdt.propString("compatible", "microsoft,vmgenid");
  fdt.propCells("reg", reg(VMGENID_BASE, VMGENID_ID_BYTES));
  fdt.propU32("interrupt-parent", PLIC);
  fdt.propU32("interrupts", VMGENID_IRQ);
  fdt.endNode();

  fdt.beginNode(`serial@${UART_BASE.toString(16)}`);
  fdt.propString("compatible", "ns16550a");
  fdt.propCells("reg", reg(UART_BASE, UART_SIZE));
  fdt.propU32("clock-frequency", 3_686_400);
  fdt.propU32("interrupt-parent", PLIC);
  fdt.propU32("interrupts", UART_IRQ);
  fdt.endNode();

  const clintIrqs: number[] = [];
  const plicIrqs: number[] = [];
  for (let h = 0; h < o.cpus; h++) {
    clintIrqs.push(intc(h), 3, intc(h), 7); // MSIP, MTIP
    plicIrqs.push(intc(h), 11, intc(h), 9); // contexts 2h (M) and 2h+1 (S)
  }
  fdt.beginNode(`clint@${CLINT_BASE.toString(16)}`);
  fdt.propStrings("compatible", ["sifive,clint0", "riscv,clint0"]);
  fdt.propCells("reg", reg(CLINT_BASE, CLINT_SIZE));
  fdt.propCells("interrupts-extended", clintIrqs);
  fdt.endNode();

  fdt.beginNode(`plic@${PLIC_BASE.toString(16)}`);
  fdt.propStrings("compatible", ["sifive,plic-1.0.0", "riscv,plic0"]);
  fdt.propCells("reg", reg(PLIC_BASE, PLIC_SIZE));
  fdt.propU32("#address-cells", 0);
  fdt.propU32("#interrupt-cells", 1);
  fdt.propEmpty("interrupt-controller");
  fdt.propU32("riscv,ndev", PLIC_SOURCES - 1);
  fdt.propCells("interrupts-extended", plicIrqs);
  fdt.propU32("phandle", PLIC);
  fdt.endNode();

  for (const slot of o.virtioSlots) {
    const base = VIRTIO_BASE + slot * VIRTIO_STRIDE;
    fdt.beginNode(`virtio_mmio@${base.toString(16)}`);
    fdt.propString("compatible", "virtio,mmio");
    fdt.propCells("reg", reg(base, VIRTIO_STRIDE));
    fdt.propU32("interrupt-parent", PLIC);
    fdt.propU32("interrupts", VIRTIO_IRQ_BASE + slot);
    fdt.endNode();
  }
  fdt.endNode(); // soc

  // syscon power-off and reboot sit at the root, as on QEMU virt (they have no reg of their own).
  fdt.beginNode("poweroff");
  fdt.propString("compatible", "syscon-poweroff");
  fdt.propU32("regmap", TEST);
  fdt.propU32("offset", 0);
  fdt.propU32("value", 0x5555);
  fdt.endNode();
  fdt.beginNode("reboot");
  fdt.propString("compatible", "syscon-reboot");
  fdt.propU32("regmap", TEST);
  fdt.propU32("offset", 0);
  fdt.propU32("value", 0x7777);
  fdt.endNode();
  fdt.endNode(); // root
  return fdt.finish();
}
