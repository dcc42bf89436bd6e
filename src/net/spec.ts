// `--net` specs: one virtual NIC each. Parsed here (not in the CLI) so the daemon can share them.
//   none | user[,hostfwd=tcp:[ADDR:]HOSTPORT-:GUESTPORT]... | switch=NAME[,vlan=N | ,trunk=N,M,...] | tap=IFNAME
// plus, in every mode: mac=, link=down, offload=off, spoof=on, rx-bps= tx-bps= rx-pps= tx-pps= (token buckets), and firewall
// rules allow=/deny=DIR:PROTO[:CIDR][:PORT[-PORT]] with policy-in= / policy-out=.

import { parseSize } from "../storage/sizes.js";
import { parseCidr, parseMac } from "./ethernet.js";
import { isValidVlan, type PortMode } from "./switch/vlan.js";
import { checkSwitchName } from "./switch/paths.js";
import type { FirewallConfig, FirewallRule } from "./firewall.js";
import type { NicLimits } from "./shaper.js";

export class NetSpecError extends Error {
  override name = "NetSpecError";
}

export interface HostForward {
  protocol: "tcp" | "udp";
  hostAddress: string | null;
  hostPort: number;
  guestPort: number;
}

export type NetMode =
  | { kind: "user"; hostForwards: HostForward[] }
  | { kind: "switch"; switchName: string; port: PortMode }
  | { kind: "tap"; ifname: string };

export interface NetConfig {
  mode: NetMode;
  /** "52:54:00:…"; derived from the VM name and NIC index when absent. */
  mac: string | null;
  linkUp: boolean;
  limits: NicLimits;
  firewall: FirewallConfig | null;
  /** Anti-spoofing: frames from the guest must come from its MAC (and its addresses once known). */
  antiSpoof: boolean;
  /** Offer checksum/TSO offloads to the guest (offload=off, to measure what they bring). */
  offloads: boolean;
}

const HELP = "Use --net none, user[,hostfwd=tcp:HOSTPORT-:GUESTPORT], switch=NAME[,vlan=N|,trunk=N,M] or tap=IFNAME, with optional mac=, rx-bps=, tx-bps=, rx-pps=, tx-pps=, allow=, deny=, policy-in=, policy-out=, spoof=on, offload=off, link=down";

