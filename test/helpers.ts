// Helpers for boot tests: run the real CLI (from source, through tsx) as a child process.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { defaultCacheDir } from "../src/image/guest_image.js";
import { ensureDefaultImage } from "../src/image/index.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = join(ROOT, "src/cli/main.ts");

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `nodevisor ARGS` with optional stdin text; resolves when it exits (killed after timeoutMs). */
export function nodevisor(args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = opts.env ? { ...process.env, ...opts.env } : process.env;
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 180_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Builds the default image if it is not cached yet (as `nodevisor run` would on first use). */
export async function ensureTestImage(): Promise<void> {
  await ensureDefaultImage();
  if (!existsSync(join(defaultCacheDir(), "images", "default", "manifest.json"))) {
    throw new Error("the default image is missing after a build; run `npx nodevisor image build` to see why");
  }
}

/**
 * Runs `nodevisor ARGS` interactively: waits until the console output matches `waitFor`, then
 * types `input` (as a person would, after the prompt appears), and resolves when it exits.
 */
export function nodevisorInteractive(args: string[], waitFor: RegExp, input: string, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let typed = false;
    child.stdout.on("data", (d) => {
      stdout += d;
      if (!typed && waitFor.test(stdout)) {
        typed = true;
        child.stdin.write(input);
      }
    });
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
