// A VM's NICs as the API takes them: structured JSON with its schema, turned into the `--net`
// argument the VM process parses (src/net/spec.ts), so the daemon and `nodevisor run` accept
// exactly the same NICs and one parser decides. Also the way back, for `vm create --net`.

import { NetSpecError, parseNetSpec, type NetConfig } from "../net/spec.js";
import { ipv4ToString } from "../net/ethernet.js";
import type { FirewallRule } from "../net/firewall.js";
import { invalid } from "./errors.js";

export interface NicSpec {
  mode: "user" | "switch" | "tap";
  /** user: host ports forwarded to the guest. */
  hostForwards?: Array<{ protocol: "tcp" | "udp"; hostAddress?: string; hostPort: number; guestPort: number }>;
  /** switch: the switch's name (`nodevisor switch create NAME`). */
  switch?: string;
  /** switch: an access port on this VLAN (default 1) ... */
  vlan?: number;
  /** ... or a trunk carrying these VLANs tagged. */
  trunk?: number[];
  /** tap: the host interface. */
  tap?: string;
  /** Absent: derived from the VM's name and the NIC's index. */
  mac?: string;
  linkUp?: boolean;
  /** Rates per second; absent: unlimited. */
  rxBps?: number;
  txBps?: number;
  rxPps?: number;
  txPps?: number;
  firewall?: {
    policyIn?: "allow" | "deny";
    policyOut?: "allow" | "deny";
    /** In order, first match wins; `match` is DIR:PROTO[:CIDR][:PORT[-PORT]], e.g. in:tcp:22. */
    rules?: Array<{ action: "allow" | "deny"; match: string }>;
  };
  /** Frames from the guest must come from its own MAC (default true). */
  antiSpoof?: boolean;
  /** Offer checksum and segmentation offloads (default true). */
  offloads?: boolean;
}

const VLAN = { type: "integer", minimum: 1, maximum: 4094 } as const;
const RATE = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;
const PORT = { type: "integer", minimum: 1, maximum: 65535 } as const;

export const nicSchema = {
  type: "object",
  additionalProperties: false,
  required: ["mode"],
  properties: {
    mode: { type: "string", enum: ["user", "switch", "tap"] },
    hostForwards: {
      type: "array",
      maxItems: 32,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["protocol", "hostPort", "guestPort"],
        properties: {
          protocol: { type: "string", enum: ["tcp", "udp"] },
          hostAddress: { type: "string", pattern: "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" },
          hostPort: PORT,
          guestPort: PORT,
        },
      },
    },
    switch: { type: "string", minLength: 1, maxLength: 64 },
    vlan: VLAN,
    trunk: { type: "array", minItems: 1, maxItems: 64, items: VLAN },
    tap: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,15}$" },
    mac: { type: "string", pattern: "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$" },
    linkUp: { type: "boolean" },
    rxBps: RATE,
    txBps: RATE,
    rxPps: RATE,
    txPps: RATE,
    firewall: {
      type: "object",
      additionalProperties: false,
      properties: {
        policyIn: { type: "string", enum: ["allow", "deny"] },
        policyOut: { type: "string", enum: ["allow", "deny"] },
        rules: {
          type: "array",
          maxItems: 256,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["action", "match"],
            properties: { action: { type: "string", enum: ["allow", "deny"] }, match: { type: "string", minLength: 1, maxLength: 100 } },
          },
        },
      },
    },
    antiSpoof: { type: "boolean" },
    offloads: { type: "boolean" },
  },
} as const;

/** The `--net` value for a NIC (assumes checkNic passed). */
export function nicArgument(n: NicSpec): string {
  const parts: string[] = [];
  if (n.mode === "user") {
    parts.push("user");
    for (const f of n.hostForwards ?? []) parts.push(`hostfwd=${f.protocol}:${f.hostAddress ? `${f.hostAddress}:` : ""}${f.hostPort}-:${f.guestPort}`);
  } else if (n.mode === "switch") {
    parts.push(`switch=${n.switch}`);
    if (n.vlan !== undefined) parts.push(`vlan=${n.vlan}`);
    if (n.trunk !== undefined) parts.push(`trunk=${n.trunk.join(",")}`);
  } else parts.push(`tap=${n.tap}`);
  if (n.mac !== undefined) parts.push(`mac=${n.mac}`);
  if (n.linkUp === false) parts.push("link=down");
  if (n.offloads === false) parts.push("offload=off");
  if (n.antiSpoof === false) parts.push("spoof=on");
  for (const [key, v] of [["rx-bps", n.rxBps], ["tx-bps", n.txBps], ["rx-pps", n.rxPps], ["tx-pps", n.txPps]] as const) if (v !== undefined) parts.push(`${key}=${v}`);
  const fw = n.firewall;
  if (fw?.policyIn) parts.push(`policy-in=${fw.policyIn}`);
  if (fw?.policyOut) parts.push(`policy-out=${fw.policyOut}`);
  for (const r of fw?.rules ?? []) parts.push(`${r.action}=${r.match}`);
  return parts.join(",");
}

