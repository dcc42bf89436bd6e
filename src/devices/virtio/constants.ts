// Numbers from the virtio 1.2 specification shared by the transport, the queues and the devices.

/** Device status bits (virtio 1.2 §2.1). */
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

/** Transport / ring feature bits (virtio 1.2 §6), as bigint masks. */
export const F_INDIRECT_DESC = 1n << 28n;
export const F_EVENT_IDX = 1n << 29n;
export const F_VERSION_1 = 1n << 32n;
/** Every transport feature this implementation offers on top of the device's own bits. */
export const TRANSPORT_FEATURES = F_VERSION_1 | F_INDIRECT_DESC | F_EVENT_IDX;

/** Virtio device ids (virtio 1.2 §5). */
export const DEVICE_ID_NET = 1;
export const DEVICE_ID_BLOCK = 2;
export const DEVICE_ID_CONSOLE = 3;
export const DEVICE_ID_RNG = 4;
export const DEVICE_ID_BALLOON = 5;

/** Split-ring descriptor flags (virtio 1.2 §2.7.5). */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
/** avail->flags: the driver asks for no used-buffer interrupts (ignored when EVENT_IDX is negotiated). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** Largest queue size a split virtqueue may have. */
export const MAX_QUEUE_SIZE = 32768;
/** Largest indirect descriptor table accepted (QEMU uses the same bound). */
export const MAX_INDIRECT_DESCRIPTORS = 1024;

/** Interrupt status bits of the virtio-mmio transport. */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;
