// Ethernet, 802.1Q, ARP, IPv4, UDP, TCP and ICMP: the few header fields the switch, the DHCP/DNS
// responder and the firewall read, and the checksums they write. Everything is bounds-checked:
// frames come from guests and socket peers and are untrusted.

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const ETH_HEADER_BYTES = 14;
export const VLAN_TAG_BYTES = 4;

export type Mac = string; // "52:54:00:12:34:56", lower case

export function macToString(b: Uint8Array, at = 0): Mac {
  let s = "";
  for (let i = 0; i < 6; i++) s += (i ? ":" : "") + b[at + i]!.toString(16).padStart(2, "0");
  return s;
}

export function parseMac(text: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (m === null) return null;
  return Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
}

export function isMulticastMac(b: Uint8Array, at = 0): boolean {
  return (b[at]! & 1) === 1;
}

export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export function ipv4ToString(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function parseIpv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m === null) return null;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return null;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

/** "10.0.0.0/24" → network and prefix length, or null. */
export function parseCidr(text: string): { network: number; prefix: number } | null {
  const [addr, len] = text.split("/");
  const a = parseIpv4(addr ?? "");
  const prefix = len === undefined ? 32 : Number(len);
  if (a === null || !Number.isInteger(prefix) || prefix < 0 || prefix > 32 || (len !== undefined && !/^\d+$/.test(len))) return null;
  return { network: (a & prefixMask(prefix)) >>> 0, prefix };
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function inCidr(addr: number, c: { network: number; prefix: number }): boolean {
  return ((addr & prefixMask(c.prefix)) >>> 0) === c.network;
}

/** An Ethernet frame's L2 view: where the payload starts and which VLAN tag (if any) it carries. */
export interface L2Header {
  /** EtherType after any 802.1Q tag. */
  etherType: number;
  /** VLAN id of the outer 802.1Q tag, or null when untagged. */
  vlan: number | null;
  /** Offset of the L3 payload. */
  payloadOffset: number;
}

export function parseL2(frame: Uint8Array): L2Header | null {
  if (frame.length < ETH_HEADER_BYTES) return null;
  let type = (frame[12]! << 8) | frame[13]!;
  if (type === ETHERTYPE_VLAN) {
    if (frame.length < ETH_HEADER_BYTES + VLAN_TAG_BYTES) return null;
    const vlan = ((frame[14]! << 8) | frame[15]!) & 0xfff;
    type = (frame[16]! << 8) | frame[17]!;
    return { etherType: type, vlan, payloadOffset: 18 };
  }
  return { etherType: type, vlan: null, payloadOffset: 14 };
}

/** A copy of `frame` with an 802.1Q tag for `vlan` inserted after the MAC addresses. */
export function addVlanTag(frame: Uint8Array, vlan: number): Uint8Array {
  const out = new Uint8Array(frame.length + VLAN_TAG_BYTES);
  out.set(frame.subarray(0, 12), 0);
  out[12] = 0x81;
  out[13] = 0x00;
  out[14] = (vlan >> 8) & 0x0f;
  out[15] = vlan & 0xff;
  out.set(frame.subarray(12), 16);
  return out;
}

/** A copy of a tagged `frame` without its outer 802.1Q tag. */
export function stripVlanTag(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length - VLAN_TAG_BYTES);
  out.set(frame.subarray(0, 12), 0);
  out.set(frame.subarray(16), 12);
  return out;
}

