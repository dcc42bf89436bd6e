// A DHCP server (RFC 2131/2132) for one switch network: a dynamic range, static leases by MAC,
// router and DNS options. It answers DHCP messages (the UDP payload); the responder does the
// Ethernet/IP/UDP around them. Leases are kept in memory for the life of the switch.

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

const MAGIC_COOKIE = 0x63825363;
const OP_REQUEST = 1;
const OP_REPLY = 2;
export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

const OPT_PAD = 0;
const OPT_SUBNET_MASK = 1;
const OPT_ROUTER = 3;
const OPT_DNS = 6;
const OPT_HOSTNAME = 12;
const OPT_DOMAIN = 15;
const OPT_MTU = 26;
const OPT_BROADCAST = 28;
const OPT_REQUESTED_IP = 50;
const OPT_LEASE_TIME = 51;
const OPT_MESSAGE_TYPE = 53;
const OPT_SERVER_ID = 54;
const OPT_END = 255;
const FIXED_BYTES = 236;

export interface DhcpConfig {
  /** The server's own address (also the router and DNS server it announces). */
  serverIp: number;
  netmask: number;
  /** Announced router; null for an isolated network without a gateway. */
  router: number | null;
  dns: number | null;
  domain: string | null;
  rangeStart: number;
  rangeEnd: number;
  leaseSeconds: number;
  /** Interface MTU to announce, or null. */
  mtu?: number | null;
  /** Fixed addresses by MAC ("52:54:00:..."). */
  staticLeases: ReadonlyMap<string, number>;
}

export interface DhcpLease {
  mac: string;
  ip: number;
  hostname: string | null;
  expiresAt: number;
}

export interface DhcpMessage {
  op: number;
  xid: number;
  flags: number;
  ciaddr: number;
  chaddr: Uint8Array;
  options: Map<number, Uint8Array>;
}

