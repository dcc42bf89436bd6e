// The DHCP client the NAT runs on its uplink: passt serves one guest address, and hands it out by
// DHCP along with its router (whose address passt maps to the host's loopback), DNS server and
// MTU. DISCOVER → OFFER → REQUEST → ACK (RFC 2131); a NAK starts over.

import { BROADCAST_MAC, buildUdpFrame } from "../ethernet.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPREQUEST, parseDhcp } from "./dhcp.js";

const MAGIC_COOKIE = 0x63825363;
const OPT_SUBNET_MASK = 1;
const OPT_ROUTER = 3;
const OPT_DNS = 6;
const OPT_MTU = 26;
const OPT_REQUESTED_IP = 50;
const OPT_MESSAGE_TYPE = 53;
const OPT_SERVER_ID = 54;
const OPT_PARAMETERS = 55;

export interface UplinkLease {
  address: number;
  netmask: number | null;
  router: number | null;
  dns: number[];
  mtu: number | null;
  /** The MAC the server (passt) answers from: where every frame for the outside goes. */
  serverMac: Uint8Array;
}

export class UplinkDhcpClient {
  private offered: { address: number; serverId: number | null } | null = null;
  lease: UplinkLease | null = null;

  constructor(
    private readonly mac: Uint8Array,
    private readonly xid: number = (Math.random() * 0x100000000) >>> 0,
  ) {}

  /** The frame to send now: DISCOVER, or REQUEST after an offer; null once bound. */
  nextFrame(): Uint8Array | null {
    if (this.lease !== null) return null;
    if (this.offered === null) return this.frame(DHCPDISCOVER, null, null);
    return this.frame(DHCPREQUEST, this.offered.address, this.offered.serverId);
  }

  /** A DHCP reply from the uplink (its UDP payload and the frame's source MAC); returns the frame to send next, if any. */
  handle(payload: Uint8Array, srcMac: Uint8Array): Uint8Array | null {
    const m = parseDhcp(payload);
    if (m === null || m.op !== 2 || m.xid !== this.xid || this.lease !== null) return null;
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const yiaddr = v.getUint32(16);
    const type = m.options.get(OPT_MESSAGE_TYPE)?.[0];
    if (type === DHCPOFFER && this.offered === null && yiaddr !== 0) {
      this.offered = { address: yiaddr, serverId: u32(m.options.get(OPT_SERVER_ID)) };
      return this.nextFrame();
    }
    if (type === DHCPACK && this.offered !== null && yiaddr !== 0) {
      const dns = m.options.get(OPT_DNS);
      const list: number[] = [];
      for (let i = 0; dns !== undefined && i + 4 <= dns.length; i += 4) list.push(u32(dns.subarray(i, i + 4))!);
      const mtu = m.options.get(OPT_MTU);
      this.lease = {
        address: yiaddr,
        netmask: u32(m.options.get(OPT_SUBNET_MASK)),
        router: u32(m.options.get(OPT_ROUTER)?.subarray(0, 4)),
        dns: list,
        mtu: mtu?.length === 2 ? (mtu[0]! << 8) | mtu[1]! : null,
        serverMac: srcMac.slice(0, 6),
      };
      return null;
    }
    if (type === DHCPNAK) {
      this.offered = null;
      return this.nextFrame();
    }
    return null;
  }

  private frame(type: number, requested: number | null, serverId: number | null): Uint8Array {
    const opts: number[] = [OPT_MESSAGE_TYPE, 1, type, OPT_PARAMETERS, 4, OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_MTU];
    if (requested !== null) opts.push(OPT_REQUESTED_IP, 4, ...bytes4(requested));
    if (serverId !== null) opts.push(OPT_SERVER_ID, 4, ...bytes4(serverId));
    opts.push(255);
    const p = new Uint8Array(240 + opts.length);
    const v = new DataView(p.buffer);
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    v.setUint32(4, this.xid);
    v.setUint16(10, 0x8000); // answer by broadcast: we have no address yet
    p.set(this.mac, 28);
    v.setUint32(236, MAGIC_COOKIE);
    p.set(opts, 240);
    return buildUdpFrame({ srcMac: this.mac, dstMac: BROADCAST_MAC, src: 0, dst: 0xffffffff, srcPort: DHCP_CLIENT_PORT, dstPort: DHCP_SERVER_PORT, payload: p });
  }
}

function u32(o: Uint8Array | undefined): number | null {
  return o !== undefined && o.length === 4 ? ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0 : null;
}

function bytes4(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}
