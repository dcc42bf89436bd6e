// The destination side of a live migration (`nodevisor run --incoming URI`): listen, take one
// connection, receive the config, the RAM pages into a fresh guest RAM and the device state.
// The VM is built from them (READY) but runs only once the source says GO, so only one side
// ever runs the guest; a stream that is not a migration, or ends early, is refused with a
// sentence and nothing runs.

import { createServer, type Server, type Socket } from "node:net";
import { rm, unlink } from "node:fs/promises";
import { GuestRam } from "../../seams/guest_ram.js";
import { MAX_MEMORY, RAM_BASE } from "../../machine/layout.js";
import { ConfigError, validateConfig, type VmConfig } from "../config.js";
import { checkSnapshotHeader, type VmSnapshotHeader } from "../snapshot/vm_snapshot.js";
import { SnapshotError } from "../snapshot/snapshot_file.js";
import { BlockCopyTarget } from "./block_copy.js";
import { describeUri, Frame, frame, FrameReader, jsonFrame, MigrationError, PAGE_BYTES, parseJson, parsePages, writeAll, type MigrationUri } from "./stream.js";


export class IncomingMigration {
  /** True once the source said GO: the guest is this side's from then on. */
  private handedOver = false;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: FrameReader,
    private readonly peer: string,
    readonly header: VmSnapshotHeader,
    readonly ram: GuestRam,
    readonly pagesReceived: number,
    /** The disk copies a block migration made here. */
    private readonly copies: readonly string[],
  ) {}

  /**
   * Listens on `uri` for one source and receives the whole VM; resolves once its state arrived
   * (the guest does not run yet). Throws MigrationError with a sentence for a bad stream.
   */
  static async receive(uri: MigrationUri, opts: { onListening?: (where: string) => void; diskPaths?: readonly string[] } = {}): Promise<IncomingMigration> {
    const socket = await acceptOne(uri, opts.onListening);
    const peer = `The migration source (${socket.remoteAddress ?? describeUri(uri)})`;
    const reader = new FrameReader(socket, peer, true);
    let copies: BlockCopyTarget | null = null;
    try {
      const hello = parseJson<{ config?: VmConfig; blockDisks?: Array<{ index: number; size: number }> }>(await reader.expect(Frame.HELLO), peer);
      const diskCount = Array.isArray(hello.config?.disks) ? hello.config.disks.length : 0;
      const diskPaths = opts.diskPaths ?? [];
      if (diskPaths.length > 0 && diskPaths.length !== diskCount) {
        throw new MigrationError(`${peer} brings a VM with ${diskCount} disk(s) and this destination was given ${diskPaths.length} --disk; give one for each, in order, or none to use the source's paths.`);
      }
      if (Array.isArray(hello.blockDisks) && hello.blockDisks.length > 0) copies = await BlockCopyTarget.create(hello.blockDisks, { paths: diskPaths, diskCount, peer });
      const memoryBytes = hello.config?.memoryBytes;
      if (typeof memoryBytes !== "number" || !Number.isSafeInteger(memoryBytes) || memoryBytes <= 0 || memoryBytes > MAX_MEMORY || memoryBytes % PAGE_BYTES !== 0) {
        throw new MigrationError(`${peer} asked for ${String(memoryBytes).slice(0, 40)} bytes of RAM, which no VM has; the migration stream is corrupt.`);
      }
      const ram = new GuestRam(RAM_BASE, memoryBytes);
      const ramPages = memoryBytes / PAGE_BYTES;
      let received = 0;
      for (;;) {
        const f = await reader.next();
        if (f.kind === Frame.PAGES) {
          const { pages, data } = parsePages(f.payload, ramPages, peer);
          for (let k = 0; k < pages.length; k++) ram.u8.set(data.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES), pages[k]! * PAGE_BYTES);
          received += pages.length;
          continue;
        }
        if (f.kind === Frame.BLOCKS) {
          if (copies === null) throw new MigrationError(`${peer} sent disk data without announcing a disk copy; the migration stream is corrupt.`);
          await copies.write(f.payload);
          continue;
        }
        if (f.kind === Frame.STATE) {
          const header = parseJson<VmSnapshotHeader>(f.payload, peer);
          try {
            checkSnapshotHeader(peer, header);
            if (header.config.memoryBytes !== memoryBytes) throw new SnapshotError("its state is for another RAM size");
            validateConfig({ ...header.config });
          } catch (e) {
            if (e instanceof SnapshotError || e instanceof ConfigError) throw new MigrationError(`${peer} sent a VM state that cannot be used: ${e.message}`);
            throw e;
          }
          // The disks open here: the copies just made, else the paths given, else the source's (shared storage).
          const copied = (await copies?.finish()) ?? new Map<number, string>();
          header.config = {
            ...header.config,
            disks: header.config.disks.map((d, i) => {
              const path = copied.get(i) ?? diskPaths[i];
              return path === undefined ? d : { ...d, path, format: copied.has(i) ? "qcow2" : d.format };
            }),
          };
          return new IncomingMigration(socket, reader, peer, header, ram, received, [...copied.values()]);
        }
        if (f.kind === Frame.ERROR) throw new MigrationError(`${peer} gave up the migration: ${parseJson<{ message?: string }>(f.payload, peer).message ?? "no reason given"}`);
        throw new MigrationError(`${peer} sent an unexpected frame (kind ${f.kind}) while sending RAM; the migration stream is corrupt.`);
      }
    } catch (e) {
      socket.destroy();
      await copies?.abandon();
      throw e;
    }
  }

  /** The VM is built: tell the source, and wait for GO (the source will not run the guest after it). */
  async ready(): Promise<void> {
    await writeAll(this.socket, frame(Frame.READY));
    await this.reader.expect(Frame.GO);
    this.handedOver = true;
  }

  /**
   * The migration failed before the source handed the guest over: the disk copies made for it
   * are removed (they hold nothing the source's disks do not), so no half-received VM is left.
   * Call it once the VM has closed them.
   */
  async abandonCopies(): Promise<void> {
    if (this.handedOver) return;
    await Promise.allSettled(this.copies.map((path) => rm(path, { force: true })));
  }

  /** The guest runs here now. */
  async running(): Promise<void> {
    await writeAll(this.socket, frame(Frame.RUNNING)).catch(() => {});
    this.socket.end();
  }

  /** Building the VM failed: the source resumes the guest. */
  fail(message: string): void {
    void writeAll(this.socket, jsonFrame(Frame.ERROR, { message })).catch(() => {}).finally(() => this.socket.end());
  }

  get source(): string {
    return this.peer;
  }
}

/** Listens until one connection arrives, then stops listening. */
async function acceptOne(uri: MigrationUri, onListening?: (where: string) => void): Promise<Socket> {
  if (uri.kind === "unix") await unlink(uri.path).catch(() => {});
  return new Promise((resolve, reject) => {
    const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
      server.close();
      if (uri.kind === "unix") void unlink(uri.path).catch(() => {});
      socket.setNoDelay(true);
      resolve(socket);
    });
    server.once("error", (e) => reject(new ConfigError(`Cannot listen for a migration on ${describeUri(uri)}: ${e.message}.`)));
    // Port 0 picks a free port: say which.
    const listening = (): void => {
      const a = server.address();
      onListening?.(uri.kind === "tcp" && a !== null && typeof a === "object" ? describeUri({ ...uri, port: a.port }) : describeUri(uri));
    };
    if (uri.kind === "unix") server.listen(uri.path, listening);
    else server.listen(uri.port, uri.host, listening);
  });
}
