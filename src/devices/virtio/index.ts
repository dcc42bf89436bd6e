// Public surface of the virtio layer: the mmio transport, the device seam and the devices.

export { VirtioMmio, MMIO_WINDOW_SIZE, MMIO_VENDOR_ID } from "./mmio.js";
export type { VirtioMmioOptions, VirtioMmioState, VirtioMmioStats } from "./mmio.js";
export type { VirtioDevice, VirtioDeviceContext } from "./device.js";
export { Virtqueue, VirtqueueError } from "./virtqueue.js";
export type { VirtqueueState } from "./virtqueue.js";
export type { DescriptorChain } from "./descriptor_chain.js";
export { VirtioBlk } from "./block/device.js";
export type { VirtioBlkOptions } from "./block/device.js";
export type { VirtioBlkState } from "./block/persist.js";
export type { VirtioBlkStats } from "./block/metrics.js";
export { VirtioRng } from "./rng/device.js";
export type { VirtioRngOptions, VirtioRngState, VirtioRngStats } from "./rng/device.js";
export { VirtioConsole } from "./console/device.js";
export type { VirtioConsoleOptions, VirtioConsoleState, VirtioConsoleStats } from "./console/device.js";
export { VirtioBalloon } from "./balloon/device.js";
export type { VirtioBalloonOptions, VirtioBalloonState, VirtioBalloonCounters, BalloonGuestStats } from "./balloon/device.js";