/**
 * Checks what the schema cannot (fields that belong to another mode, firewall rule syntax, a
 * switch name) by running the VM process's own parser; throws a 400 naming the field.
 */
export function checkNic(n: NicSpec, field: string): void {
  const needs = { user: null, switch: "switch", tap: "tap" }[n.mode];
  if (needs !== null && n[needs as "switch" | "tap"] === undefined) throw invalid(`The field "${field}.${needs}" is required for mode "${n.mode}".`);
  const only: Array<[keyof NicSpec, NicSpec["mode"]]> = [["hostForwards", "user"], ["switch", "switch"], ["vlan", "switch"], ["trunk", "switch"], ["tap", "tap"]];
  for (const [key, mode] of only) {
    if (n[key] !== undefined && n.mode !== mode) throw invalid(`The field "${field}.${key}" applies only to mode "${mode}", not "${n.mode}".`);
  }
  if (n.vlan !== undefined && n.trunk !== undefined) throw invalid(`The field "${field}.trunk" cannot be given with "vlan": a port is either an access port or a trunk.`);
  try {
    parseNetSpec(nicArgument(n));
  } catch (e) {
    if (!(e instanceof NetSpecError)) throw e;
    // "Cannot use --net SPEC: WHY. Use ..." → the WHY, under the field's name.
    const why = /^Cannot use --net .*?: (.*?)\. Use --net/.exec(e.message)?.[1] ?? e.message;
    throw invalid(`The field "${field}" is not a usable NIC: ${why}.`);
  }
}

/** The structured form of a parsed `--net` value (for `nodevisor vm create --net`). */
export function nicFromNetConfig(c: NetConfig): NicSpec {
  const n: NicSpec = { mode: c.mode.kind };
  if (c.mode.kind === "user" && c.mode.hostForwards.length > 0) {
    n.hostForwards = c.mode.hostForwards.map((f) => ({ protocol: f.protocol, ...(f.hostAddress ? { hostAddress: f.hostAddress } : {}), hostPort: f.hostPort, guestPort: f.guestPort }));
  } else if (c.mode.kind === "switch") {
    n.switch = c.mode.switchName;
    const port = c.mode.port;
    if (port.kind === "trunk") n.trunk = [...port.vlans];
    else if (port.vlan !== 1) n.vlan = port.vlan;
  } else if (c.mode.kind === "tap") n.tap = c.mode.ifname;
  if (c.mac !== null) n.mac = c.mac;
  if (!c.linkUp) n.linkUp = false;
  if (!c.offloads) n.offloads = false;
  if (!c.antiSpoof) n.antiSpoof = false;
  const rate = (v: { size: number } | null | undefined): number | undefined => v?.size;
  const rates = { rxBps: rate(c.limits.rx?.bandwidth), txBps: rate(c.limits.tx?.bandwidth), rxPps: rate(c.limits.rx?.ops), txPps: rate(c.limits.tx?.ops) };
  for (const [k, v] of Object.entries(rates)) if (v !== undefined) n[k as "rxBps"] = v;
  if (c.firewall !== null) {
    n.firewall = { policyIn: c.firewall.defaultIn, policyOut: c.firewall.defaultOut, rules: c.firewall.rules.map((r) => ({ action: r.action, match: ruleMatch(r) })) };
  }
  return n;
}

function ruleMatch(r: FirewallRule): string {
  const parts: string[] = [r.direction, r.protocol];
  if (r.cidr !== null) parts.push(`${ipv4ToString(r.cidr.network)}/${r.cidr.prefix}`);
  if (r.ports !== null) parts.push(r.ports[0] === r.ports[1] ? String(r.ports[0]) : `${r.ports[0]}-${r.ports[1]}`);
  return parts.join(":");
}

/** One line for `vm show`: the `--net` form, which people already know from `nodevisor run`. */
export function describeNic(n: NicSpec): string {
  return nicArgument(n);
}
