// Test helper for network tests: runs `nodevisor run` (or QEMU) as a child process whose output can be
// watched while it runs, and stopped when the test is done with it.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { ControlClient } from "../../src/vm/control_client.js";
import { CLI, ROOT } from "../helpers.js";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Types a line on the VM's serial console through its control socket. */
export const typeLine = (c: ControlClient, line: string): Promise<unknown> => c.execute("console-write", { data: Buffer.from(`${line}\n`).toString("base64") });

/** Polls `cond` every 100 ms until it holds; throws naming `what` after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export class VmProcess {
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString("latin1")));
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString("latin1")));
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** `nodevisor run ARGS` from source. */
  static nodevisor(args: string[], env: NodeJS.ProcessEnv = {}): VmProcess {
    return new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--memory", "256M", ...args], env);
  }

  /** A control-socket client once the VM serves `sock` (it may still be starting). */
  async connect(sock: string, ms = 120_000): Promise<ControlClient> {
    const deadline = performance.now() + ms;
    await until(() => existsSync(sock), ms, `the control socket ${sock} (stderr: ${this.stderr.slice(-2000)})`);
    // The socket file appears at bind(), a moment before listen(): a refusal then means "not yet".
    for (;;) {
      try {
        return await ControlClient.connect(sock);
      } catch (e) {
        if (!/ECONNREFUSED/.test((e as Error).message) || performance.now() > deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resolves when stdout matches `re`; rejects when the process exits first or after `ms`. */
  async waitFor(re: RegExp, ms = 300_000): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    let done = false;
    void this.exited.then(() => (done = true));
    for (;;) {
      const m = re.exec(this.stdout);
      if (m) return m;
      if (done || Date.now() > end) {
        throw new Error(`${done ? "the VM exited" : "timed out"} before printing ${re}; stdout:\n${this.stdout.slice(-3000)}\nstderr:\n${this.stderr.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Asks the VM to stop (SIGTERM quits a nodevisor VM) and waits for it. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
