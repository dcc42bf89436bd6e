// The one frame a nodevisor NIC sends first on a switch socket, to say which VLANs its port carries
// and the VM's name (for DNS). It travels inside the ordinary stream framing as an Ethernet frame
// with the local-experimental EtherType 0x88B5 and an all-zero destination, which no real peer
// sends; a peer that sends no hello (a QEMU VM) gets an access port on the switch's default VLAN.

import { isValidVlan, type PortMode } from "./vlan.js";

export const HELLO_ETHERTYPE = 0x88b5;
const MAGIC = "nodevisor-port-1";

export interface Hello {
  mode: PortMode;
  name: string | null;
}

export function encodeHello(mac: Uint8Array, h: Hello): Uint8Array {
  const body = new TextEncoder().encode(`${MAGIC}\n${JSON.stringify({ mode: h.mode, name: h.name })}`);
  const f = new Uint8Array(14 + body.length);
  f.set(mac, 6);
  f[12] = HELLO_ETHERTYPE >> 8;
  f[13] = HELLO_ETHERTYPE & 0xff;
  f.set(body, 14);
  return f;
}

/** True when `frame` is meant as a hello (it may still be a malformed one). */
export function isHello(frame: Uint8Array): boolean {
  return frame.length >= 14 && frame[12] === HELLO_ETHERTYPE >> 8 && frame[13] === (HELLO_ETHERTYPE & 0xff) && frame.subarray(0, 6).every((b) => b === 0);
}

/** Reads a hello; throws a sentence when it is malformed. */
export function decodeHello(frame: Uint8Array): Hello {
  const text = new TextDecoder().decode(frame.subarray(14));
  if (!text.startsWith(`${MAGIC}\n`) || text.length > 4096) throw new Error("the port hello has an unknown version");
  let v: unknown;
  try {
    v = JSON.parse(text.slice(MAGIC.length + 1));
  } catch {
    throw new Error("the port hello is not valid JSON");
  }
  const o = v as { mode?: { kind?: unknown; vlan?: unknown; vlans?: unknown; native?: unknown }; name?: unknown };
  const m = o.mode;
  let mode: PortMode;
  if (m?.kind === "access" && typeof m.vlan === "number" && isValidVlan(m.vlan)) mode = { kind: "access", vlan: m.vlan };
  else if (
    m?.kind === "trunk" &&
    Array.isArray(m.vlans) &&
    m.vlans.length > 0 &&
    m.vlans.length <= 4094 &&
    m.vlans.every((x) => typeof x === "number" && isValidVlan(x)) &&
    (m.native === undefined || (typeof m.native === "number" && isValidVlan(m.native)))
  ) {
    mode = { kind: "trunk", vlans: m.vlans as number[], ...(m.native !== undefined ? { native: m.native as number } : {}) };
  } else throw new Error("the port hello asks for an impossible VLAN setup");
  const name = typeof o.name === "string" && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(o.name) ? o.name : null;
  return { mode, name };
}
