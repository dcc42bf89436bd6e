// Test helper: synthetic Ethernet frames.

import { addVlanTag, buildIpv4Frame, buildUdpFrame, ETHERTYPE_ARP, internetChecksum, IPPROTO_ICMP, IPPROTO_TCP, parseIpv4, parseMac, pseudoHeaderSum } from "../ethernet.js";

export const mac = (s: string): Uint8Array => parseMac(s)!;
export const ip = (s: string): number => parseIpv4(s)!;

/** An untagged frame from `src` to `dst` with a recognizable payload. */
export function frame(dst: string, src: string, payload = "hello", etherType = 0x88b6): Uint8Array {
  const body = new TextEncoder().encode(payload);
  const f = new Uint8Array(14 + body.length);
  f.set(mac(dst), 0);
  f.set(mac(src), 6);
  f[12] = etherType >> 8;
  f[13] = etherType & 0xff;
  f.set(body, 14);
  return f;
}

export function tagged(f: Uint8Array, vlan: number): Uint8Array {
  return addVlanTag(f, vlan);
}

export function udp(o: { srcMac: string; dstMac: string; src: string; dst: string; srcPort: number; dstPort: number; payload?: Uint8Array }): Uint8Array {
  return buildUdpFrame({ srcMac: mac(o.srcMac), dstMac: mac(o.dstMac), src: ip(o.src), dst: ip(o.dst), srcPort: o.srcPort, dstPort: o.dstPort, payload: o.payload ?? new Uint8Array(4) });
}

/** A TCP segment with correct checksums; `flags` 2 = SYN, 16 = ACK, 18 = SYN+ACK. */
export function tcp(o: { srcMac: string; dstMac: string; src: string; dst: string; srcPort: number; dstPort: number; flags?: number; seq?: number; payload?: Uint8Array }): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const f = buildIpv4Frame({ srcMac: mac(o.srcMac), dstMac: mac(o.dstMac), src: ip(o.src), dst: ip(o.dst), protocol: IPPROTO_TCP, l4Bytes: 20 + payload.length });
  const t = 34;
  const v = new DataView(f.buffer);
  v.setUint16(t, o.srcPort);
  v.setUint16(t + 2, o.dstPort);
  v.setUint32(t + 4, o.seq ?? 1000);
  f[t + 12] = 5 << 4;
  f[t + 13] = o.flags ?? 16;
  v.setUint16(t + 14, 65535);
  f.set(payload, t + 20);
  v.setUint16(t + 16, internetChecksum(f, t, f.length, pseudoHeaderSum(ip(o.src), ip(o.dst), IPPROTO_TCP, 20 + payload.length)));
  return f;
}

export function icmpEcho(o: { srcMac: string; dstMac: string; src: string; dst: string; reply?: boolean }): Uint8Array {
  const f = buildIpv4Frame({ srcMac: mac(o.srcMac), dstMac: mac(o.dstMac), src: ip(o.src), dst: ip(o.dst), protocol: IPPROTO_ICMP, l4Bytes: 16 });
  f[34] = o.reply ? 0 : 8;
  f[38] = 0x12; // identifier
  f[41] = 1; // sequence
  const c = internetChecksum(f, 34, f.length);
  f[36] = c >> 8;
  f[37] = c & 0xff;
  return f;
}

export function arpRequest(senderMac: string, senderIp: string, targetIp: string): Uint8Array {
  const f = new Uint8Array(42);
  f.fill(0xff, 0, 6);
  f.set(mac(senderMac), 6);
  f[12] = ETHERTYPE_ARP >> 8;
  f[13] = ETHERTYPE_ARP & 0xff;
  f.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  f.set(mac(senderMac), 22);
  new DataView(f.buffer).setUint32(28, ip(senderIp));
  new DataView(f.buffer).setUint32(38, ip(targetIp));
  return f;
}

/** Collects what a switch port receives. */
export class Sink {
  frames: Uint8Array[] = [];
  full = false;
  readonly output = (f: Uint8Array): boolean => {
    if (this.full) return false;
    this.frames.push(f);
    return true;
  };
  take(): Uint8Array[] {
    const f = this.frames;
    this.frames = [];
    return f;
  }
}

/** "fd00::5" → 16 bytes (enough of RFC 4291's text form for tests). */
export function ipv6Bytes(text: string): Uint8Array {
  const [h, t] = text.split("::") as [string, string | undefined];
  const head = h ? h.split(":") : [];
  const tail = t ? t.split(":") : [];
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail];
  const b = new Uint8Array(16);
  groups.forEach((g, i) => new DataView(b.buffer).setUint16(i * 2, parseInt(g, 16)));
  return b;
}

/**
 * An IPv6 frame (checksums are not filled in: the firewall does not read them). `l4` is the upper
 * header and payload; `extensions` are [next-header, bytes] pairs placed before it.
 */
export function ipv6(o: { srcMac: string; dstMac: string; src: string; dst: string; protocol: number; l4: Uint8Array; extensions?: [number, Uint8Array][] }): Uint8Array {
  const ext = o.extensions ?? [];
  const extBytes = ext.reduce((n, [, b]) => n + b.length, 0);
  const f = new Uint8Array(54 + extBytes + o.l4.length);
  f.set(mac(o.dstMac), 0);
  f.set(mac(o.srcMac), 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  new DataView(f.buffer).setUint16(18, extBytes + o.l4.length);
  f[20] = ext.length > 0 ? ext[0]![0] : o.protocol;
  f[21] = 64;
  f.set(ipv6Bytes(o.src), 22);
  f.set(ipv6Bytes(o.dst), 38);
  let at = 54;
  ext.forEach(([, b], i) => {
    const h = b.slice();
    h[0] = i + 1 < ext.length ? ext[i + 1]![0] : o.protocol; // each header names the next
    f.set(h, at);
    at += h.length;
  });
  f.set(o.l4, at);
  return f;
}

/** The first bytes of a TCP (flags given) or UDP header with these ports. */
export function l4Header(srcPort: number, dstPort: number, tcpFlags: number | null = null): Uint8Array {
  const b = new Uint8Array(tcpFlags === null ? 8 : 20);
  const v = new DataView(b.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  if (tcpFlags !== null) {
    b[12] = 5 << 4;
    b[13] = tcpFlags;
  }
  return b;
}