export function parseDhcp(b: Uint8Array): DhcpMessage | null {
  if (b.length < FIXED_BYTES + 4) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[1] !== 1 || b[2] !== 6) return null; // Ethernet hardware addresses only
  if (v.getUint32(FIXED_BYTES) !== MAGIC_COOKIE) return null;
  const options = new Map<number, Uint8Array>();
  let i = FIXED_BYTES + 4;
  while (i < b.length) {
    const code = b[i]!;
    if (code === OPT_END) break;
    if (code === OPT_PAD) {
      i++;
      continue;
    }
    if (i + 1 >= b.length) return null;
    const len = b[i + 1]!;
    if (i + 2 + len > b.length) return null;
    options.set(code, b.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return { op: b[0]!, xid: v.getUint32(4), flags: v.getUint16(10), ciaddr: v.getUint32(12), chaddr: b.slice(28, 34), options };
}

function macOf(chaddr: Uint8Array): string {
  return [...chaddr].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

function u32(o: Uint8Array | undefined): number | null {
  return o !== undefined && o.length === 4 ? ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0 : null;
}

export interface DhcpReply {
  /** The reply's UDP payload. */
  payload: Uint8Array;
  /** The address the reply is for (yiaddr), or 0. */
  yiaddr: number;
  /** Whether it must be broadcast (the client has no address yet, or asked for broadcast). */
  broadcast: boolean;
  clientMac: Uint8Array;
}

export class DhcpServer {
  private readonly leases = new Map<string, DhcpLease>();
  /** Addresses offered but not yet requested, so two clients are not offered the same one. */
  private readonly offers = new Map<string, { ip: number; until: number }>();

  constructor(
    readonly config: DhcpConfig,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Every current lease. */
  list(): DhcpLease[] {
    const t = this.now();
    return [...this.leases.values()].filter((l) => l.expiresAt > t);
  }

  leaseOf(mac: string): DhcpLease | null {
    const l = this.leases.get(mac);
    return l !== undefined && l.expiresAt > this.now() ? l : null;
  }

  /** Answers one DHCP message; null when there is nothing to say. */
  handle(payload: Uint8Array): DhcpReply | null {
    const m = parseDhcp(payload);
    if (m === null || m.op !== OP_REQUEST) return null;
    const type = m.options.get(OPT_MESSAGE_TYPE)?.[0];
    const mac = macOf(m.chaddr);
    const hostname = decodeHostname(m.options.get(OPT_HOSTNAME));
    switch (type) {
      case DHCPDISCOVER: {
        this.pruneOffers();
        const ip = this.choose(mac, u32(m.options.get(OPT_REQUESTED_IP)));
        if (ip === null) return null; // pool exhausted: stay silent, as ISC dhcpd does
        this.offers.set(mac, { ip, until: this.now() + 60_000 });
        return this.reply(m, DHCPOFFER, ip);
      }
      case DHCPREQUEST: {
        const serverId = u32(m.options.get(OPT_SERVER_ID));
        if (serverId !== null && serverId !== this.config.serverIp) {
          this.offers.delete(mac); // the client chose another server
          return null;
        }
        const wanted = u32(m.options.get(OPT_REQUESTED_IP)) ?? m.ciaddr;
        const ip = this.choose(mac, wanted);
        if (ip === null || ip !== wanted) return this.reply(m, DHCPNAK, 0);
        this.offers.delete(mac);
        this.leases.set(mac, { mac, ip, hostname, expiresAt: this.now() + this.config.leaseSeconds * 1000 });
        return this.reply(m, DHCPACK, ip);
      }
      case DHCPRELEASE:
      case DHCPDECLINE:
        this.leases.delete(mac);
        return null;
      case DHCPINFORM:
        return this.reply(m, DHCPACK, 0);
      default:
        return null;
    }
  }

  /** Forgets expired offers; a flood of DISCOVERs from made-up MACs cannot grow them past the pool's size. */
  private pruneOffers(): void {
    const t = this.now();
    for (const [m, o] of this.offers) if (o.until <= t) this.offers.delete(m);
  }

  /** The address for `mac`: its static lease, its current lease, the one it asks for if free, or the first free one. */
  private choose(mac: string, wanted: number | null): number | null {
    const fixed = this.config.staticLeases.get(mac);
    if (fixed !== undefined) return fixed;
    const current = this.leaseOf(mac);
    if (current !== null) return current.ip;
    const offered = this.offers.get(mac);
    if (offered !== undefined && offered.until > this.now()) return offered.ip;
    const { rangeStart, rangeEnd } = this.config;
    if (wanted !== null && wanted >= rangeStart && wanted <= rangeEnd && this.isFree(wanted, mac)) return wanted;
    for (let ip = rangeStart; ip <= rangeEnd; ip++) if (this.isFree(ip, mac)) return ip;
    return null;
  }

  private isFree(ip: number, mac: string): boolean {
    const t = this.now();
    for (const v of this.config.staticLeases.values()) if (v === ip) return false;
    for (const l of this.leases.values()) if (l.ip === ip && l.mac !== mac && l.expiresAt > t) return false;
    for (const [m, o] of this.offers) if (o.ip === ip && m !== mac && o.until > t) return false;
    return true;
  }

  private reply(m: DhcpMessage, type: number, yiaddr: number): DhcpReply {
    const c = this.config;
    const opts: number[] = [OPT_MESSAGE_TYPE, 1, type, OPT_SERVER_ID, 4, ...bytes4(c.serverIp)];
    if (type !== DHCPNAK) {
      if (type !== DHCPACK || yiaddr !== 0) opts.push(OPT_LEASE_TIME, 4, ...bytes4(c.leaseSeconds));
      opts.push(OPT_SUBNET_MASK, 4, ...bytes4(c.netmask));
      opts.push(OPT_BROADCAST, 4, ...bytes4(((c.serverIp & c.netmask) | ~c.netmask) >>> 0));
      if (c.router !== null) opts.push(OPT_ROUTER, 4, ...bytes4(c.router));
      if (c.mtu) opts.push(OPT_MTU, 2, (c.mtu >> 8) & 255, c.mtu & 255);
      if (c.dns !== null) opts.push(OPT_DNS, 4, ...bytes4(c.dns));
      if (c.domain !== null) {
        const d = new TextEncoder().encode(c.domain).subarray(0, 255);
        opts.push(OPT_DOMAIN, d.length, ...d);
      }
    }
    opts.push(OPT_END);
    const out = new Uint8Array(FIXED_BYTES + 4 + opts.length);
    const v = new DataView(out.buffer);
    out[0] = OP_REPLY;
    out[1] = 1;
    out[2] = 6;
    v.setUint32(4, m.xid);
    v.setUint16(10, m.flags & 0x8000);
    v.setUint32(12, type === DHCPINFORM ? m.ciaddr : 0);
    v.setUint32(16, yiaddr);
    v.setUint32(20, c.serverIp);
    out.set(m.chaddr, 28);
    v.setUint32(FIXED_BYTES, MAGIC_COOKIE);
    out.set(opts, FIXED_BYTES + 4);
    return { payload: out, yiaddr, broadcast: true, clientMac: m.chaddr };
  }

}

function bytes4(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

/** A client's hostname option as a DNS label, or null when it is not one. */
function decodeHostname(o: Uint8Array | undefined): string | null {
  if (o === undefined) return null;
  const s = new TextDecoder().decode(o).replace(/\0+$/, "").toLowerCase();
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(s) ? s : null;
}
