// `--net user`: rootless NAT through passt (the user-mode network daemon Podman and libvirt use).
// passt gives the guest DHCP, DNS, NAT and port forwarding; the host's loopback is reachable at
// the gateway address. We start one passt per NIC, speak the stream framing on its UNIX socket and
// stop it with the VM.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamSocketBackend } from "./stream_backend.js";
import type { HostForward } from "./spec.js";

export class PasstError extends Error {
  override name = "PasstError";
}

export function passtCommand(): string {
  return process.env.NODEVISOR_PASST ?? "passt";
}

/** Throws a sentence saying how to install passt when it is missing. */
export function checkPasstInstalled(what = "user-mode networking", otherwise = "use --net switch=NAME"): void {
  const r = spawnSync(passtCommand(), ["--version"], { stdio: "ignore" });
  if (r.error !== undefined) {
    throw new PasstError(`Cannot start ${what}: passt is not installed. Install it (Debian/Ubuntu: \`apt-get install passt\`), or ${otherwise}.`);
  }
}

/** passt's -t / -u arguments for the host forwards. */
export function passtForwardArgs(forwards: readonly HostForward[]): string[] {
  const args: string[] = [];
  for (const f of forwards) args.push(f.protocol === "tcp" ? "-t" : "-u", `${f.hostAddress ? `${f.hostAddress}/` : ""}${f.hostPort}:${f.guestPort}`);
  return args;
}

export interface PasstOptions {
  hostForwards: readonly HostForward[];
  mac: Uint8Array;
  log?: (msg: string) => void;
  timeoutMs?: number;
}

export async function startPasst(o: PasstOptions): Promise<StreamSocketBackend> {
  checkPasstInstalled();
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-passt-"));
  const sock = join(dir, "passt.sock");
  // -f: stay in the foreground as our child; -1: quit when the VM disconnects; -q: no banner.
  const args = ["-f", "-q", "-1", "-4", "-s", sock, ...passtForwardArgs(o.hostForwards)];
  if (process.getuid?.() === 0) args.push("--runas", "0"); // keep access to our private socket directory
  const child: ChildProcess = spawn(passtCommand(), args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
  let exited = false;
  child.on("exit", () => (exited = true));
  const cleanup = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          child.kill("SIGKILL");
          r();
        }, 2000);
        child.once("exit", () => {
          clearTimeout(t);
          r();
        });
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    if (exited) {
      await cleanup();
      throw new PasstError(`Cannot start user-mode networking: passt exited at once (${stderr.trim().split("\n").pop() || "no message"}). Check the hostfwd ports are free.`);
    }
    const s = await new Promise<Socket | null>((resolve) => {
      const c = connect(sock);
      c.once("connect", () => {
        c.removeAllListeners("error");
        resolve(c);
      });
      c.once("error", () => resolve(null));
    });
    if (s !== null) {
      const fwd = o.hostForwards.map((f) => `${f.protocol}:${f.hostPort}->${f.guestPort}`).join(" ");
      log(`user networking through passt (pid ${child.pid})${fwd ? `, forwarding ${fwd}` : ""}`);
      return new StreamSocketBackend("user", s, log, cleanup);
    }
    if (Date.now() > deadline) {
      await cleanup();
      throw new PasstError(`Cannot start user-mode networking: passt did not open its socket within ${(o.timeoutMs ?? 10_000) / 1000} s.`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
