// The switch's own host on its network: answers ARP and ping for the gateway address, DHCP, and
// DNS for the names of the VMs. It is attached to the switch as an ordinary access port. With a
// NAT uplink it is also the router: what VMs send it for elsewhere goes to the NatRouter.

import {
  BROADCAST_MAC,
  buildIpv4Frame,
  buildUdpFrame,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  internetChecksum,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  parseIpv4,
  parseIpv4Packet,
  parseL2,
  prefixMask,
  type Ipv4View,
} from "../ethernet.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpServer } from "./dhcp.js";
import { answerDns, dnsQuestionName } from "./dns.js";
import type { NatRouter } from "./nat.js";
import type { NetworkConfig } from "./network.js";

const DNS_PORT = 53;

export interface ServicesCounters {
  arpReplies: number;
  dhcpReplies: number;
  dnsReplies: number;
  pingReplies: number;
}

export class NetworkServices {
  readonly mac: Uint8Array;
  readonly dhcp: DhcpServer | null;
  readonly counters: ServicesCounters = { arpReplies: 0, dhcpReplies: 0, dnsReplies: 0, pingReplies: 0 };
  /** The NAT uplink, when the network has one: it routes what is not for this host. */
  private nat: NatRouter | null = null;
  /** VM names announced by their ports, by MAC. */
  private readonly names = new Map<string, string>();

  constructor(
    readonly config: NetworkConfig,
    /** Sends a frame from this host into the switch. */
    private readonly send: (frame: Uint8Array) => void,
    now: () => number = () => Date.now(),
  ) {
    // A locally administered address derived from the gateway address.
    const g = config.gateway;
    this.mac = new Uint8Array([0x52, 0x54, 0xfe, (g >>> 16) & 255, (g >>> 8) & 255, g & 255]);
    const statics = new Map<string, number>();
    for (const [mac, ip] of Object.entries(config.staticLeases)) statics.set(mac, parseIpv4(ip)!);
    this.dhcp =
      config.dhcp === null
        ? null
        : new DhcpServer(
            {
              serverIp: g,
              netmask: prefixMask(config.prefix),
              router: g,
              dns: config.dns ? g : null,
              domain: config.domain,
              rangeStart: config.dhcp.start,
              rangeEnd: config.dhcp.end,
              leaseSeconds: config.leaseSeconds,
              mtu: config.mtu ?? null,
              staticLeases: statics,
            },
            now,
          );
  }

  attachNat(nat: NatRouter): void {
    this.nat = nat;
  }

  /** A VM announced its name for a MAC (from its port's hello). */
  registerName(mac: string, name: string): void {
    this.names.set(mac, name.toLowerCase());
  }

  forgetName(mac: string): void {
    this.names.delete(mac);
  }

  /** The address of a VM name (with or without the network's domain), or null. */
  lookup(fqdn: string): number | null {
    const suffix = `.${this.config.domain}`;
    const name = fqdn.endsWith(suffix) ? fqdn.slice(0, -suffix.length) : fqdn;
    if (name === "gateway") return this.config.gateway;
    const leases = this.dhcp?.list() ?? [];
    for (const [mac, n] of this.names) {
      if (n !== name) continue;
      const lease = leases.find((l) => l.mac === mac);
      if (lease) return lease.ip;
      const fixed = this.config.staticLeases[mac];
      if (fixed !== undefined) return parseIpv4(fixed);
    }
    for (const l of leases) if (l.hostname === name) return l.ip;
    return null;
  }

  /** A frame the switch delivered to this host; always taken. */
  input(frame: Uint8Array): boolean {
    const l2 = parseL2(frame);
    if (l2 === null || l2.vlan !== null) return true;
    if (l2.etherType === ETHERTYPE_ARP) this.arp(frame);
    else if (l2.etherType === ETHERTYPE_IPV4) this.ipv4(frame);
    return true;
  }

