// struct virtio_net_hdr (virtio 1.2 §5.1.6) as the device reads and writes it. With VIRTIO_F_VERSION_1
// the header is always 12 bytes, num_buffers included.

export const NET_HDR_BYTES = 12;

export const NET_HDR_F_NEEDS_CSUM = 1;
export const NET_HDR_F_DATA_VALID = 2;

export const NET_HDR_GSO_NONE = 0;
export const NET_HDR_GSO_TCPV4 = 1;
export const NET_HDR_GSO_UDP = 3;
export const NET_HDR_GSO_TCPV6 = 4;
export const NET_HDR_GSO_ECN = 0x80;

export interface NetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function readNetHeader(b: Uint8Array): NetHeader {
  return {
    flags: b[0]!,
    gsoType: b[1]!,
    hdrLen: b[2]! | (b[3]! << 8),
    gsoSize: b[4]! | (b[5]! << 8),
    csumStart: b[6]! | (b[7]! << 8),
    csumOffset: b[8]! | (b[9]! << 8),
  };
}

/** A receive header: no GSO; DATA_VALID when the device checked the checksums; num_buffers as given. */
export function rxHeader(flags: number, numBuffers: number): Uint8Array {
  const h = new Uint8Array(NET_HDR_BYTES);
  h[0] = flags;
  h[10] = numBuffers & 0xff;
  h[11] = numBuffers >> 8;
  return h;
}
