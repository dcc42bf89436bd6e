// The `virt`-compatible board: RAM, bus, harts, interrupt controllers, platform devices and
// virtio-mmio slots, wired together. The board knows devices only through their bus interface
// and the VirtioDevice seam; which backends sit behind them is the VM's business.

import { Bus } from "./bus.js";
import { DeviceTimers } from "./device_timers.js";
import { GuestRam } from "../seams/guest_ram.js";
import { buildDeviceTree } from "./device_tree.js";
import {
  CLINT_BASE,
  CLINT_SIZE,
  MAX_CPUS,
  PLIC_BASE,
  PLIC_SIZE,
  PLIC_SOURCES,
  RAM_BASE,
  RTC_BASE,
  RTC_IRQ,
  RTC_SIZE,
  TEST_BASE,
  TEST_SIZE,
  UART_BASE,
  UART_IRQ,
  UART_SIZE,
  VMGENID_BASE,
  VMGENID_IRQ,
  VMGENID_SIZE,
  VIRTIO_BASE,
  VIRTIO_IRQ_BASE,
  VIRTIO_SLOTS,
  VIRTIO_STRIDE,
} from "./layout.js";
import { BlockCache } from "../cpu/jit/block_cache.js";
import type { JitProfile } from "../cpu/jit/jit_profile.js";
import { Hart } from "../cpu/hart.js";
import { Clint, type ClintState } from "../devices/clint.js";
import { Plic, type PlicState } from "../devices/plic.js";
import { Uart16550, type Uart16550State } from "../devices/uart16550.js";
import { GoldfishRtc, type GoldfishRtcState } from "../devices/goldfish_rtc.js";
import { TestFinisher } from "../devices/test_finisher.js";
import { VmGenId, type VmGenIdState } from "../devices/vmgenid.js";
import { VirtioMmio, type VirtioMmioState } from "../devices/virtio/mmio.js";
import type { VirtioDevice } from "../devices/virtio/device.js";
import type { InterruptTarget, IrqLine } from "../seams/interrupts.js";
import type { TimeSource } from "../seams/time.js";

export interface BoardOptions {
  memoryBytes: number;
  /** RAM filled already (a migration's destination received it); otherwise a fresh one. */
  ram?: GuestRam;
  cpus: number;
  time: TimeSource;
  /** virtio devices in slot order (slot 0 first); the guest probes them in this order. */
  virtio: VirtioDevice[];
  onSerialByte: (byte: number) => void;
  onPowerOff: (exitCode: number) => void;
  onReset: () => void;
  /**
   * Where the PLIC's outputs go, one per hart; by default the harts themselves. Harts on other
   * threads get proxies that write their control blocks.
   */
  interruptTargets?: InterruptTarget[];
  /** Called whenever a device raises an interrupt line, so a sleeping run loop wakes up. */
  onInterrupt?: () => void;
  log?: (msg: string) => void;
  /** Run the harts on the JIT tier (one code cache for the board's thread); harts on worker threads are not the board's. */
  jit?: boolean;
  /** Pages earlier runs of this guest compiled (cpu/jit/jit_profile.ts), for the JIT. */
  jitProfile?: JitProfile;
}

export interface BoardState {
  clint: ClintState;
  plic: PlicState;
  uart: Uart16550State;
  rtc: GoldfishRtcState;
  vmgenid: VmGenIdState;
  virtio: VirtioMmioState[];
}

export class Board {
  readonly ram: GuestRam;
  /** Every device; the VMM performs MMIO exits here. */
  readonly bus = new Bus();
  /** The devices each vCPU serves without an exit (CLINT, PLIC), as KVM's in-kernel irqchip. */
  readonly vcpuDevices = new Bus();
  readonly harts: Hart[];
  readonly clint: Clint;
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly rtc: GoldfishRtc;
  readonly vmgenid: VmGenId;
  /** Host timers for the devices' own deadlines (the RTC alarm); stop() them when the VM ends. */
  readonly timers = new DeviceTimers();
  readonly test: TestFinisher;
  readonly virtio: VirtioMmio[] = [];
  readonly virtioDevices: VirtioDevice[];
  readonly cpus: number;