  private arp(f: Uint8Array): void {
    // Ethernet/IPv4 ARP request (op 1) for our address.
    if (f.length < 42 || f[14] !== 0 || f[15] !== 1 || f[16] !== 8 || f[17] !== 0 || f[18] !== 6 || f[19] !== 4 || f[21] !== 1) return;
    const target = ((f[38]! << 24) | (f[39]! << 16) | (f[40]! << 8) | f[41]!) >>> 0;
    if (target !== this.config.gateway) return;
    const r = new Uint8Array(42);
    r.set(f.subarray(6, 12), 0);
    r.set(this.mac, 6);
    r.set(f.subarray(12, 22), 12);
    r[21] = 2;
    r.set(this.mac, 22);
    r.set(f.subarray(38, 42), 28);
    r.set(f.subarray(22, 32), 32); // sender MAC and IP become the target
    this.counters.arpReplies++;
    this.send(r);
  }

  private ipv4(f: Uint8Array): void {
    const ip = parseIpv4Packet(f, 14);
    if (ip === null) return;
    const l4 = ip.offset + ip.headerBytes;
    const end = ip.offset + ip.totalLength;
    const g = this.config.gateway;
    const first = ip.fragmentOffset === 0;
    if (first && ip.protocol === IPPROTO_UDP && end >= l4 + 8) {
      const payload = f.subarray(l4 + 8, end);
      if (ip.dstPort === DHCP_SERVER_PORT && this.dhcp !== null && (ip.dst === 0xffffffff || ip.dst === g)) {
        this.answerDhcp(payload);
        return;
      }
      if (ip.dstPort === DNS_PORT && this.config.dns && ip.dst === g) {
        const name = dnsQuestionName(payload);
        if (this.nat?.dnsServer != null && name !== null && !this.isLocalName(name)) this.nat.fromVm(f, { toDns: true });
        else this.answerDnsLocally(f, ip, payload);
        return;
      }
    } else if (first && ip.protocol === IPPROTO_ICMP && ip.dst === g && ip.srcPort === 8 && end >= l4 + 8) {
      this.answerPing(f, ip, l4, end);
      return;
    }
    // Anything else sent to our MAC is routed: outside the network, or to the host at the gateway address.
    if (this.nat !== null && sameMac(f, 0, this.mac)) this.nat.fromVm(f);
  }

  /** Names the switch answers itself: its domain, single labels (VM names), and anything it knows. */
  private isLocalName(name: string): boolean {
    const d = this.config.domain;
    return !name.includes(".") || name === d || name.endsWith(`.${d}`) || this.lookup(name) !== null;
  }

  private answerDhcp(payload: Uint8Array): void {
    const r = this.dhcp!.handle(payload);
    if (r === null) return;
    this.counters.dhcpReplies++;
    const g = this.config.gateway;
    this.send(
      buildUdpFrame({
        srcMac: this.mac,
        dstMac: r.broadcast ? BROADCAST_MAC : r.clientMac,
        src: g,
        dst: r.broadcast ? 0xffffffff : r.yiaddr,
        srcPort: DHCP_SERVER_PORT,
        dstPort: DHCP_CLIENT_PORT,
        payload: r.payload,
      }),
    );
  }

  private answerDnsLocally(f: Uint8Array, ip: Ipv4View, payload: Uint8Array): void {
    const answer = answerDns(payload, (n) => this.lookup(n));
    if (answer === null) return;
    this.counters.dnsReplies++;
    const g = this.config.gateway;
    this.send(buildUdpFrame({ srcMac: this.mac, dstMac: f.subarray(6, 12), src: g, dst: ip.src, srcPort: DNS_PORT, dstPort: ip.srcPort, payload: answer }));
  }

  /** Echo request → echo reply with the same identifier, sequence and data. */
  private answerPing(f: Uint8Array, ip: Ipv4View, l4: number, end: number): void {
    const body = f.slice(l4, end);
    body[0] = 0;
    body[2] = body[3] = 0;
    const c = internetChecksum(body, 0, body.length);
    body[2] = c >> 8;
    body[3] = c & 0xff;
    const r = buildIpv4Frame({ srcMac: this.mac, dstMac: f.subarray(6, 12), src: this.config.gateway, dst: ip.src, protocol: IPPROTO_ICMP, l4Bytes: body.length });
    r.set(body, 34);
    this.counters.pingReplies++;
    this.send(r);
  }
}

function sameMac(f: Uint8Array, at: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (f[at + i] !== mac[i]) return false;
  return true;
}