/** Parses one --net value; null for "none". */
export function parseNetSpec(spec: string): NetConfig | null {
  const fail = (what: string): never => {
    throw new NetSpecError(`Cannot use --net ${spec}: ${what}. ${HELP}.`);
  };
  const tokens = spec.split(",");
  const head = tokens.shift()!;
  if (head === "none") {
    if (tokens.length > 0) fail(`"none" takes no options`);
    return null;
  }
  let mode: NetMode;
  const [kind, value] = head.split("=", 2) as [string, string | undefined];
  if (kind === "user" && value === undefined) mode = { kind: "user", hostForwards: [] };
  else if (kind === "switch" && value) {
    try {
      checkSwitchName(value);
    } catch (e) {
      fail((e as Error).message.replace(/\.$/, "").replace(/^Cannot/, "cannot"));
    }
    mode = { kind: "switch", switchName: value, port: { kind: "access", vlan: 1 } };
  } else if (kind === "tap" && value && /^[A-Za-z0-9_.-]{1,15}$/.test(value)) mode = { kind: "tap", ifname: value };
  else return fail(`"${head}" is not a network mode`);
  const c: NetConfig = { mode, mac: null, linkUp: true, limits: {}, firewall: null, antiSpoof: true, offloads: true };
  const fw = (): FirewallConfig => (c.firewall ??= { rules: [], defaultIn: "allow", defaultOut: "allow" });
  let vlanSet = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const [key, v] = t.split("=", 2) as [string, string | undefined];
    if (v === undefined || v === "") fail(`"${t}" needs a value (KEY=VALUE)`);
    const val = v!;
    switch (key) {
      case "mac": {
        const m = parseMac(val);
        if (m === null || (m[0]! & 1) === 1) fail(`mac=${val} is not a unicast MAC address like 52:54:00:12:34:56`);
        c.mac = val.toLowerCase();
        break;
      }
      case "link":
        if (val !== "up" && val !== "down") fail(`link= takes up or down`);
        c.linkUp = val === "up";
        break;
      case "offload":
        if (val !== "on" && val !== "off") fail(`offload= takes on or off`);
        c.offloads = val === "on";
        break;
      case "spoof":
        if (val !== "on" && val !== "off") fail(`spoof= takes on (spoofing allowed) or off`);
        c.antiSpoof = val === "off";
        break;
      case "hostfwd": {
        if (mode.kind !== "user") fail(`hostfwd= works only with user mode`);
        const m = /^(tcp|udp):(?:([0-9.]+):)?(\d+)-:(\d+)$/.exec(val);
        const hp = Number(m?.[3]);
        const gp = Number(m?.[4]);
        if (m === null || !(hp >= 1 && hp <= 65535) || !(gp >= 1 && gp <= 65535)) fail(`hostfwd=${val} is not PROTO:[ADDR:]HOSTPORT-:GUESTPORT, e.g. tcp:8080-:80`);
        (mode as { hostForwards: HostForward[] }).hostForwards.push({ protocol: m![1] as "tcp" | "udp", hostAddress: m![2] ?? null, hostPort: hp, guestPort: gp });
        break;
      }
      case "vlan":
      case "trunk": {
        if (mode.kind !== "switch") fail(`${key}= works only with switch mode`);
        if (vlanSet) fail(`give either one vlan= or one trunk=`);
        vlanSet = true;
        const ids = [val];
        // trunk=10,20,30: the numbers after trunk= belong to it.
        if (key === "trunk") while (i + 1 < tokens.length && /^\d+$/.test(tokens[i + 1]!)) ids.push(tokens[++i]!);
        const nums = ids.map(Number);
        if (!nums.every(isValidVlan)) fail(`VLAN ids must be whole numbers from 1 to 4094`);
        (mode as { port: PortMode }).port = key === "vlan" ? { kind: "access", vlan: nums[0]! } : { kind: "trunk", vlans: [...new Set(nums)] };
        break;
      }
      case "rx-bps":
      case "tx-bps":
      case "rx-pps":
      case "tx-pps": {
        let n = NaN;
        try {
          n = parseSize(val);
        } catch {
          // reported below
        }
        if (!(n > 0) || !Number.isSafeInteger(n)) fail(`${key}=${val} needs a positive amount per second, e.g. ${key}=${key.endsWith("bps") ? "1M" : "1000"}`);
        const dir = key.startsWith("rx") ? "rx" : "tx";
        const what = key.endsWith("bps") ? "bandwidth" : "ops";
        c.limits[dir] = { ...c.limits[dir], [what]: { size: n, refillTimeMs: 1000 } };
        break;
      }
      case "policy-in":
      case "policy-out":
        if (val !== "allow" && val !== "deny") fail(`${key}= takes allow or deny`);
        fw()[key === "policy-in" ? "defaultIn" : "defaultOut"] = val as "allow" | "deny";
        break;
      case "allow":
      case "deny":
        fw().rules.push(parseRule(key, val, fail));
        break;
      default:
        fail(`"${key}" is not a known option`);
    }
  }
  return c;
}

/** DIR:PROTO[:CIDR][:PORT[-PORT]], e.g. in:tcp:22 (guest port 22), out:udp:10.0.0.0/8:53 (remote port 53), in:icmp, out:any:192.168.1.0/24. */
function parseRule(action: "allow" | "deny", text: string, fail: (w: string) => never): FirewallRule {
  const parts = text.split(":");
  const [dir, proto] = parts;
  if (dir !== "in" && dir !== "out") fail(`the rule ${action}=${text} must start with in or out`);
  if (proto !== "tcp" && proto !== "udp" && proto !== "icmp" && proto !== "any") fail(`the rule ${action}=${text} needs a protocol: tcp, udp, icmp or any`);
  const rule: FirewallRule = { action, direction: dir as "in" | "out", protocol: proto as FirewallRule["protocol"], cidr: null, ports: null };
  for (const p of parts.slice(2)) {
    if (p.includes(".")) {
      const c = parseCidr(p);
      if (c === null) fail(`"${p}" in ${action}=${text} is not an IPv4 address or CIDR`);
      rule.cidr = c;
    } else {
      const m = /^(\d+)(?:-(\d+))?$/.exec(p);
      const lo = Number(m?.[1]);
      const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
      if (m === null || lo < 1 || hi > 65535 || hi < lo || (proto !== "tcp" && proto !== "udp")) {
        fail(`"${p}" in ${action}=${text} is not a port range (ports only apply to tcp and udp)`);
      }
      rule.ports = [lo, hi];
    }
  }
  return rule;
}