  constructor(o: BoardOptions) {
    if (o.cpus < 1 || o.cpus > MAX_CPUS) throw new RangeError(`A VM has 1 to ${MAX_CPUS} vCPUs, not ${o.cpus}`);
    if (o.virtio.length > VIRTIO_SLOTS) {
      throw new RangeError(`The board has ${VIRTIO_SLOTS} virtio slots; ${o.virtio.length} devices were configured`);
    }
    this.cpus = o.cpus;
    if (o.ram !== undefined && (o.ram.base !== RAM_BASE || o.ram.size !== o.memoryBytes)) throw new RangeError(`The RAM given is not the board's ${o.memoryBytes} bytes at 0x${RAM_BASE.toString(16)}`);
    this.ram = o.ram ?? new GuestRam(RAM_BASE, o.memoryBytes);
    this.harts = [];
    for (let h = 0; h < o.cpus; h++) {
      // Each hart's state lives in its block above RAM, where a vCPU thread runs it and this thread reads it.
      this.harts.push(new Hart({ hartId: h, ram: this.ram, vcpuDevices: this.vcpuDevices, time: o.time, stateBlock: true }));
    }
    if (o.jit) {
      const cache = new BlockCache(this.ram, { background: true, profile: o.jitProfile }); // compile on the JIT's compile thread while the vCPU goes on
      for (const hart of this.harts) hart.useJit(cache);
    }
    // With vCPU threads, interrupt lines reach a hart through its control words, never its state block.
    const targets: InterruptTarget[] = o.interruptTargets ?? this.harts;
    this.clint = new Clint({ harts: targets, time: o.time });
    const contexts = targets.flatMap((hart) => [
      { hart, bit: 11 },
      { hart, bit: 9 },
    ]);
    this.plic = new Plic({ sources: PLIC_SOURCES, contexts });
    const wake = o.onInterrupt ?? (() => {});
    const line = (source: number): IrqLine => {
      const inner = this.plic.irqLine(source);
      return {
        set(level: boolean): void {
          inner.set(level);
          if (level) wake();
        },
      };
    };
    this.uart = new Uart16550({ irq: line(UART_IRQ), onTransmit: o.onSerialByte });
    this.rtc = new GoldfishRtc({ irq: line(RTC_IRQ), onDeadlineChange: () => this.timers.replan() });
    this.timers.add(this.rtc);
    this.vmgenid = new VmGenId(line(VMGENID_IRQ));
    this.test = new TestFinisher({ onPowerOff: o.onPowerOff, onReset: o.onReset });

    this.bus.map(TEST_BASE, TEST_SIZE, this.test);
    this.bus.map(RTC_BASE, RTC_SIZE, this.rtc);
    this.bus.map(VMGENID_BASE, VMGENID_SIZE, this.vmgenid);
    this.bus.map(CLINT_BASE, CLINT_SIZE, this.clint);
    this.bus.map(PLIC_BASE, PLIC_SIZE, this.plic);
    this.vcpuDevices.map(CLINT_BASE, CLINT_SIZE, this.clint);
    this.vcpuDevices.map(PLIC_BASE, PLIC_SIZE, this.plic);
    this.bus.map(UART_BASE, UART_SIZE, this.uart);
    this.virtioDevices = o.virtio;
    o.virtio.forEach((device, slot) => {
      const mmio = new VirtioMmio({
        ram: this.ram,
        device,
        irq: line(VIRTIO_IRQ_BASE + slot),
        log: o.log,
      });
      this.virtio.push(mmio);
      this.bus.map(VIRTIO_BASE + slot * VIRTIO_STRIDE, VIRTIO_STRIDE, mmio);
    });
  }

  /** Every device's state (the harts are saved by whoever runs them). */
  save(): BoardState {
    return {
      clint: this.clint.save(),
      plic: this.plic.save(),
      uart: this.uart.save(),
      rtc: this.rtc.save(),
      vmgenid: this.vmgenid.save(),
      virtio: this.virtio.map((m) => m.save()),
    };
  }

  restore(s: BoardState): void {
    if (s.virtio.length !== this.virtio.length) {
      throw new RangeError(`the snapshot has ${s.virtio.length} virtio devices and this VM ${this.virtio.length}`);
    }
    this.clint.restore(s.clint);
    this.plic.restore(s.plic);
    this.uart.restore(s.uart);
    this.rtc.restore(s.rtc);
    this.vmgenid.restore(s.vmgenid);
    this.virtio.forEach((m, i) => m.restore(s.virtio[i]!));
    this.timers.replan();
  }

  deviceTree(bootargs: string, initrd: { start: number; end: number } | null, rngSeed?: Uint8Array): Uint8Array {
    return buildDeviceTree({
      cpus: this.cpus,
      memoryBytes: this.ram.size,
      bootargs,
      initrd,
      virtioSlots: this.virtio.map((_, i) => i),
      rngSeed,
    });
  }
}
