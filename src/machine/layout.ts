// The board's memory map and interrupt numbers: QEMU `virt`-compatible, so Debian's kernel
// finds its drivers exactly where it would on QEMU.

export const TEST_BASE = 0x0010_0000;
export const TEST_SIZE = 0x1000;
export const RTC_BASE = 0x0010_1000;
export const RTC_SIZE = 0x1000;
/** The VM generation ID (16 bytes; the page is the device's). */
export const VMGENID_BASE = 0x0010_2000;
export const VMGENID_SIZE = 0x1000;
export const CLINT_BASE = 0x0200_0000;
export const CLINT_SIZE = 0x1_0000;
export const PLIC_BASE = 0x0c00_0000;
export const PLIC_SIZE = 0x60_0000;
export const UART_BASE = 0x1000_0000;
export const UART_SIZE = 0x100;
export const VIRTIO_BASE = 0x1000_1000;
export const VIRTIO_STRIDE = 0x1000;
/** QEMU's virt has 8; a ninth (IRQ 9, free on virt) holds the balloon so disks and NICs keep four. */
export const VIRTIO_SLOTS = 9;
export const RAM_BASE = 0x8000_0000;

/** PLIC source numbers. */
export const VIRTIO_IRQ_BASE = 1; // slots use sources 1..9
export const UART_IRQ = 10;
export const RTC_IRQ = 11;
export const VMGENID_IRQ = 12;
export const PLIC_SOURCES = 96;

/** mtime ticks per second (the `time` CSR and the devicetree timebase-frequency). */
export const TIMEBASE_HZ = 10_000_000;

/** Where the kernel Image goes: 2 MiB above the start of RAM, as the RISC-V boot protocol expects. */
export const KERNEL_OFFSET = 0x20_0000;

export const MIN_MEMORY = 16 * 1024 * 1024;
/** The interpreter addresses RAM with unsigned 32-bit offsets (src/cpu), so 4 GiB is the ceiling for now. */
export const MAX_MEMORY = 4 * 1024 * 1024 * 1024;
export const MAX_CPUS = 8;
