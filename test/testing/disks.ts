// Reading what a guest wrote on a disk image, from the host.
import { openDisk } from "../../src/storage/open.js";

/** Sector n of a disk image (any format nodevisor opens) as text, zero padding and line ends dropped. */
export async function sectorText(path: string, n: number): Promise<string> {
  const d = await openDisk(path);
  try {
    const buf = new Uint8Array(512);
    await d.read(n * 512, buf);
    return Buffer.from(buf).toString("latin1").replace(/\0+$/, "").trim();
  } finally {
    await d.close();
  }
}