/** The Internet checksum (RFC 1071) of `data[from, to)`, folded, starting from `initial` (an unfolded sum). */
export function internetChecksum(data: Uint8Array, from: number, to: number, initial = 0): number {
  let sum = initial;
  let i = from;
  for (; i + 1 < to; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < to) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

/** The unfolded sum of the IPv4 pseudo-header for a TCP/UDP checksum. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

/** The fields of an IPv4 packet the firewall and the responders use. */
export interface Ipv4View {
  offset: number;
  headerBytes: number;
  totalLength: number;
  protocol: number;
  src: number;
  dst: number;
  /** Non-zero for fragments after the first: they carry no L4 header. */
  fragmentOffset: number;
  /** Source and destination port for TCP and UDP; ICMP type and code otherwise (-1 when absent). */
  srcPort: number;
  dstPort: number;
  /** TCP flags (SYN=2, ACK=16, FIN=1, RST=4), 0 for other protocols. */
  tcpFlags: number;
}

export function parseIpv4Packet(frame: Uint8Array, offset: number): Ipv4View | null {
  if (frame.length < offset + 20) return null;
  const vihl = frame[offset]!;
  if (vihl >> 4 !== 4) return null;
  const headerBytes = (vihl & 15) * 4;
  const totalLength = (frame[offset + 2]! << 8) | frame[offset + 3]!;
  if (headerBytes < 20 || totalLength < headerBytes || offset + totalLength > frame.length) return null;
  const protocol = frame[offset + 9]!;
  const rd32 = (o: number): number => ((frame[o]! << 24) | (frame[o + 1]! << 16) | (frame[o + 2]! << 8) | frame[o + 3]!) >>> 0;
  const fragmentOffset = ((frame[offset + 6]! & 0x1f) << 8) | frame[offset + 7]!;
  let srcPort = -1;
  let dstPort = -1;
  let tcpFlags = 0;
  const l4 = offset + headerBytes;
  const l4End = offset + totalLength;
  if (fragmentOffset === 0) {
    if ((protocol === IPPROTO_TCP || protocol === IPPROTO_UDP) && l4End >= l4 + 4) {
      srcPort = (frame[l4]! << 8) | frame[l4 + 1]!;
      dstPort = (frame[l4 + 2]! << 8) | frame[l4 + 3]!;
      if (protocol === IPPROTO_TCP && l4End >= l4 + 14) tcpFlags = frame[l4 + 13]!;
    } else if (protocol === IPPROTO_ICMP && l4End >= l4 + 2) {
      srcPort = frame[l4]!;
      dstPort = frame[l4 + 1]!;
    }
  }
  return { offset, headerBytes, totalLength, protocol, src: rd32(offset + 12), dst: rd32(offset + 16), fragmentOffset, srcPort, dstPort, tcpFlags };
}

/** The fields of an IPv6 packet the firewall uses. */
export interface Ipv6View {
  /** Addresses as eight hex groups ("fe80:0:0:0:…"): keys, not for display. */
  src: string;
  dst: string;
  /** The upper-layer protocol after the extension headers (TCP, UDP, ICMPv6, …). */
  protocol: number;
  /** A fragment after the first: it carries no upper-layer header. */
  laterFragment: boolean;
  /** As in Ipv4View: ports for TCP and UDP, ICMPv6 type and code, -1 when absent. */
  srcPort: number;
  dstPort: number;
  tcpFlags: number;
}

const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_DEST_OPTIONS = 60;
/** Extension headers walked at most; a chain longer than this is not a real packet. */
const IPV6_MAX_EXTENSIONS = 8;

export function parseIpv6Packet(frame: Uint8Array, offset: number): Ipv6View | null {
  if (frame.length < offset + 40 || frame[offset]! >> 4 !== 6) return null;
  const end = offset + 40 + ((frame[offset + 4]! << 8) | frame[offset + 5]!);
  if (end > frame.length) return null;
  let next = frame[offset + 6]!;
  let at = offset + 40;
  let laterFragment = false;
  for (let n = 0; ; n++) {
    if (next !== IPV6_HOP_BY_HOP && next !== IPV6_ROUTING && next !== IPV6_DEST_OPTIONS && next !== IPV6_FRAGMENT) break;
    if (n === IPV6_MAX_EXTENSIONS || at + 8 > end) return null;
    if (next === IPV6_FRAGMENT) {
      if (((frame[at + 2]! << 8) | frame[at + 3]!) >> 3 !== 0) laterFragment = true;
      next = frame[at]!;
      at += 8;
    } else {
      next = frame[at]!;
      at += (frame[at + 1]! + 1) * 8;
    }
  }
  if (at > end) return null;
  let srcPort = -1;
  let dstPort = -1;
  let tcpFlags = 0;
  if (!laterFragment) {
    if ((next === IPPROTO_TCP || next === IPPROTO_UDP) && end >= at + 4) {
      srcPort = (frame[at]! << 8) | frame[at + 1]!;
      dstPort = (frame[at + 2]! << 8) | frame[at + 3]!;
      if (next === IPPROTO_TCP && end >= at + 14) tcpFlags = frame[at + 13]!;
    } else if (next === IPPROTO_ICMPV6 && end >= at + 2) {
      srcPort = frame[at]!;
      dstPort = frame[at + 1]!;
    }
  }
  return { src: ipv6Key(frame, offset + 8), dst: ipv6Key(frame, offset + 24), protocol: next, laterFragment, srcPort, dstPort, tcpFlags };
}

function ipv6Key(b: Uint8Array, at: number): string {
  let s = "";
  for (let i = 0; i < 16; i += 2) s += (i ? ":" : "") + ((b[at + i]! << 8) | b[at + i + 1]!).toString(16);
  return s;
}

/** Builds an untagged Ethernet + IPv4 + UDP frame (checksums filled in). */
export function buildUdpFrame(o: {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}): Uint8Array {
  const udpLen = 8 + o.payload.length;
  const f = buildIpv4Frame({ ...o, protocol: IPPROTO_UDP, l4Bytes: udpLen });
  const u = ETH_HEADER_BYTES + 20;
  const v = new DataView(f.buffer);
  v.setUint16(u, o.srcPort);
  v.setUint16(u + 2, o.dstPort);
  v.setUint16(u + 4, udpLen);
  f.set(o.payload, u + 8);
  const c = internetChecksum(f, u, u + udpLen, pseudoHeaderSum(o.src, o.dst, IPPROTO_UDP, udpLen));
  v.setUint16(u + 6, c === 0 ? 0xffff : c);
  return f;
}

/** An Ethernet + IPv4 header (no options) with room for `l4Bytes` of payload; the IP checksum is set. */
export function buildIpv4Frame(o: { srcMac: Uint8Array; dstMac: Uint8Array; src: number; dst: number; protocol: number; l4Bytes: number }): Uint8Array {
  const f = new Uint8Array(ETH_HEADER_BYTES + 20 + o.l4Bytes);
  const v = new DataView(f.buffer);
  f.set(o.dstMac, 0);
  f.set(o.srcMac, 6);
  v.setUint16(12, ETHERTYPE_IPV4);
  const ip = ETH_HEADER_BYTES;
  f[ip] = 0x45;
  v.setUint16(ip + 2, 20 + o.l4Bytes);
  v.setUint16(ip + 6, 0x4000); // don't fragment
  f[ip + 8] = 64;
  f[ip + 9] = o.protocol;
  v.setUint32(ip + 12, o.src);
  v.setUint32(ip + 16, o.dst);
  v.setUint16(ip + 10, internetChecksum(f, ip, ip + 20));
  return f;
}

/**
 * A checksum after one 16-bit word it covers changed from `oldWord` to `newWord` (RFC 1624, eqn. 3):
 * HC' = ~(~HC + ~m + m'), so a NAT rewrites addresses and ports without summing the whole packet.
 */
export function adjustChecksum(checksum: number, oldWord: number, newWord: number): number {
  let sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** adjustChecksum for a 32-bit field (an IPv4 address), one 16-bit half at a time. */
export function adjustChecksum32(checksum: number, oldValue: number, newValue: number): number {
  return adjustChecksum(adjustChecksum(checksum, oldValue >>> 16, newValue >>> 16), oldValue & 0xffff, newValue & 0xffff);
}
