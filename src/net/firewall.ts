// A per-NIC stateful firewall and anti-spoofing filter over Ethernet frames. Rules are ordered
// (first match wins) by direction, protocol, remote CIDR and remote port range, with a default
// policy per direction. A connection allowed one way lets its replies back (connection tracking
// on the 5-tuple, expiring when idle). "out" means from the guest, "in" towards it.

import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  inCidr,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  macToString,
  parseIpv4Packet,
  parseIpv6Packet,
  parseL2,
} from "./ethernet.js";
import type { DropReason, NicPolicy } from "./nic_policy.js";

export interface FirewallRule {
  action: "allow" | "deny";
  direction: "in" | "out";
  protocol: "tcp" | "udp" | "icmp" | "any";
  /** The remote end's address range; null for any. */
  cidr: { network: number; prefix: number } | null;
  /** The destination port range of the first packet (tcp/udp): the guest's port for "in", the remote one for "out"; null for any. */
  ports: [number, number] | null;
}

export interface FirewallConfig {
  rules: FirewallRule[];
  defaultIn: "allow" | "deny";
  defaultOut: "allow" | "deny";
}

const PROTO_NUM = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, icmp: IPPROTO_ICMP } as const;
const FLOW_IDLE_MS = 300_000;
const MAX_FLOWS = 65536;

export interface NicFilterOptions {
  mac: Uint8Array;
  firewall: FirewallConfig | null;
  antiSpoof: boolean;
  /** Addresses the guest may send from besides those learnt from DHCP. */
  addresses?: number[];
  now?: () => number;
}

export class NicFilter implements NicPolicy {
  private readonly mac: string;
  private readonly addresses = new Set<number>();
  private readonly flows = new Map<string, number>();
  private firewall: FirewallConfig | null;
  private readonly antiSpoof: boolean;
  private readonly now: () => number;

  constructor(o: NicFilterOptions) {
    this.mac = macToString(o.mac);
    this.firewall = o.firewall;
    this.antiSpoof = o.antiSpoof;
    this.now = o.now ?? (() => performance.now());
    for (const a of o.addresses ?? []) this.addresses.add(a);
  }

  /** The addresses the guest may use (given by DHCP, seen on the way in, or configured). */
  get allowedAddresses(): number[] {
    return [...this.addresses];
  }

  setFirewall(f: FirewallConfig | null): void {
    this.firewall = f;
    this.flows.clear();
  }

  checkTx(frame: Uint8Array): DropReason | null {
    const l2 = parseL2(frame);
    if (l2 === null) return "malformed";
    if (this.antiSpoof) {
      if (macToString(frame, 6) !== this.mac) return "spoof";
      if (l2.etherType === ETHERTYPE_ARP) {
        const o = l2.payloadOffset;
        if (frame.length < o + 28) return "malformed";
        if (macToString(frame, o + 8) !== this.mac) return "spoof";
        const spa = readU32(frame, o + 14);
        if (spa !== 0 && this.addresses.size > 0 && !this.addresses.has(spa)) return "spoof";
      }
    }
    if (l2.etherType === ETHERTYPE_IPV6) return this.ipv6("out", frame, l2.payloadOffset);
    if (l2.etherType !== ETHERTYPE_IPV4) return null;
    const ip = parseIpv4Packet(frame, l2.payloadOffset);
    if (ip === null) return "malformed";
    // Until the guest has been given an address only the MAC is checked (and DHCP from 0.0.0.0 must pass).
    if (this.antiSpoof && ip.src !== 0 && this.addresses.size > 0 && !this.addresses.has(ip.src)) return "spoof";
    if (this.firewall === null) return null;
    return this.decide("out", ip.protocol, ip.dst, ip.srcPort, ip.dstPort, ip.src, ip.fragmentOffset !== 0);
  }

  checkRx(frame: Uint8Array): DropReason | null {
    const l2 = parseL2(frame);
    if (l2 === null) return "malformed";
    if (l2.etherType === ETHERTYPE_IPV6) return this.ipv6("in", frame, l2.payloadOffset);
    if (l2.etherType !== ETHERTYPE_IPV4) return null;
    const ip = parseIpv4Packet(frame, l2.payloadOffset);
    if (ip === null) return this.firewall === null ? null : "malformed";
    this.snoopDhcp(frame, ip);
    if (this.firewall === null) return null;
    return this.decide("in", ip.protocol, ip.src, ip.dstPort, ip.srcPort, ip.dst, ip.fragmentOffset !== 0);
  }

