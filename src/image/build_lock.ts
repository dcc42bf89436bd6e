// One image build at a time per cache: a lock file holding the builder's pid; a dead builder's lock is taken over.

import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const POLL_MS = 500;
const MAX_WAIT_MS = 15 * 60 * 1000;

/** Runs `fn` holding the lock; `fn` learns whether it had to wait for another builder first. */
export async function withBuildLock<T>(lockPath: string, log: ((line: string) => void) | undefined, fn: (waited: boolean) => Promise<T>): Promise<T> {
  let waited = false;
  const deadline = Date.now() + MAX_WAIT_MS;
  for (;;) {
    if (tryLock(lockPath)) break;
    const holder = lockHolder(lockPath);
    if (holder === null || !processAlive(holder)) {
      rmSync(lockPath, { force: true }); // left behind by a build that died
      continue;
    }
    if (!waited) log?.(`another nodevisor process (pid ${holder}) is building this image; waiting for it`);
    waited = true;
    if (Date.now() > deadline) {
      throw new Error(`Cannot build the guest image: process ${holder} has held ${lockPath} for 15 minutes. Stop it, or remove the lock file.`);
    }
    await sleep(POLL_MS);
  }
  try {
    return await fn(waited);
  } finally {
    rmSync(lockPath, { force: true });
  }
}

// The pid is written to a private file first and then hard-linked into place, so a lock is never seen empty.
function tryLock(path: string): boolean {
  const tmp = `${path}.${process.pid}`;
  writeFileSync(tmp, `${process.pid}\n`);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function lockHolder(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
