// The connection table of a switch's NAT: one entry per flow from a VM to the outside (TCP and UDP
// by 5-tuple, ICMP echo by identifier), each with its own port (or echo identifier) on the uplink
// address, so replies find their way back by that number alone. Entries expire when idle, with
// timeouts after RFC 4787 (UDP) and RFC 5382 (TCP); the table and the port space are bounded.

import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../ethernet.js";

/** TCP, once both ends have spoken (RFC 5382 REQ-5: at least 2 h 4 min). */
export const TCP_ESTABLISHED_MS = 7_440_000;
/** TCP while opening or after both FINs (RFC 5382: at least 4 min). */
export const TCP_TRANSITORY_MS = 240_000;
/** TCP after a reset: nothing more is coming. */
export const TCP_RESET_MS = 10_000;
/** UDP (RFC 4787 REQ-5 recommends 5 min). */
export const UDP_MS = 300_000;
/** ICMP echo: a ping that got no reply for a minute is over. */
export const ICMP_MS = 60_000;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export type NatProtocol = typeof IPPROTO_TCP | typeof IPPROTO_UDP | typeof IPPROTO_ICMP;

export function isNatProtocol(p: number): p is NatProtocol {
  return p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_ICMP;
}

export interface NatFlow {
  protocol: NatProtocol;
  guestMac: Uint8Array;
  guestIp: number;
  /** The VM's port (its echo identifier for ICMP). */
  guestPort: number;
  /** Where the VM sent the flow: the remote end, or the gateway for flows the switch redirects (DNS, the host). */
  dstIp: number;
  dstPort: number;
  /** Where the flow really goes on the uplink. */
  remoteIp: number;
  remotePort: number;
  /** The flow's port (echo identifier) on the uplink address. */
  natPort: number;
  /** The remote end has answered. */
  replied: boolean;
  finOut: boolean;
  finIn: boolean;
  reset: boolean;
  lastSeen: number;
}

export interface NatTableOptions {
  now?: () => number;
  /** Uplink ports (and echo identifiers) handed out, inclusive; default 1024-65535. */
  portRange?: [number, number];
  /** Most flows the table holds across protocols (default 32768). */
  maxFlows?: number;
}

export type NewFlow = Omit<NatFlow, "natPort" | "replied" | "finOut" | "finIn" | "reset" | "lastSeen">;

export class NatTable {
  private readonly byGuest = new Map<string, NatFlow>();
  /** Flows by protocol, then by uplink port. */
  private readonly byPort = new Map<NatProtocol, Map<number, NatFlow>>([
    [IPPROTO_TCP, new Map()],
    [IPPROTO_UDP, new Map()],
    [IPPROTO_ICMP, new Map()],
  ]);
  private readonly cursor = new Map<NatProtocol, number>();
  private readonly now: () => number;
  private readonly low: number;
  private readonly high: number;
  private readonly maxFlows: number;

  constructor(o: NatTableOptions = {}) {
    this.now = o.now ?? (() => performance.now());
    [this.low, this.high] = o.portRange ?? [1024, 65535];
    this.maxFlows = o.maxFlows ?? 32768;
  }

  get size(): number {
    return this.byGuest.size;
  }

  /** The live flow a VM's packet belongs to, or null. */
  lookupOutbound(protocol: NatProtocol, guestIp: number, guestPort: number, dstIp: number, dstPort: number): NatFlow | null {
    const f = this.byGuest.get(guestKey(protocol, guestIp, guestPort, dstIp, dstPort));
    return f !== undefined && this.alive(f) ? f : null;
  }

  /** The live flow a packet from the uplink to `natPort` belongs to, if it comes from that flow's remote end. */
  lookupInbound(protocol: NatProtocol, natPort: number, remoteIp: number, remotePort: number): NatFlow | null {
    const f = this.byPort.get(protocol)!.get(natPort);
    if (f === undefined || !this.alive(f) || f.remoteIp !== remoteIp || f.remotePort !== remotePort) return null;
    return f;
  }

