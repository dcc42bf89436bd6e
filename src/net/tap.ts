// `--net tap=IFNAME` (bridged): the NIC is a Linux TAP device, which the user attaches to a host
// bridge. Node cannot issue ioctl(TUNSETIFF), so this one call goes through koffi (an FFI library
// that ships its binaries in its npm package); koffi is loaded only here, only when a TAP is used.
// Frames are read on libuv's thread pool (one blocking read per frame) and written synchronously.

import { closeSync, openSync, read, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { MAX_FRAME_BYTES, type FrameSink, type NetBackend } from "./backend.js";

export class TapError extends Error {
  override name = "TapError";
}

const TUN_PATH = "/dev/net/tun";
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFREQ_BYTES = 40;
const EPERM = 1;
const EBUSY = 16;

type Ioctl = (fd: number, request: number, arg: Buffer) => number;
let ioctl: Ioctl | null = null;
let errno: () => number = () => 0;

function loadIoctl(): Ioctl {
  if (ioctl !== null) return ioctl;
  let koffi: { load(lib: string): { func(sig: string): Ioctl }; errno(): number };
  try {
    koffi = createRequire(import.meta.url)("koffi");
  } catch (e) {
    throw new TapError(`Cannot open a TAP device: the koffi package did not load (${(e as Error).message}); reinstall nodevisor's dependencies with npm ci.`);
  }
  ioctl = koffi.load("libc.so.6").func("int ioctl(int fd, unsigned long request, void *arg)");
  errno = () => koffi.errno();
  return ioctl;
}

export async function openTap(ifname: string, log: (m: string) => void): Promise<NetBackend> {
  if (process.platform !== "linux") throw new TapError(`Cannot open the TAP device "${ifname}": TAP networking needs Linux; use --net user or --net switch=NAME.`);
  let fd: number;
  try {
    fd = openSync(TUN_PATH, "r+");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") {
      throw new TapError(`Cannot open ${TUN_PATH} for the TAP device "${ifname}": bridged networking needs root or CAP_NET_ADMIN (or use --net user).`);
    }
    throw new TapError(`Cannot open ${TUN_PATH} for the TAP device "${ifname}" (${code}): load the tun module (modprobe tun) or use --net user.`);
  }
  const ifr = Buffer.alloc(IFREQ_BYTES);
  ifr.write(ifname, 0, 15, "latin1");
  ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
  if (loadIoctl()(fd, TUNSETIFF, ifr) < 0) {
    const err = errno();
    closeSync(fd);
    if (err === EPERM) throw new TapError(`Cannot create the TAP device "${ifname}": it needs root or CAP_NET_ADMIN; create it beforehand (ip tuntap add dev ${ifname} mode tap user $USER) or use --net user.`);
    if (err === EBUSY) throw new TapError(`Cannot attach to the TAP device "${ifname}": another program holds it.`);
    throw new TapError(`Cannot attach to the TAP device "${ifname}": ioctl(TUNSETIFF) failed with errno ${err}.`);
  }
  log(`attached to TAP device ${ifname}`);
  return new TapBackend(fd, ifname, log);
}

class TapBackend implements NetBackend {
  readonly kind: string;
  private sink: FrameSink | null = null;
  private closed = false;
  private receiving = true;
  private reading = false;
  private readonly buf = Buffer.alloc(MAX_FRAME_BYTES);

  constructor(
    private readonly fd: number,
    ifname: string,
    private readonly log: (m: string) => void,
  ) {
    this.kind = `tap:${ifname}`;
  }

  start(sink: FrameSink): void {
    this.sink = sink;
    this.readNext();
  }

  private readNext(): void {
    if (this.closed || !this.receiving || this.reading) return;
    this.reading = true;
    read(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      this.reading = false;
      if (this.closed) return;
      if (err) {
        this.log(`${this.kind}: reading failed (${err.message}); the NIC is now cut off`);
        return;
      }
      if (n > 0) this.sink?.(new Uint8Array(this.buf.subarray(0, n)));
      this.readNext();
    });
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      writeSync(this.fd, frame);
      return true;
    } catch {
      return false; // the interface is down or its queue is full: the frame is lost, as on a wire
    }
  }

  setReceiving(enabled: boolean): void {
    this.receiving = enabled;
    if (enabled) this.readNext();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A read blocked in the thread pool keeps the fd until a frame arrives or the process exits.
    if (!this.reading) closeSync(this.fd);
  }
}
