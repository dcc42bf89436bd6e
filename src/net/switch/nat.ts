// A switch network's NAT uplink: the switch's gateway routes what VMs send outside the network
// through one passt instance, which serves a single guest address. Every flow is rewritten to come
// from that address and a port of its own (TCP, UDP; the identifier for ICMP echo), replies are
// rewritten back, checksums are updated incrementally (RFC 1624). The uplink address comes from
// passt's DHCP; ARP for it is answered. Two redirects live here too: DNS queries the switch cannot
// answer go to passt's DNS server, and other traffic to the gateway address goes to passt's
// router address, which passt maps to the host's loopback (the host is the gateway, as in
// libvirt's default network).

import type { NetBackend } from "../backend.js";
import {
  adjustChecksum,
  adjustChecksum32,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  inCidr,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4ToString,
  parseIpv4Packet,
  parseL2,
  type Ipv4View,
} from "../ethernet.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from "./dhcp.js";
import { isNatProtocol, NatTable, TCP_RST, type NatTableOptions } from "./nat_table.js";
import { UplinkDhcpClient, type UplinkLease } from "./uplink_dhcp.js";

const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;
/** How often the uplink's DHCP is retried until passt answers, and idle flows are swept. */
const TICK_MS = 1000;
const SWEEP_EVERY_TICKS = 10;

export interface NatCounters {
  /** Packets translated from the VMs to the uplink, and back. */
  outPackets: number;
  inPackets: number;
  /** VM packets while passt has not given the uplink an address yet. */
  dropsNoUplink: number;
  /** New flows refused because the table or the port space is full. */
  dropsTableFull: number;
  /** Uplink packets that belong to no flow (or come from another remote end than the flow's). */
  dropsUnmatched: number;
  /** Fragments after the first from the uplink (they carry no port to find their flow by). */
  dropsFragment: number;
  /** Truncated headers, sources outside the network, TTL run out, protocols the NAT does not carry. */
  dropsInvalid: number;
  /** The uplink's queue was full. */
  dropsUplinkFull: number;
  arpReplies: number;
}

export interface NatRouterOptions {
  /** The switch network: its subnet and the gateway address the VMs route through. */
  network: { network: number; prefix: number; gateway: number };
  /** The gateway's MAC: the source of what the NAT sends to the VMs, and its MAC on the uplink. */
  mac: Uint8Array;
  /** Sends a frame into the switch. */
  sendInside: (frame: Uint8Array) => void;
  /** passt's socket (any NetBackend in tests). */
  uplink: NetBackend;
  table?: NatTableOptions;
  log?: (msg: string) => void;
}

export class NatRouter {
  readonly table: NatTable;
  readonly counters: NatCounters = {
    outPackets: 0,
    inPackets: 0,
    dropsNoUplink: 0,
    dropsTableFull: 0,
    dropsUnmatched: 0,
    dropsFragment: 0,
    dropsInvalid: 0,
    dropsUplinkFull: 0,
    arpReplies: 0,
  };
  private readonly dhcp: UplinkDhcpClient;
  private timer: NodeJS.Timeout | null = null;
  private readonly log: (msg: string) => void;

  constructor(private readonly o: NatRouterOptions) {
    this.table = new NatTable(o.table);
    this.dhcp = new UplinkDhcpClient(o.mac);
    this.log = o.log ?? (() => {});
  }

  /** The uplink's address, router, DNS and passt's MAC; null until passt has answered DHCP. */
  get lease(): UplinkLease | null {
    return this.dhcp.lease;
  }

  /** Where DNS queries the switch cannot answer itself go; null without an uplink. */
  get dnsServer(): number | null {
    return this.dhcp.lease?.dns[0] ?? null;
  }

  /** Starts reading the uplink and asking it for an address; `timers: false` leaves retries and sweeps to the caller (tests). */
  start(o: { timers?: boolean } = {}): void {
    this.o.uplink.start((f) => this.fromUplink(f));
    this.tick();
    if (o.timers === false) return;
    let ticks = 0;
    this.timer = setInterval(() => {
      this.tick();
      if (++ticks % SWEEP_EVERY_TICKS === 0) this.table.expire();
    }, TICK_MS);
    this.timer.unref();
  }

  /** Sends the uplink's pending DHCP message, if it has no address yet. */
  tick(): void {
    const f = this.dhcp.nextFrame();
    if (f !== null) this.o.uplink.send(f);
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.o.uplink.close();
  }

