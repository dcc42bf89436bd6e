// Checksum and TSO offload done by the device: a guest that negotiated VIRTIO_NET_F_CSUM /
// HOST_TSO4 hands over frames with a partial checksum or up to 64 KiB of TCP payload; the
// device finishes the checksum and cuts the segments, so what reaches a backend (and a QEMU peer
// on our switch, whose stream framing has no virtio-net header) is ordinary Ethernet.

import {
  ETHERTYPE_IPV4,
  internetChecksum,
  IPPROTO_TCP,
  IPPROTO_UDP,
  parseIpv4Packet,
  parseL2,
  pseudoHeaderSum,
} from "../../../net/ethernet.js";
import { NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_ECN, NET_HDR_GSO_NONE, NET_HDR_GSO_TCPV4, readNetHeader } from "./header.js";

const F_CSUM = 1n << 0n;
const F_HOST_TSO4 = 1n << 11n;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** The wire frames for one transmit chain, or null when its header asks for something impossible. */
export function prepareTxFrames(hdrBytes: Uint8Array, payload: Uint8Array, features: bigint): Uint8Array[] | null {
  const h = readNetHeader(hdrBytes);
  const gso = h.gsoType & ~NET_HDR_GSO_ECN;
  const frame = new Uint8Array(payload); // private copy: we patch checksums
  if (gso !== NET_HDR_GSO_NONE) {
    if ((features & F_HOST_TSO4) === 0n || gso !== NET_HDR_GSO_TCPV4) return null;
    return segmentTcp4(frame, h.gsoSize);
  }
  if (h.flags & NET_HDR_F_NEEDS_CSUM) {
    if ((features & F_CSUM) === 0n) return null;
    const at = h.csumStart + h.csumOffset;
    if (h.csumStart >= frame.length || at + 2 > frame.length) return null;
    const c = internetChecksum(frame, h.csumStart, frame.length);
    frame[at] = c >> 8;
    frame[at + 1] = c & 0xff;
  }
  return [frame];
}

/** Cuts a TCP/IPv4 frame with up to 64 KiB of payload into segments of `mss` payload bytes, each with correct headers and checksums. */
export function segmentTcp4(frame: Uint8Array, mss: number): Uint8Array[] | null {
  const l2 = parseL2(frame);
  if (l2 === null || l2.etherType !== ETHERTYPE_IPV4 || mss < 1) return null;
  const ipOff = l2.payloadOffset;
  // The guest leaves the IP total length of a GSO frame as it likes; trust the frame's length instead.
  if (frame.length < ipOff + 20) return null;
  const ihl = (frame[ipOff]! & 15) * 4;
  if (frame[ipOff]! >> 4 !== 4 || ihl < 20 || frame[ipOff + 9] !== IPPROTO_TCP) return null;
  const tcpOff = ipOff + ihl;
  if (frame.length < tcpOff + 20) return null;
  const thl = (frame[tcpOff + 12]! >> 4) * 4;
  const dataOff = tcpOff + thl;
  if (thl < 20 || dataOff > frame.length) return null;
  const data = frame.subarray(dataOff);
  const count = Math.max(1, Math.ceil(data.length / mss));
  if (count > 1024) return null;
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const seq0 = dv.getUint32(tcpOff + 4);
  const id0 = dv.getUint16(ipOff + 4);
  const flags0 = frame[tcpOff + 13]!;
  const src = dv.getUint32(ipOff + 12);
  const dst = dv.getUint32(ipOff + 16);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const part = data.subarray(i * mss, Math.min(data.length, (i + 1) * mss));
    const seg = new Uint8Array(dataOff + part.length);
    seg.set(frame.subarray(0, dataOff), 0);
    seg.set(part, dataOff);
    const sv = new DataView(seg.buffer);
    sv.setUint16(ipOff + 2, ihl + thl + part.length);
    sv.setUint16(ipOff + 4, (id0 + i) & 0xffff);
    sv.setUint16(ipOff + 10, 0);
    sv.setUint16(ipOff + 10, internetChecksum(seg, ipOff, ipOff + ihl));
    sv.setUint32(tcpOff + 4, (seq0 + i * mss) >>> 0);
    let flags = flags0;
    if (i !== count - 1) flags &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) flags &= ~TCP_CWR;
    seg[tcpOff + 13] = flags;
    sv.setUint16(tcpOff + 16, 0);
    const tcpLen = thl + part.length;
    sv.setUint16(tcpOff + 16, internetChecksum(seg, tcpOff, tcpOff + tcpLen, pseudoHeaderSum(src, dst, IPPROTO_TCP, tcpLen)));
    out.push(seg);
  }
  return out;
}

/** True when `frame` is an unfragmented TCP or UDP over IPv4 packet whose checksums are right (the guest may skip checking them). */
export function rxChecksumsValid(frame: Uint8Array): boolean {
  const l2 = parseL2(frame);
  if (l2 === null || l2.etherType !== ETHERTYPE_IPV4) return false;
  const ip = parseIpv4Packet(frame, l2.payloadOffset);
  if (ip === null || ip.fragmentOffset !== 0 || (frame[ip.offset + 6]! & 0x20) !== 0) return false;
  if (internetChecksum(frame, ip.offset, ip.offset + ip.headerBytes) !== 0) return false;
  const l4 = ip.offset + ip.headerBytes;
  const l4Len = ip.totalLength - ip.headerBytes;
  if (ip.protocol === IPPROTO_TCP) {
    if (l4Len < 20) return false;
  } else if (ip.protocol === IPPROTO_UDP) {
    if (l4Len < 8) return false;
    if (frame[l4 + 6] === 0 && frame[l4 + 7] === 0) return true;
  } else {
    return false;
  }
  return internetChecksum(frame, l4, l4 + l4Len, pseudoHeaderSum(ip.src, ip.dst, ip.protocol, l4Len)) === 0;
}
