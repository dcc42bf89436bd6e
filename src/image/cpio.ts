// cpio "newc" (SVR4, no CRC) archive writer: the format the Linux kernel unpacks as an initramfs.
// Layout per entry: 110-byte ASCII header, NUL-terminated name padded to 4 bytes, data padded to 4 bytes.

export const NEWC_MAGIC = "070701";
export const NEWC_HEADER_SIZE = 110;
export const TRAILER_NAME = "TRAILER!!!";

// File type bits of st_mode (octal, as in <sys/stat.h>).
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export type CpioEntry =
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "file"; path: string; data: Uint8Array; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chardev"; path: string; major: number; minor: number; mode?: number };

export interface CpioOptions {
  /** mtime for every entry, seconds since the epoch; 0 keeps archives reproducible. */
  mtime?: number;
}

/** Builds a newc archive in memory; entries must be added parent directories first. */
export class CpioWriter {
  private readonly chunks: Uint8Array[] = [];
  private readonly paths = new Set<string>();
  private nextInode = 1;
  private size = 0;
  private finished = false;
  private readonly mtime: number;

  constructor(options: CpioOptions = {}) {
    this.mtime = options.mtime ?? 0;
  }

  add(entry: CpioEntry): void {
    if (this.finished) throw new Error(`Cannot add "${entry.path}" to the cpio archive: it is already finished.`);
    const path = normalizeArchivePath(entry.path);
    if (this.paths.has(path)) throw new Error(`Cannot add "${path}" to the cpio archive twice.`);
    const parent = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    // The kernel creates files with O_CREAT only, so a missing parent directory would silently drop the entry.
    if (parent !== "" && !this.paths.has(parent)) {
      throw new Error(`Cannot add "${path}" to the cpio archive: its directory "${parent}" must be added first.`);
    }
    this.paths.add(path);
    switch (entry.kind) {
      case "dir":
        this.writeEntry(path, S_IFDIR | (entry.mode ?? 0o755), 2, new Uint8Array(0), 0, 0);
        break;
      case "file":
        this.writeEntry(path, S_IFREG | (entry.mode ?? 0o644), 1, entry.data, 0, 0);
        break;
      case "symlink":
        this.writeEntry(path, S_IFLNK | 0o777, 1, new TextEncoder().encode(entry.target), 0, 0);
        break;
      case "chardev":
        this.writeEntry(path, S_IFCHR | (entry.mode ?? 0o600), 1, new Uint8Array(0), entry.major, entry.minor);
        break;
      default: {
        const unknown: never = entry;
        throw new Error(`Cannot add an entry of unknown kind to the cpio archive: ${JSON.stringify(unknown)}`);
      }
    }
  }

  has(path: string): boolean {
    return this.paths.has(normalizeArchivePath(path));
  }

  /** Appends the trailer and returns the whole archive. */
  finish(): Buffer {
    if (!this.finished) {
      this.pushHeader(TRAILER_NAME, { ino: 0, mode: 0, nlink: 1, mtime: 0, filesize: 0, rdevmajor: 0, rdevminor: 0 });
      this.finished = true;
    }
    return Buffer.concat(this.chunks, this.size);
  }

  private writeEntry(path: string, mode: number, nlink: number, data: Uint8Array, rmaj: number, rmin: number): void {
    const ino = this.nextInode++;
    this.pushHeader(path, { ino, mode, nlink, mtime: this.mtime, filesize: data.length, rdevmajor: rmaj, rdevminor: rmin });
    this.push(data);
    this.pad();
  }

  private pushHeader(
    name: string,
    f: { ino: number; mode: number; nlink: number; mtime: number; filesize: number; rdevmajor: number; rdevminor: number },
  ): void {
    const nameBytes = Buffer.from(name + "\0", "utf8");
    const fields = [f.ino, f.mode, 0, 0, f.nlink, f.mtime, f.filesize, 0, 0, f.rdevmajor, f.rdevminor, nameBytes.length, 0];
    const header = NEWC_MAGIC + fields.map(hex8).join("");
    this.push(Buffer.from(header, "ascii"));
    this.push(nameBytes);
    this.pad();
  }

  private push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  private pad(): void {
    const rem = this.size % 4;
    if (rem !== 0) this.push(new Uint8Array(4 - rem));
  }
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`Cannot write ${value} into a cpio header field: it must fit in 32 bits.`);
  }
  return value.toString(16).toUpperCase().padStart(8, "0");
}

function normalizeArchivePath(path: string): string {
  const p = path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (p === "" || p.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new Error(`Cannot add "${path}" to the cpio archive: the path must be a plain relative path.`);
  }
  return p;
}
