// Opens a VHD (qemu-img calls the format "vpc") read-only: fixed or dynamic; differencing disks are refused.

import type { BlockBackend } from "../block_backend.js";
import { ImageFile, ReadOnlyImageBackend } from "../read_only_image.js";
import { DynamicDisk } from "./dynamic_disk.js";
import { DYNAMIC_HEADER_BYTES, DiskType, FOOTER_BYTES, parseDynamicHeader, parseFooter, type VhdFooter } from "./structures.js";

export async function openVhd(path: string): Promise<BlockBackend> {
  const file = await ImageFile.open(path);
  try {
    const footer = await readFooter(file);
    switch (footer.diskType) {
      case DiskType.Fixed: {
        if (footer.virtualSize > file.size - FOOTER_BYTES) {
          throw file.error(`the footer describes a ${footer.virtualSize}-byte disk but the file holds only ${file.size - FOOTER_BYTES} bytes of data`);
        }
        file.opening = false;
        return new ReadOnlyImageBackend(path, {
          size: footer.virtualSize,
          read: (offset, buf) => file.readExact(offset, buf, "the fixed disk's data"),
          close: () => file.close(),
        });
      }
      case DiskType.Dynamic: {
        if (footer.dataOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw file.error("the dynamic disk header points past the end of the file");
        const header = parseDynamicHeader(file, await file.bytes(Number(footer.dataOffset), DYNAMIC_HEADER_BYTES, "the dynamic disk header"));
        const disk = await DynamicDisk.open(file, footer.virtualSize, header);
        file.opening = false;
        return new ReadOnlyImageBackend(path, disk);
      }
      case DiskType.Differencing:
        throw file.error("it is a differencing VHD, which needs its parent disk; only fixed and dynamic VHDs are supported");
      default:
        throw file.error(`the footer gives an unknown disk type ${footer.diskType}`);
    }
  } catch (e) {
    await file.close().catch(() => undefined);
    throw e;
  }
}

/** The footer at the end of the file, or for dynamic disks its copy at the start if the end one is damaged. */
async function readFooter(file: ImageFile): Promise<VhdFooter> {
  if (file.size < FOOTER_BYTES) throw file.error("it is too short to be a VHD (no 512-byte footer)");
  const atEnd = parseFooter(await file.bytes(file.size - FOOTER_BYTES, FOOTER_BYTES, "the footer"), "footer");
  if (typeof atEnd !== "string") return atEnd;
  if (file.size >= 2 * FOOTER_BYTES) {
    const copy = parseFooter(await file.bytes(0, FOOTER_BYTES, "the footer copy"), "footer copy");
    if (typeof copy !== "string" && copy.diskType !== DiskType.Fixed) return copy;
  }
  throw file.error(atEnd.replace("the footer does not start", "it is not a VHD image: the footer does not start"));
}
