// Positioned reads and writes on the image file, never outside it.
// The FileHandle owns the descriptor (open, datasync, close); data moves through the callback
// fs.read/fs.write on its fd, which measured about twice as fast as FileHandle.read for 4 KiB requests.

import { read as fsRead, write as fsWrite } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { corruptError } from "./errors.js";

export class ImageFile {
  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    /** Bytes in the file, including clusters this process has allocated but not yet written. */
    public size: number,
  ) {}

  /** Fills buf from offset; bytes past the end of the file read as zero (a cluster's unwritten tail).
   * Callers check that the cluster itself starts inside the file. */
  async read(offset: number, buf: Uint8Array, what = "data"): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw corruptError(this.path, `${what} at offset ${offset} lies outside the ${this.size}-byte file`);
    }
    let done = 0;
    while (done < buf.length) {
      const bytesRead = await preadOnce(this.fh.fd, buf, done, buf.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < buf.length) buf.fill(0, done);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const bytesWritten = await pwriteOnce(this.fh.fd, data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    if (offset + data.length > this.size) this.size = offset + data.length;
  }

  async sync(): Promise<void> {
    await this.fh.datasync();
  }
}

function preadOnce(fd: number, buf: Uint8Array, at: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsRead(fd, buf, at, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function pwriteOnce(fd: number, buf: Uint8Array, at: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, at, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
