// `nodevisor daemon`: puts the inventory, the VM manager and the API together, listens on the
// 0600 UNIX socket (and optionally TCP with a token, with or without TLS), and finds the VMs
// that kept running while no daemon watched them.

import type { MemoryPolicySettings } from "./memory_policy.js";
import type { FastifyInstance } from "fastify";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";
import { ensureDefaultImage } from "../image/index.js";
import type { HostCapacity } from "./admission.js";
import { buildApi } from "./api.js";
import { ConsoleHub } from "./console_hub.js";
import { DisksService } from "./disks_service.js";
import { createMetrics } from "./metrics.js";
import type { HostPaths } from "./paths.js";
import type { VmSpec } from "./spec.js";
import { SqliteStore } from "./sqlite_store.js";
import { VmManager } from "./vm_manager.js";
import { currentVmCommand, type VmCommand } from "./vm_process.js";

export interface TcpListenOptions {
  host: string;
  port: number;
  token: string;
  tls?: { key: Buffer; cert: Buffer };
}

export interface DaemonOptions {
  paths: HostPaths;
  capacity?: Partial<HostCapacity>;
  tcp?: TcpListenOptions;
  command?: VmCommand;
  stopTimeoutMs?: number;
  restartBackoffMs?: { first: number; max: number };
  log?: (message: string) => void;
  cacheDir?: string;
  pollIntervalMs?: number;
  /** The memory policy (watermarks, floor, on/off); see docs/memory.md. */
  memoryPolicy?: Partial<MemoryPolicySettings>;
}

export class DaemonError extends Error {
  override name = "DaemonError";
}

export function defaultCapacity(): HostCapacity {
  return { cores: availableParallelism(), memoryBytes: totalmem(), cpuOvercommit: 4, memoryOvercommit: 1 };
}

export class Daemon {
  private constructor(
    readonly manager: VmManager,
    private readonly store: SqliteStore,
    private readonly servers: FastifyInstance[],
    readonly socketPath: string,
    readonly tcpPort: number | null,
  ) {}

  static async start(o: DaemonOptions): Promise<Daemon> {
    const log = o.log ?? ((m: string) => process.stderr.write(`nodevisor daemon: ${m}\n`));
    mkdirSync(o.paths.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(o.paths.runtimeDir, { recursive: true, mode: 0o700 });
    await claimSocket(o.paths.apiSocket);
    const store = new SqliteStore(join(o.paths.stateDir, "inventory.db"));
    const capacity = { ...defaultCapacity(), ...o.capacity };
    const command = o.command ?? currentVmCommand();
    const manager = new VmManager({
      store,
      paths: o.paths,
      capacity,
      command,
      log,
      ensureImage: async (spec: VmSpec) => {
        if (spec.kernel === undefined && (spec.image ?? "default") === "default") await ensureDefaultImage({ log });
      },
      ...(o.stopTimeoutMs !== undefined ? { stopTimeoutMs: o.stopTimeoutMs } : {}),
      ...(o.restartBackoffMs !== undefined ? { restartBackoffMs: o.restartBackoffMs } : {}),
      ...(o.memoryPolicy !== undefined ? { memoryPolicy: o.memoryPolicy } : {}),
    });
    const ctx = {
      manager,
      consoles: new ConsoleHub(),
      disks: new DisksService(store, join(o.paths.stateDir, "disks")),
      metrics: createMetrics(manager),
      paths: o.paths,
      command,
      ...(o.cacheDir !== undefined ? { cacheDir: o.cacheDir } : {}),
    };
    mkdirSync(join(o.paths.stateDir, "disks"), { recursive: true, mode: 0o700 });
    const servers: FastifyInstance[] = [];
    try {
      const local = await buildApi(ctx);
      servers.push(local);
      await listenPrivately(local, o.paths.apiSocket);
      let tcpPort: number | null = null;
      if (o.tcp !== undefined) {
        const remote = await buildApi(ctx, { token: o.tcp.token, ...(o.tcp.tls ? { https: o.tcp.tls } : {}) });
        servers.push(remote);
        await remote.listen({ host: o.tcp.host, port: o.tcp.port });
        const addr = remote.server.address();
        tcpPort = typeof addr === "object" && addr !== null ? addr.port : o.tcp.port;
      }
      await manager.recover();
      manager.startPolling(o.pollIntervalMs ?? 1000);
      log(`listening on ${o.paths.apiSocket}${tcpPort !== null ? ` and ${o.tcp!.tls ? "https" : "http"}://${o.tcp!.host}:${tcpPort}` : ""}`);
      return new Daemon(manager, store, servers, o.paths.apiSocket, tcpPort);
    } catch (e) {
      manager.close();
      await Promise.allSettled(servers.map((s) => s.close()));
      store.close();
      throw e;
    }
  }

  /** Stops serving; VMs keep running and the next daemon adopts them. */
  async close(): Promise<void> {
    this.manager.close();
    await Promise.allSettled(this.servers.map((s) => s.close()));
    this.store.close();
  }
}

/** Refuses a socket another daemon answers on; removes a stale one. */
async function claimSocket(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) throw new DaemonError(`Cannot listen on "${path}": a file that is not a socket is there; remove it.`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  const answered = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
  if (answered) throw new DaemonError(`Another nodevisor daemon already listens on "${path}"; stop it first or give --socket another path.`);
  unlinkSync(path);
}

async function listenPrivately(app: FastifyInstance, path: string): Promise<void> {
  const old = process.umask(0o177); // the socket is born 0600, so nobody slips in before the chmod
  try {
    await app.listen({ path });
  } finally {
    process.umask(old);
  }
  chmodSync(path, 0o600);
}
