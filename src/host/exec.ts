// `vms/{name}/exec`: runs a command in a fresh VM built from the spec (the API form of
// `nodevisor run -- CMD`) and returns its output and exit status.

import { spawn } from "node:child_process";
import type { VmCommand } from "./vm_process.js";
import { vmmEnv } from "../cli/vmm_node_flags.js";
import type { VmSpec } from "./spec.js";

export interface ExecResult {
  exitStatus: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  truncated: boolean;
}

const MAX_OUTPUT_BYTES = 1 << 20;

export function execArguments(spec: VmSpec, command: string[]): string[] {
  const args = ["run", "--memory", `${spec.memoryMiB}M`, "--cpus", String(spec.vcpus)];
  if (spec.image !== undefined) args.push("--image", spec.image);
  if (spec.kernel !== undefined) args.push("--kernel", spec.kernel);
  if (spec.initrd !== undefined) args.push("--initrd", spec.initrd);
  if (spec.cmdline) args.push("--append", spec.cmdline);
  // Read-only: the exec VM must not write a disk that the VM itself may use later.
  for (const d of spec.disks) args.push("--disk", [d.path, "readonly", ...(d.format ? [`format=${d.format}`] : [])].join(","));
  if (spec.cpuCap !== null) args.push("--cpu-cap", String(spec.cpuCap));
  return [...args, "--", ...command];
}

export function execInFreshVm(spec: VmSpec, command: string[], vmCommand: VmCommand, timeoutMs: number): Promise<ExecResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(vmCommand.execPath, [...vmCommand.prefix, ...execArguments(spec, command)], { stdio: ["ignore", "pipe", "pipe"], env: vmmEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    const keep = (chunks: Buffer[], d: Buffer, have: number): number => {
      const room = MAX_OUTPUT_BYTES - have;
      if (d.length > room) truncated = true;
      if (room > 0) chunks.push(d.subarray(0, room));
      return have + Math.min(room, d.length);
    };
    child.stdout.on("data", (d: Buffer) => (outBytes = keep(out, d, outBytes)));
    child.stderr.on("data", (d: Buffer) => (errBytes = keep(err, d, errBytes)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`Cannot start the exec VM: ${e.message}.`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut) return reject(new Error(`The command did not finish within ${Math.round(timeoutMs / 1000)} s and its VM was killed.`));
      if (signal !== null) return reject(new Error(`The exec VM was killed by ${signal}.`));
      resolve({ exitStatus: code ?? 1, stdout: Buffer.concat(out).toString("utf8"), stderr, durationMs: Date.now() - started, truncated });
    });
  });
}
