// A learning L2 switch with 802.1Q VLANs, independent of sockets: ports are callbacks, frames are
// byte arrays. MAC addresses are learnt per VLAN and age out; unknown, broadcast and multicast
// destinations are flooded to the other ports of the same VLAN; frames never cross VLANs.

import { ETH_HEADER_BYTES, isMulticastMac, parseL2, parseMac, addVlanTag, stripVlanTag } from "../ethernet.js";
import { MAX_FRAME_BYTES } from "../backend.js";
import { portVlans, type PortMode } from "./vlan.js";

export interface PortCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames the port's peer could not take (its queue was full). */
  dropsQueueFull: number;
  /** Frames with a VLAN tag the port does not carry, or untagged on a trunk without a native VLAN. */
  dropsVlan: number;
  /** Frames too short or too long, or from a multicast source address. */
  dropsMalformed: number;
}

export interface PortInfo {
  id: number;
  name: string;
  mode: PortMode;
  counters: PortCounters;
}

interface Port extends PortInfo {
  /** Takes a frame for the peer; false when the peer's queue is full. */
  output: (frame: Uint8Array) => boolean;
  vlans: Set<number>;
}

interface MacEntry {
  port: number;
  seenAt: number;
}

/** A MAC address as a number (48 bits fit a double exactly): table keys without building strings per frame. */
function macKey(b: Uint8Array, at: number): number {
  return (b[at]! * 256 + b[at + 1]!) * 0x1_0000_0000 + ((b[at + 2]! << 24) | (b[at + 3]! << 16) | (b[at + 4]! << 8) | b[at + 5]!) >>> 0;
}

export interface SwitchOptions {
  /** Forget a MAC address not seen for this long (default 300 s, as 802.1D). */
  ageingMs?: number;
  now?: () => number;
  /** Most addresses the table holds; a flood of new source addresses cannot grow it without bound. */
  maxMacEntries?: number;
}

export class L2Switch {
  private readonly ports = new Map<number, Port>();
  /** Per VLAN: MAC address (macKey) to where it was last seen. */
  private readonly macs = new Map<number, Map<number, MacEntry>>();
  private macCount = 0;
  private nextId = 1;
  private readonly ageingMs: number;
  private readonly now: () => number;
  private readonly maxMacEntries: number;

  constructor(o: SwitchOptions = {}) {
    this.ageingMs = o.ageingMs ?? 300_000;
    this.now = o.now ?? (() => performance.now());
    this.maxMacEntries = o.maxMacEntries ?? 16384;
  }

  get portCount(): number {
    return this.ports.size;
  }

  addPort(name: string, mode: PortMode, output: (frame: Uint8Array) => boolean): number {
    const id = this.nextId++;
    const counters: PortCounters = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, dropsQueueFull: 0, dropsVlan: 0, dropsMalformed: 0 };
    this.ports.set(id, { id, name, mode, output, counters, vlans: new Set(portVlans(mode)) });
    return id;
  }

  /** Changes a port's VLANs (e.g. after its peer said which it wants); what it learnt is forgotten. */
  setPortMode(id: number, mode: PortMode): void {
    const p = this.ports.get(id);
    if (p === undefined) return;
    p.mode = mode;
    p.vlans = new Set(portVlans(mode));
    this.forgetPort(id);
  }

  removePort(id: number): void {
    this.ports.delete(id);
    this.forgetPort(id);
  }

  portInfo(): PortInfo[] {
    return [...this.ports.values()].map(({ id, name, mode, counters }) => ({ id, name, mode, counters: { ...counters } }));
  }

  /** The port a MAC address ("52:54:00:12:34:56") was last seen on in a VLAN, if it has not aged out. */
  lookup(vlan: number, mac: string): number | null {
    const b = parseMac(mac);
    return b === null ? null : this.lookupKey(vlan, macKey(b, 0), this.now());
  }

  private lookupKey(vlan: number, key: number, now: number): number | null {
    const e = this.macs.get(vlan)?.get(key);
    if (e === undefined || now - e.seenAt > this.ageingMs) return null;
    return e.port;
  }

  /** Drops table entries older than the ageing time. */
  age(): void {
    const limit = this.now() - this.ageingMs;
    this.forgetWhere((e) => e.seenAt < limit);
  }

  /** A frame arriving on port `from`. */
  input(from: number, frame: Uint8Array): void {
    const src = this.ports.get(from);
    if (src === undefined) return;
    const c = src.counters;
    c.rxPackets++;
    c.rxBytes += frame.length;
    const l2 = parseL2(frame);
    if (l2 === null || frame.length > MAX_FRAME_BYTES || isMulticastMac(frame, 6)) {
      c.dropsMalformed++;
      return;
    }
    let vlan: number;
    let untagged: Uint8Array;
    const mode = src.mode;
    if (l2.vlan === null) {
      if (mode.kind === "access") vlan = mode.vlan;
      else if (mode.native !== undefined) vlan = mode.native;
      else {
        c.dropsVlan++;
        return;
      }
      untagged = frame;
    } else {
      // Access ports take untagged frames only; trunks only the VLANs they carry.
      if (mode.kind === "access" || !mode.vlans.includes(l2.vlan) || frame.length < ETH_HEADER_BYTES + 4) {
        c.dropsVlan++;
        return;
      }
      vlan = l2.vlan;
      untagged = stripVlanTag(frame);
    }
    const now = this.now();
    this.learn(vlan, macKey(untagged, 6), from, now);
    if (!isMulticastMac(untagged, 0)) {
      const to = this.lookupKey(vlan, macKey(untagged, 0), now);
      if (to !== null) {
        if (to !== from) this.emit(this.ports.get(to)!, vlan, untagged);
        return;
      }
    }
    for (const p of this.ports.values()) if (p.id !== from && p.vlans.has(vlan)) this.emit(p, vlan, untagged);
  }

  private learn(vlan: number, key: number, port: number, now: number): void {
    let table = this.macs.get(vlan);
    const e = table?.get(key);
    if (e !== undefined) {
      e.port = port;
      e.seenAt = now;
      return;
    }
    if (this.macCount >= this.maxMacEntries) {
      this.age();
      if (this.macCount >= this.maxMacEntries) return; // full of live entries: flood instead of learning
      table = this.macs.get(vlan);
    }
    if (table === undefined) {
      table = new Map();
      this.macs.set(vlan, table);
    }
    table.set(key, { port, seenAt: now });
    this.macCount++;
  }

  private emit(p: Port, vlan: number, untagged: Uint8Array): void {
    const m = p.mode;
    const tagged = m.kind === "trunk" && m.native !== vlan;
    const out = tagged ? addVlanTag(untagged, vlan) : untagged;
    if (p.output(out)) {
      p.counters.txPackets++;
      p.counters.txBytes += out.length;
    } else {
      p.counters.dropsQueueFull++;
    }
  }

  private forgetPort(id: number): void {
    this.forgetWhere((e) => e.port === id);
  }

  private forgetWhere(drop: (e: MacEntry) => boolean): void {
    for (const [vlan, table] of this.macs) {
      for (const [k, e] of table) {
        if (!drop(e)) continue;
        table.delete(k);
        this.macCount--;
      }
      if (table.size === 0) this.macs.delete(vlan);
    }
  }
}
