// Which virtio device sits in which virtio-mmio slot: one plan, used both to refuse a config that
// does not fit the board and to build the devices, so the limits are computed, never hand-kept.

import { VIRTIO_SLOTS } from "../machine/layout.js";

export type VirtioSlotKind = "disk" | "rng" | "console-stdout" | "console-stderr" | "console-status";

/** Devices every VM has, after its disks: the entropy source and the three command consoles. */
export const FIXED_VIRTIO_DEVICES: readonly VirtioSlotKind[] = ["rng", "console-stdout", "console-stderr", "console-status"];

/** Slots left for disks (and, later, NICs) on this board. */
export const FREE_VIRTIO_SLOTS = VIRTIO_SLOTS - FIXED_VIRTIO_DEVICES.length;

/** The guest probes slots in order: disks first (vda, vdb, …), then the fixed devices. */
export function virtioSlotPlan(c: { disks: readonly unknown[] }): VirtioSlotKind[] {
  return [...c.disks.map((): VirtioSlotKind => "disk"), ...FIXED_VIRTIO_DEVICES];
}