  /** IPv6 is tracked like IPv4; neighbour discovery and MLD always pass, as ARP does. Rules with an (IPv4) address never match it. */
  private ipv6(dir: "in" | "out", frame: Uint8Array, offset: number): DropReason | null {
    if (this.firewall === null) return null;
    const ip = parseIpv6Packet(frame, offset);
    if (ip === null) return "malformed";
    if (ip.protocol === IPPROTO_ICMPV6 && isLinkControl(ip.srcPort)) return null;
    const [local, remote] = dir === "out" ? [ip.src, ip.dst] : [ip.dst, ip.src];
    const [localPort, remotePort] = dir === "out" ? [ip.srcPort, ip.dstPort] : [ip.dstPort, ip.srcPort];
    return this.decide(dir, ip.protocol, remote, localPort, remotePort, local, ip.laterFragment);
  }

  /** The address in a DHCP ACK for our MAC becomes one the guest may send from. */
  private snoopDhcp(frame: Uint8Array, ip: { protocol: number; srcPort: number; dstPort: number; offset: number; headerBytes: number }): void {
    if (ip.protocol !== IPPROTO_UDP || ip.srcPort !== 67 || ip.dstPort !== 68) return;
    const d = ip.offset + ip.headerBytes + 8;
    if (frame.length < d + 240 || macToString(frame, d + 28) !== this.mac) return;
    // Option 53 = 5 (ACK): scan the options.
    for (let i = d + 240; i + 1 < frame.length; ) {
      const code = frame[i]!;
      if (code === 255) break;
      if (code === 0) {
        i++;
        continue;
      }
      if (code === 53 && frame[i + 2] === 5) {
        const yiaddr = readU32(frame, d + 16);
        if (yiaddr !== 0) this.addresses.add(yiaddr);
        return;
      }
      i += 2 + frame[i + 1]!;
    }
  }

  /** local/remote ports: for "out" the guest's port is srcPort; for "in" it is dstPort. */
  /** Addresses are IPv4 numbers or IPv6 keys (strings), which no rule's CIDR matches. */
  private decide(dir: "in" | "out", proto: number, remote: number | string, localPort: number, remotePort: number, local: number | string, fragment: boolean): DropReason | null {
    const fw = this.firewall!;
    const t = this.now();
    const icmp = proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
    const key = `${proto}/${local}/${icmp ? 0 : localPort}/${remote}/${icmp ? 0 : remotePort}`;
    const seen = this.flows.get(key);
    if (seen !== undefined && t - seen < FLOW_IDLE_MS) {
      this.flows.set(key, t);
      return null;
    }
    let verdict: "allow" | "deny" = dir === "in" ? fw.defaultIn : fw.defaultOut;
    for (const r of fw.rules) {
      if (r.direction !== dir) continue;
      if (r.protocol !== "any" && PROTO_NUM[r.protocol] !== proto && !(r.protocol === "icmp" && proto === IPPROTO_ICMPV6)) continue;
      if (r.cidr !== null && (typeof remote !== "number" || !inCidr(remote, r.cidr))) continue;
      // A rule's ports are the service's: the guest's port for "in", the remote one for "out".
      const port = dir === "in" ? localPort : remotePort;
      if (r.ports !== null && (fragment || port < r.ports[0] || port > r.ports[1])) continue;
      verdict = r.action;
      break;
    }
    if (verdict === "deny") return "firewall";
    if (this.flows.size >= MAX_FLOWS) {
      for (const [k, at] of this.flows) if (t - at >= FLOW_IDLE_MS) this.flows.delete(k);
      if (this.flows.size >= MAX_FLOWS) this.flows.clear();
    }
    this.flows.set(key, t);
    return null;
  }
}

/** ICMPv6 types the link needs whatever the rules say: MLD (130-132, 143) and neighbour discovery (133-137). */
function isLinkControl(type: number): boolean {
  return (type >= 130 && type <= 137) || type === 143;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