  /** Adds a flow with a free uplink port (the VM's own when free); null when the table or the port space is full. */
  create(n: NewFlow): NatFlow | null {
    const ports = this.byPort.get(n.protocol)!;
    if (this.byGuest.size >= this.maxFlows || ports.size > this.high - this.low) this.expire();
    if (this.byGuest.size >= this.maxFlows || ports.size > this.high - this.low) return null;
    const natPort = this.freePort(n.protocol, n.guestPort);
    const flow: NatFlow = { ...n, natPort, replied: false, finOut: false, finIn: false, reset: false, lastSeen: this.now() };
    const key = guestKey(n.protocol, n.guestIp, n.guestPort, n.dstIp, n.dstPort);
    const old = this.byGuest.get(key);
    if (old !== undefined) this.remove(old);
    this.byGuest.set(key, flow);
    ports.set(natPort, flow);
    return flow;
  }

  /** Notes a packet of `flow` ("out" from the VM, "in" from the remote end) with its TCP flags. */
  touch(flow: NatFlow, direction: "out" | "in", tcpFlags = 0): void {
    flow.lastSeen = this.now();
    if (direction === "in") flow.replied = true;
    if (flow.protocol !== IPPROTO_TCP) return;
    if (tcpFlags & TCP_RST) flow.reset = true;
    else if (tcpFlags & TCP_SYN && !(tcpFlags & TCP_ACK) && direction === "out") {
      // A new connection on the same addresses and ports: start over.
      flow.reset = flow.finIn = flow.finOut = false;
    }
    if (tcpFlags & TCP_FIN) {
      if (direction === "out") flow.finOut = true;
      else flow.finIn = true;
    }
  }

  /** How long `flow` lives without traffic, given its state. */
  timeoutOf(flow: NatFlow): number {
    switch (flow.protocol) {
      case IPPROTO_TCP:
        if (flow.reset) return TCP_RESET_MS;
        return flow.replied && !(flow.finIn && flow.finOut) ? TCP_ESTABLISHED_MS : TCP_TRANSITORY_MS;
      case IPPROTO_UDP:
        return UDP_MS;
      case IPPROTO_ICMP:
        return ICMP_MS;
      default: {
        const never: never = flow.protocol;
        throw new Error(`unknown protocol ${String(never)}`);
      }
    }
  }

  /** Removes every flow that has been idle past its timeout. */
  expire(): void {
    for (const f of this.byGuest.values()) if (!this.alive(f)) this.remove(f);
  }

  flows(): NatFlow[] {
    return [...this.byGuest.values()].filter((f) => this.alive(f));
  }

  private alive(f: NatFlow): boolean {
    return this.now() - f.lastSeen < this.timeoutOf(f);
  }

  private remove(f: NatFlow): void {
    this.byGuest.delete(guestKey(f.protocol, f.guestIp, f.guestPort, f.dstIp, f.dstPort));
    const ports = this.byPort.get(f.protocol)!;
    if (ports.get(f.natPort) === f) ports.delete(f.natPort);
  }

  /** The VM's own port if it is in range and free (as RFC 4787 suggests), else the next free one after the last given. */
  private freePort(protocol: NatProtocol, wanted: number): number {
    const ports = this.byPort.get(protocol)!;
    const taken = (p: number): boolean => {
      const f = ports.get(p);
      if (f === undefined) return false;
      if (this.alive(f)) return true;
      this.remove(f);
      return false;
    };
    if (wanted >= this.low && wanted <= this.high && !taken(wanted)) return wanted;
    const span = this.high - this.low + 1;
    let p = this.cursor.get(protocol) ?? this.low;
    // The caller made sure a port is free (the map holds fewer than `span` entries).
    for (let i = 0; i < span; i++, p = p >= this.high ? this.low : p + 1) {
      if (!taken(p)) {
        this.cursor.set(protocol, p >= this.high ? this.low : p + 1);
        return p;
      }
    }
    throw new Error("NAT port space is full"); // unreachable: create() checked for room
  }
}

function guestKey(protocol: number, guestIp: number, guestPort: number, dstIp: number, dstPort: number): string {
  return `${protocol}/${guestIp}:${guestPort}/${dstIp}:${dstPort}`;
}
