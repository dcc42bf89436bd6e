// A switch as a server: every connection to its UNIX socket is a port, speaking QEMU's stream
// netdev framing (so `qemu-system-* -netdev stream,addr.type=unix,addr.path=…` plugs straight in).
// A peer that sends garbage loses its connection; a peer that stops reading loses frames once
// its queue is full — counted — and never holds up the other ports.

import { lstat, unlink, chmod } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { FrameDecoder, FrameWriter } from "../stream_framing.js";
import { macToString } from "../ethernet.js";
import { decodeHello, isHello } from "./hello.js";
import { L2Switch, type PortInfo } from "./switch.js";
import { NetworkServices } from "./services.js";
import { NatRouter } from "./nat.js";
import { startPasst } from "../passt.js";
import type { NetworkConfig } from "./network.js";
import { SwitchError } from "./paths.js";
import { DEFAULT_VLAN, describePortMode } from "./vlan.js";

/** Bytes a port may have waiting to be written before further frames for it are dropped. */
export const PORT_QUEUE_BYTES = 1 << 20;
const MAX_SOCKET_PATH_BYTES = 107;

export interface SwitchServerOptions {
  name: string;
  socketPath: string;
  /** The built-in gateway/DHCP/DNS host, or null for a bare switch. */
  network: NetworkConfig | null;
  /** Keep running with no ports; otherwise stop once the last port has gone. */
  persistent: boolean;
  /** How long an on-demand switch waits with no port before it stops (default 2 s after the last one left, 30 s at start). */
  idleMs?: number;
  log?: (msg: string) => void;
  /** Called once the switch has stopped by itself (no ports left). */
  onIdleStop?: () => void;
}

export class SwitchServer {
  readonly switch = new L2Switch();
  readonly services: NetworkServices | null;
  /** The NAT uplink through passt, once listen() has started it (networks created with --nat). */
  nat: NatRouter | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private idleTimer: NodeJS.Timeout | null = null;
  private nextPeer = 1;
  private servicesPort = 0;
  private readonly log: (msg: string) => void;

  constructor(private readonly o: SwitchServerOptions) {
    this.log = o.log ?? (() => {});
    if (o.network !== null) {
      const services = new NetworkServices(o.network, (f) => this.switch.input(this.servicesPort, f));
      this.servicesPort = this.switch.addPort("services", { kind: "access", vlan: o.network.vlan }, (f) => services.input(f));
      this.services = services;
    } else this.services = null;
  }

  get path(): string {
    return this.o.socketPath;
  }

  ports(): PortInfo[] {
    return this.switch.portInfo();
  }

  async listen(): Promise<void> {
    const path = this.o.socketPath;
    if (this.o.network?.nat && this.services !== null && this.nat === null) await this.startNat(this.services);
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
      throw new SwitchError(`Cannot create the switch socket "${path}": the path is longer than UNIX sockets allow (${MAX_SOCKET_PATH_BYTES} bytes); set NODEVISOR_SWITCH_DIR to a shorter directory.`);
    }
    if (await answers(path)) throw new SwitchError(`The switch "${this.o.name}" is already running (its socket ${path} answers).`);
    try {
      await unlink(path);
    } catch {
      // no stale socket
    }
    const server = createServer((s) => this.accept(s));
    server.on("error", (e) => this.log(`switch ${this.o.name}: ${e.message}`));
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new SwitchError(`Cannot listen on "${path}": ${e.message}.`));
      server.once("error", onError);
      server.listen(path, () => {
        server.off("error", onError);
        resolve();
      });
    });
    await chmod(path, 0o600);
    this.server = server;
    this.armIdle(this.o.idleMs ?? 30_000);
  }

  /** Starts passt and routes the network's outside traffic through it. */
  private async startNat(services: NetworkServices): Promise<void> {
    const uplink = await startPasst({ hostForwards: [], mac: services.mac, log: this.log });
    const nat = new NatRouter({ network: services.config, mac: services.mac, sendInside: (f) => this.switch.input(this.servicesPort, f), uplink, log: this.log });
    uplink.whenDisconnected(() => this.log(`switch ${this.o.name}: passt went away; the network has no way out until the switch restarts`));
    nat.start();
    services.attachNat(nat);
    this.nat = nat;
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.nat !== null) {
      const c = this.nat.counters;
      this.log(`switch ${this.o.name}: NAT carried ${c.outPackets} packets out and ${c.inPackets} in; drops: ${Object.entries(c).filter(([k, v]) => k.startsWith("drops") && v > 0).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`);
      await this.nat.close();
      this.nat = null;
    }
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server === null) return;
    const ino = (await lstat(this.o.socketPath).catch(() => null))?.ino;
    await new Promise<void>((r) => server.close(() => r()));
    try {
      if ((await lstat(this.o.socketPath)).ino === ino) await unlink(this.o.socketPath);
    } catch {
      // already gone
    }
  }

  private armIdle(ms: number): void {
    if (this.o.persistent) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.sockets.size > 0) return;
      this.log(`switch ${this.o.name}: no ports left; stopping`);
      void this.close().then(() => this.o.onIdleStop?.());
    }, ms);
  }

  private accept(socket: Socket): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.sockets.add(socket);
    const peer = `port${this.nextPeer++}`;
    const decoder = new FrameDecoder();
    const writer = new FrameWriter(socket, PORT_QUEUE_BYTES);
    const port = this.switch.addPort(peer, { kind: "access", vlan: DEFAULT_VLAN }, (frame) => writer.send(frame));
    let first = true;
    let helloMac: string | null = null;
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        this.log(`switch ${this.o.name}: ${peer} is not speaking the stream framing (${(e as Error).message}); disconnecting it`);
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (first && isHello(f)) {
          first = false;
          try {
            const h = decodeHello(f);
            this.switch.setPortMode(port, h.mode);
            helloMac = macToString(f, 6);
            if (h.name !== null) this.services?.registerName(helloMac, h.name);
            this.log(`switch ${this.o.name}: ${peer} is ${h.name ?? "unnamed"} (${helloMac}), ${describePortMode(h.mode)}`);
          } catch (e) {
            this.log(`switch ${this.o.name}: ${peer} sent a bad hello (${(e as Error).message}); disconnecting it`);
            socket.destroy();
            return;
          }
          continue;
        }
        first = false;
        this.switch.input(port, f);
      }
    });
    socket.on("error", () => {}); // a peer that vanishes is handled by "close"
    socket.on("close", () => {
      this.sockets.delete(socket);
      this.switch.removePort(port);
      if (helloMac !== null) this.services?.forgetName(helloMac);
      if (this.sockets.size === 0) this.armIdle(this.o.idleMs ?? 2_000);
    });
  }
}

/** True when something accepts connections on `path`. */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
