// Which virtio device sits in which virtio-mmio slot: one plan, used both to refuse a config that
// does not fit the board and to build the devices, so the limits are computed, never hand-kept.

import { VIRTIO_SLOTS } from "../machine/layout.js";

export type VirtioSlotKind = "disk" | "nic" | "rng" | "console-stdout" | "console-stderr" | "console-status" | "balloon";

/** Devices every VM has, after its disks: the entropy source, the three command consoles and the balloon. */
export const FIXED_VIRTIO_DEVICES: readonly VirtioSlotKind[] = ["rng", "console-stdout", "console-stderr", "console-status", "balloon"];

/** Slots left for disks and NICs on this board. */
export const FREE_VIRTIO_SLOTS = VIRTIO_SLOTS - FIXED_VIRTIO_DEVICES.length;

/** The guest probes slots in order: disks first (vda, vdb, …), NICs (eth0, eth1, …), then the fixed devices. */
export function virtioSlotPlan(c: { disks: readonly unknown[]; nets?: readonly unknown[] }): VirtioSlotKind[] {
  return [...c.disks.map((): VirtioSlotKind => "disk"), ...(c.nets ?? []).map((): VirtioSlotKind => "nic"), ...FIXED_VIRTIO_DEVICES];
}
