// A VM process started with `run --restore-wait`: Node and nodevisor are loaded and the control
// socket listens, but there is no machine yet. `snapshot-load {path}` restores a snapshot into it
// and replies once the guest runs — QEMU's `-incoming defer`, Firecracker's snapshot load into a
// started process. A pool of such processes turns a restore into milliseconds, without paying for
// Node's start each time.

import { ConfigError } from "./config.js";
import type { VmController, VmEvent, VmStats, VmStatus } from "./controller.js";

/** What the process does with a snapshot the client asked for. */
export interface RestoreRequestHandler<T> {
  /** Checks the snapshot and builds what the VM starts from; throws a sentence for a bad file (the process keeps waiting). */
  prepare(path: string): Promise<T>;
}

export interface SnapshotLoadReply {
  path: string;
  /** From the request to the guest running again. */
  loadMs: number;
}

type Listener<A> = (a: A) => void;

/** Listeners given before the VM exists, moved onto it once it does. */
class Subscriptions<A> {
  private readonly map = new Map<Listener<A>, (() => void) | null>();

  add(l: Listener<A>, target: ((l: Listener<A>) => () => void) | null): () => void {
    this.map.set(l, target === null ? null : target(l));
    return () => {
      this.map.get(l)?.();
      this.map.delete(l);
    };
  }

  moveTo(target: (l: Listener<A>) => () => void): void {
    for (const l of this.map.keys()) this.map.set(l, target(l));
  }
}

export class RestoreWait<T> {
  private vm: VmController | null = null;
  private loading = false;
  private readonly startedAt = performance.now();
  private readonly events = new Subscriptions<VmEvent>();
  private readonly outputs = new Subscriptions<Uint8Array>();
  private deliver!: (load: { request: T; started: (vm: VmController) => void; failed: (e: Error) => void }) => void;
  /** Resolves once a snapshot was checked: the process builds the VM from `request` and calls started() or failed(). */
  readonly requested = new Promise<{ request: T; started: (vm: VmController) => void; failed: (e: Error) => void }>((r) => (this.deliver = r));
  /** What the control server talks to: the waiting process, then the restored VM. */
  readonly controller: VmController;

  constructor(private readonly handler: RestoreRequestHandler<T>, private readonly onQuit: () => void) {
    const waiting: VmController = {
      status: () => this.status(),
      stats: () => idleStats(),
      pause: () => this.notYet("pause"),
      resume: () => this.notYet("resume"),
      powerdown: () => this.notYet("power down"),
      quit: () => this.onQuit(),
      consoleWrite: () => this.notYet("type on the console"),
      loadSnapshot: (path) => this.load(path),
      onConsoleOutput: (l) => this.outputs.add(l, this.vm ? (x) => this.vm!.onConsoleOutput(x) : null),
      onEvent: (l) => this.events.add(l, this.vm ? (x) => this.vm!.onEvent(x) : null),
    };
    this.controller = new Proxy(waiting, {
      get: (w, key: string | symbol) => {
        // Subscriptions stay with the waiter, which moves them onto the VM; the rest goes to the VM once it exists.
        const own = key === "onEvent" || key === "onConsoleOutput" || key === "loadSnapshot";
        const target = own || this.vm === null ? w : this.vm;
        const value = (target as unknown as Record<string | symbol, unknown>)[key];
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  private status(): VmStatus {
    return { state: "inmigrate", exitCode: null, reason: null, uptimeMs: Math.round(performance.now() - this.startedAt), vcpus: 0, memoryBytes: 0 };
  }

  private notYet(what: string): never {
    throw new ConfigError(`Cannot ${what}: this process waits for a snapshot; load one with snapshot-load first.`);
  }

  private async load(path: string): Promise<SnapshotLoadReply> {
    if (this.vm !== null || this.loading) throw new ConfigError("A snapshot is loaded already: a process restores one VM; start another for the next.");
    this.loading = true;
    const t0 = performance.now();
    let request: T;
    try {
      request = await this.handler.prepare(path);
    } catch (e) {
      this.loading = false; // a bad file: the process waits for the next request
      throw e;
    }
    return new Promise<SnapshotLoadReply>((resolve, reject) => {
      this.deliver({
        request,
        started: (vm) => {
          this.vm = vm;
          this.events.moveTo((l) => vm.onEvent(l));
          this.outputs.moveTo((l) => vm.onConsoleOutput(l));
          resolve({ path, loadMs: Math.round((performance.now() - t0) * 10) / 10 });
        },
        failed: reject,
      });
    });
  }
}

function idleStats(): VmStats {
  return { instructionsRetired: 0, mips: 0, idleMs: 0, trapsByCause: {}, devices: [] };
}
