// Opens the backend for one NIC from its --net config.

import { createHash, randomBytes } from "node:crypto";
import type { NetBackend } from "./backend.js";
import { parseMac } from "./ethernet.js";
import { startPasst } from "./passt.js";
import type { NetConfig } from "./spec.js";
import { connectSwitchPort } from "./switch/connect.js";

/** The NIC's MAC: the configured one, else 52:54:00 (QEMU's prefix) + 3 bytes from the VM name and NIC index (random without a name). */
export function nicMac(c: NetConfig, vmName: string | null, index: number): Uint8Array {
  if (c.mac !== null) return parseMac(c.mac)!;
  const tail = vmName === null ? randomBytes(3) : createHash("sha256").update(`${vmName}/${index}`).digest().subarray(0, 3);
  return Uint8Array.from([0x52, 0x54, 0x00, tail[0]!, tail[1]!, tail[2]!]);
}

export async function openNetBackend(c: NetConfig, o: { mac: Uint8Array; vmName: string | null; log: (m: string) => void }): Promise<NetBackend> {
  const m = c.mode;
  switch (m.kind) {
    case "user":
      return startPasst({ hostForwards: m.hostForwards, mac: o.mac, log: o.log });
    case "switch":
      return connectSwitchPort({ switchName: m.switchName, mode: m.port, mac: o.mac, vmName: o.vmName, log: o.log });
    case "tap": {
      const { openTap } = await import("./tap.js"); // koffi is loaded only when a TAP is used
      return openTap(m.ifname, o.log);
    }
    default: {
      const never: never = m;
      throw new Error(`unknown network mode ${String(never)}`);
    }
  }
}