  /**
   * An IPv4 frame a VM sent to the gateway's MAC for an address outside the network, or for the
   * gateway address itself (then it goes to the host, or with `toDns` to the uplink's DNS server).
   */
  fromVm(frame: Uint8Array, o: { toDns?: boolean } = {}): void {
    const lease = this.dhcp.lease;
    if (lease === null) {
      this.counters.dropsNoUplink++;
      return;
    }
    const ip = parseIpv4Packet(frame, 14);
    const net = this.o.network;
    if (ip === null || !inCidr(ip.src, net) || ip.src === net.gateway || !isNatProtocol(ip.protocol)) {
      this.counters.dropsInvalid++;
      return;
    }
    let remoteIp = ip.dst;
    if (ip.dst === net.gateway) {
      const to = o.toDns ? this.dnsServer : lease.router;
      if (to === null) {
        this.counters.dropsInvalid++;
        return;
      }
      remoteIp = to;
    } else if (inCidr(ip.dst, net) || ip.dst >>> 28 >= 0xe || ip.dst === 0) {
      this.counters.dropsInvalid++; // local, multicast, broadcast or reserved: not for the outside
      return;
    }
    const out = frame.slice(0, 14 + ip.totalLength); // a copy: a flooded frame is shared with other ports
    if (ip.fragmentOffset !== 0) {
      // Later fragments carry no ports; the first one took the flow's port, these only need the addresses.
      if (!this.rewriteIp(out, ip, lease.address, remoteIp)) return;
    } else {
      const l4 = 14 + ip.headerBytes;
      const l4Bytes = ip.totalLength - ip.headerBytes;
      const isEcho = ip.protocol === IPPROTO_ICMP && ip.srcPort === ICMP_ECHO_REQUEST && l4Bytes >= 8;
      if (l4Bytes < minL4Bytes(ip.protocol) || (ip.protocol === IPPROTO_ICMP && !isEcho)) {
        this.counters.dropsInvalid++;
        return;
      }
      const guestPort = ip.protocol === IPPROTO_ICMP ? u16(out, l4 + 4) : ip.srcPort;
      const dstPort = ip.protocol === IPPROTO_ICMP ? 0 : ip.dstPort;
      let flow = this.table.lookupOutbound(ip.protocol, ip.src, guestPort, ip.dst, dstPort);
      if (flow === null) {
        if (ip.protocol === IPPROTO_TCP && ip.tcpFlags & TCP_RST) {
          this.counters.dropsUnmatched++; // a reset for a connection we never carried
          return;
        }
        flow = this.table.create({ protocol: ip.protocol, guestMac: frame.slice(6, 12), guestIp: ip.src, guestPort, dstIp: ip.dst, dstPort, remoteIp, remotePort: dstPort });
        if (flow === null) {
          this.counters.dropsTableFull++;
          return;
        }
      }
      this.table.touch(flow, "out", ip.tcpFlags);
      if (!this.rewriteIp(out, ip, lease.address, remoteIp)) return;
      this.rewriteL4(out, ip, { srcIp: ip.src, dstIp: ip.dst, newSrcIp: lease.address, newDstIp: remoteIp, srcPort: guestPort, newSrcPort: flow.natPort, dstPort, newDstPort: flow.remotePort });
    }
    out.set(lease.serverMac, 0);
    out.set(this.o.mac, 6);
    if (!this.o.uplink.send(out)) {
      this.counters.dropsUplinkFull++;
      return;
    }
    this.counters.outPackets++;
  }

  /** A frame from passt. */
  private fromUplink(frame: Uint8Array): void {
    const l2 = parseL2(frame);
    if (l2 === null || l2.vlan !== null) return;
    if (l2.etherType === ETHERTYPE_ARP) {
      this.arp(frame);
      return;
    }
    if (l2.etherType !== ETHERTYPE_IPV4) return;
    const ip = parseIpv4Packet(frame, 14);
    if (ip === null) {
      this.counters.dropsInvalid++;
      return;
    }
    const lease = this.dhcp.lease;
    if (lease === null) {
      if (ip.protocol === IPPROTO_UDP && ip.srcPort === DHCP_SERVER_PORT && ip.dstPort === DHCP_CLIENT_PORT && ip.totalLength >= ip.headerBytes + 8) {
        const next = this.dhcp.handle(frame.subarray(14 + ip.headerBytes + 8, 14 + ip.totalLength), frame.subarray(6, 12));
        if (next !== null) this.o.uplink.send(next);
        const l = this.dhcp.lease;
        if (l !== null) {
          this.log(`NAT uplink: passt gave us ${ipv4ToString(l.address)}; the host is at ${l.router === null ? "no address" : ipv4ToString(l.router)}, DNS at ${l.dns.map(ipv4ToString).join(", ") || "none"}`);
        }
      }
      return;
    }
    if (ip.dst !== lease.address) {
      this.counters.dropsUnmatched++;
      return;
    }
    if (ip.fragmentOffset !== 0) {
      this.counters.dropsFragment++;
      return;
    }
    if (!isNatProtocol(ip.protocol) || ip.totalLength - ip.headerBytes < minL4Bytes(ip.protocol)) {
      this.counters.dropsInvalid++;
      return;
    }
    const l4 = 14 + ip.headerBytes;
    if (ip.protocol === IPPROTO_ICMP && ip.srcPort !== ICMP_ECHO_REPLY) {
      this.counters.dropsUnmatched++; // ICMP errors are not translated
      return;
    }
    const natPort = ip.protocol === IPPROTO_ICMP ? u16(frame, l4 + 4) : ip.dstPort;
    const remotePort = ip.protocol === IPPROTO_ICMP ? 0 : ip.srcPort;
    const flow = this.table.lookupInbound(ip.protocol, natPort, ip.src, remotePort);
    if (flow === null) {
      this.counters.dropsUnmatched++;
      return;
    }
    this.table.touch(flow, "in", ip.tcpFlags);
    const out = frame.slice(0, 14 + ip.totalLength);
    if (!this.rewriteIp(out, ip, flow.dstIp, flow.guestIp)) return;
    this.rewriteL4(out, ip, { srcIp: ip.src, dstIp: ip.dst, newSrcIp: flow.dstIp, newDstIp: flow.guestIp, srcPort: remotePort, newSrcPort: flow.dstPort, dstPort: natPort, newDstPort: flow.guestPort, inbound: true });
    out.set(flow.guestMac, 0);
    out.set(this.o.mac, 6);
    this.counters.inPackets++;
    this.o.sendInside(out);
  }

