// A VM process started with `run --restore-wait`: Node and nodevisor are loaded and the control
// socket listens, but there is no machine yet. `snapshot-load {path}` restores a snapshot into it
// and replies once the guest runs — QEMU's `-incoming defer`, Firecracker's snapshot load into a
// started process. A pool of such processes turns a restore into milliseconds, without paying for
// Node's start each time.

import { ConfigError } from "./config.js";
import type { VmController, VmStats, VmStatus } from "./controller.js";

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

export class RestoreWait<T> {
  // A load was asked for and its file was good: this process restores no other.
  private loading = false;
  private readonly startedAt = performance.now();
  private deliver!: (load: { request: T; started: () => void; failed: (e: Error) => void }) => void;
  /**
   * Resolves once a snapshot was checked: the process builds the VM from `request`, puts it behind
   * the control server (ControlServer.replaceController) and calls started(), or calls failed().
   */
  readonly requested = new Promise<{ request: T; started: () => void; failed: (e: Error) => void }>((r) => (this.deliver = r));
  /** What the control server talks to until the VM exists. */
  readonly controller: VmController;

  constructor(private readonly handler: RestoreRequestHandler<T>, private readonly onQuit: () => void) {
    // Nothing happens while waiting, so no event or console output ever reaches a subscriber.
    const nothingToHear = (): (() => void) => () => {};
    this.controller = {
      status: () => this.status(),
      stats: () => idleStats(),
      pause: () => this.notYet("pause"),
      resume: () => this.notYet("resume"),
      powerdown: () => this.notYet("power down"),
      quit: () => this.onQuit(),
      consoleWrite: () => this.notYet("type on the console"),
      loadSnapshot: (path) => this.load(path),
      onConsoleOutput: nothingToHear,
      onEvent: nothingToHear,
    };
  }

  private status(): VmStatus {
    return { state: "inmigrate", exitCode: null, reason: null, uptimeMs: Math.round(performance.now() - this.startedAt), vcpus: 0, memoryBytes: 0 };
  }

  private notYet(what: string): never {
    throw new ConfigError(`Cannot ${what}: this process waits for a snapshot; load one with snapshot-load first.`);
  }

  private async load(path: string): Promise<SnapshotLoadReply> {
    if (this.loading) throw new ConfigError("A snapshot is loaded already: a process restores one VM; start another for the next.");
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
        started: () => resolve({ path, loadMs: Math.round((performance.now() - t0) * 10) / 10 }),
        failed: reject,
      });
    });
  }
}

function idleStats(): VmStats {
  return { instructionsRetired: 0, mips: 0, idleMs: 0, trapsByCause: {}, devices: [] };
}
