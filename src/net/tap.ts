// `--net tap=IFNAME` (bridged): placeholder until the koffi-based TAP backend lands.

import type { NetBackend } from "./backend.js";

export class TapError extends Error {
  override name = "TapError";
}

export async function openTap(ifname: string, _log: (m: string) => void): Promise<NetBackend> {
  throw new TapError(`Cannot open the TAP device "${ifname}": bridged networking is not built yet; use --net user or --net switch=NAME.`);
}