  /** ARP requests from passt for the uplink address get our MAC. */
  private arp(f: Uint8Array): void {
    const lease = this.dhcp.lease;
    if (lease === null || f.length < 42 || u16(f, 14) !== 1 || u16(f, 16) !== ETHERTYPE_IPV4 || f[18] !== 6 || f[19] !== 4 || u16(f, 20) !== 1) return;
    if (u32(f, 38) !== lease.address) return;
    const r = new Uint8Array(42);
    r.set(f.subarray(6, 12), 0);
    r.set(this.o.mac, 6);
    r.set(f.subarray(12, 22), 12);
    r[21] = 2;
    r.set(this.o.mac, 22);
    r.set(f.subarray(38, 42), 28);
    r.set(f.subarray(22, 32), 32);
    this.counters.arpReplies++;
    this.o.uplink.send(r);
  }

  /** New addresses and a decremented TTL in the IP header of `f`, checksum updated; false (counted) when the TTL runs out. */
  private rewriteIp(f: Uint8Array, ip: Ipv4View, newSrc: number, newDst: number): boolean {
    const at = 14;
    const ttl = f[at + 8]!;
    if (ttl <= 1) {
      this.counters.dropsInvalid++;
      return false;
    }
    let c = u16(f, at + 10);
    c = adjustChecksum(c, (ttl << 8) | ip.protocol, ((ttl - 1) << 8) | ip.protocol);
    c = adjustChecksum32(c, ip.src, newSrc);
    c = adjustChecksum32(c, ip.dst, newDst);
    f[at + 8] = ttl - 1;
    put32(f, at + 12, newSrc);
    put32(f, at + 16, newDst);
    put16(f, at + 10, c);
    return true;
  }

  /** New ports (echo identifier) and the matching TCP/UDP/ICMP checksum update. */
  private rewriteL4(
    f: Uint8Array,
    ip: Ipv4View,
    a: { srcIp: number; dstIp: number; newSrcIp: number; newDstIp: number; srcPort: number; newSrcPort: number; dstPort: number; newDstPort: number; inbound?: boolean },
  ): void {
    const l4 = 14 + ip.headerBytes;
    if (ip.protocol === IPPROTO_ICMP) {
      // The identifier is the guest's end: the source on the way out, the destination on the way back.
      const [oldId, newId] = a.inbound ? [a.dstPort, a.newDstPort] : [a.srcPort, a.newSrcPort];
      put16(f, l4 + 2, adjustChecksum(u16(f, l4 + 2), oldId, newId));
      put16(f, l4 + 4, newId);
      return;
    }
    put16(f, l4, a.newSrcPort);
    put16(f, l4 + 2, a.newDstPort);
    const at = ip.protocol === IPPROTO_TCP ? l4 + 16 : l4 + 6;
    const old = u16(f, at);
    if (ip.protocol === IPPROTO_UDP && old === 0) return; // no UDP checksum was sent: none to fix
    let c = adjustChecksum32(old, a.srcIp, a.newSrcIp);
    c = adjustChecksum32(c, a.dstIp, a.newDstIp);
    c = adjustChecksum(c, a.srcPort, a.newSrcPort);
    c = adjustChecksum(c, a.dstPort, a.newDstPort);
    if (ip.protocol === IPPROTO_UDP && c === 0) c = 0xffff; // 0 means "no checksum" in UDP
    put16(f, at, c);
  }
}

function minL4Bytes(protocol: number): number {
  return protocol === IPPROTO_TCP ? 20 : 8;
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 255;
  b[at + 1] = v & 255;
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 255;
  b[at + 2] = (v >>> 8) & 255;
  b[at + 3] = v & 255;
}
