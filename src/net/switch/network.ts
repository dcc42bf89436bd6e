// The configuration of a switch's network: its subnet and the built-in services on one VLAN
// (gateway address answering ARP and ping, DHCP, DNS for the VMs' names, optionally NAT).

import { ipv4ToString, parseCidr, parseIpv4, parseMac, prefixMask } from "../ethernet.js";
import { DEFAULT_VLAN, isValidVlan } from "./vlan.js";

export interface NetworkConfig {
  /** Network address and prefix, e.g. 10.0.3.0/24. */
  network: number;
  prefix: number;
  /** The switch's own address on the network: gateway, DHCP and DNS server. */
  gateway: number;
  /** VLAN on which the built-in services answer. */
  vlan: number;
  dhcp: { start: number; end: number } | null;
  dns: boolean;
  domain: string;
  /** MAC ("52:54:00:..") → address. */
  staticLeases: Record<string, string>;
  leaseSeconds: number;
  /** Interface MTU announced by DHCP: large by default (as passt does), so guests move data in few big frames. */
  mtu: number;
  /** Route to the outside through a NAT in front of one passt (absent in configs saved before it existed). */
  nat?: boolean;
}

/** 65520: the largest 802.3 frame payload rounded down to 32-bit words, passt's default. */
export const DEFAULT_MTU = 65520;

export class NetworkConfigError extends Error {
  override name = "NetworkConfigError";
}

/** The network a switch gets when nothing else is said: 10.0.3.0/24, gateway .1, DHCP .100-.199. */
export function defaultNetworkConfig(): NetworkConfig {
  return {
    network: parseIpv4("10.0.3.0")!,
    prefix: 24,
    gateway: parseIpv4("10.0.3.1")!,
    vlan: DEFAULT_VLAN,
    dhcp: { start: parseIpv4("10.0.3.100")!, end: parseIpv4("10.0.3.199")! },
    dns: true,
    domain: "nodevisor",
    staticLeases: {},
    leaseSeconds: 86400,
    mtu: DEFAULT_MTU,
    nat: false,
  };
}

export interface NetworkOptions {
  subnet?: string;
  dhcpRange?: string;
  noDhcp?: boolean;
  noDns?: boolean;
  vlan?: string;
  staticLeases?: string[];
  domain?: string;
  mtu?: string;
  nat?: boolean;
}

/** Builds a network config from `switch create` options, one sentence per mistake. */
export function networkConfigFrom(o: NetworkOptions): NetworkConfig {
  const c = defaultNetworkConfig();
  if (o.subnet !== undefined) {
    const s = parseCidr(o.subnet);
    if (s === null || s.prefix > 30 || s.prefix < 8) {
      throw new NetworkConfigError(`Cannot use the subnet "${o.subnet}": write an IPv4 network with a prefix from /8 to /30, e.g. 10.0.5.0/24.`);
    }
    c.network = s.network;
    c.prefix = s.prefix;
    c.gateway = s.network + 1;
    const size = 2 ** (32 - s.prefix);
    // The upper half of the subnet, below the broadcast address, as libvirt's default does for /24.
    c.dhcp = { start: s.network + Math.max(2, Math.floor(size / 2) - 28), end: s.network + size - 2 };
  }
  if (o.dhcpRange !== undefined) {
    const [a, b] = o.dhcpRange.split("-");
    const start = parseIpv4(a ?? "");
    const end = parseIpv4(b ?? "");
    if (start === null || end === null || end < start || !inNet(c, start) || !inNet(c, end)) {
      throw new NetworkConfigError(`Cannot use the DHCP range "${o.dhcpRange}": write FIRST-LAST addresses inside ${ipv4ToString(c.network)}/${c.prefix}.`);
    }
    c.dhcp = { start, end };
  }
  if (o.noDhcp) c.dhcp = null;
  if (o.nat) c.nat = true;
  if (o.noDns) c.dns = false;
  if (o.domain !== undefined) {
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(o.domain)) throw new NetworkConfigError(`Cannot use the domain "${o.domain}": use letters, digits, dots and dashes.`);
    c.domain = o.domain.toLowerCase();
  }
  if (o.mtu !== undefined) {
    const m = Number(o.mtu);
    if (!Number.isInteger(m) || m < 576 || m > DEFAULT_MTU) throw new NetworkConfigError(`Cannot use the MTU "${o.mtu}": choose a whole number from 576 to ${DEFAULT_MTU}.`);
    c.mtu = m;
  }
  if (o.vlan !== undefined) {
    const v = Number(o.vlan);
    if (!isValidVlan(v)) throw new NetworkConfigError(`Cannot put the switch's services on VLAN "${o.vlan}": choose a VLAN from 1 to 4094.`);
    c.vlan = v;
  }
  for (const s of o.staticLeases ?? []) {
    const [mac, ip] = s.split("=");
    const addr = parseIpv4(ip ?? "");
    if (parseMac(mac ?? "") === null || addr === null || !inNet(c, addr)) {
      throw new NetworkConfigError(`Cannot use the static lease "${s}": write MAC=ADDRESS, e.g. 52:54:00:00:00:10=${ipv4ToString(c.network + 10)}, with the address inside the subnet.`);
    }
    c.staticLeases[mac!.toLowerCase()] = ip!;
  }
  return c;
}

export function inNet(c: Pick<NetworkConfig, "network" | "prefix">, addr: number): boolean {
  return ((addr & prefixMask(c.prefix)) >>> 0) === c.network;
}
