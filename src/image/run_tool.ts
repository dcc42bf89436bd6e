// Runs a host tool (apt-get, dpkg-deb, xz) and turns its failures into sentences that say what to do.

import { spawn } from "node:child_process";

export interface ToolRun {
  stdout: Buffer;
  stderr: string;
}

export interface ToolOptions {
  cwd?: string;
  /** What we were doing, for the error message: "download the guest packages". */
  purpose: string;
  /** Advice when the tool is not installed. */
  missingHint?: string;
}

export function runTool(command: string, args: string[], opts: ToolOptions): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") {
        reject(new Error(`Cannot ${opts.purpose}: ${command} was not found on this host. ${opts.missingHint ?? `Install ${command}.`}`));
      } else {
        reject(new Error(`Cannot ${opts.purpose}: running ${command} failed (${e.message}).`));
      }
    });
    child.on("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) {
        resolve({ stdout: Buffer.concat(out), stderr });
        return;
      }
      const tail = stderr.trim().split("\n").slice(-6).join("\n");
      const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
      reject(new Error(`Cannot ${opts.purpose}: \`${command} ${args.join(" ")}\` ${how}.${tail ? `\n${tail}` : ""}`));
    });
  });
}
