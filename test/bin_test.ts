// bin/nodevisor.js, run as a program (`npx nodevisor`): its shell lines start Node once with the
// VMM's flags (src/cli/vmm_node_flags.ts). Run by `node bin/nodevisor.js`, `run` starts the VMM
// process again with its Node flags, and the first process only mirrors it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, ensureTestImage } from "./helpers.js";
import { v8PoolSize } from "../src/cli/vmm_node_flags.js";

const BIN = join(ROOT, "bin/nodevisor.js");

function start(args: string[], env: NodeJS.ProcessEnv = {}, asProgram = false) {
  const child = spawn(asProgram ? BIN : process.execPath, asProgram ? args : [BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: string | null; stderr: string }>((r) => child.on("close", (code, signal) => r({ code, signal, stderr })));
  return { child, exited };
}

const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

test("`nodevisor run` runs the VM in a second process with V8's pool flag, and exits with the guest command's status", { skip: !existsSync(join(ROOT, "dist/cli/main.js")) ? "dist/ is not built (npm run build)" : process.platform !== "linux" ? "reads /proc" : false }, async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bin-"));
  try {
    const pidFile = join(dir, "vm.pid");
    const { child, exited } = start(["run", "--pid-file", pidFile, "--", "sh", "-c", "sleep 1; exit 3"], { NODEVISOR_V8_POOL_SIZE: "2" });
    while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 50));
    const vmm = Number(readFileSync(pidFile, "utf8"));
    assert.notEqual(vmm, child.pid, "the VM runs in a process of its own");
    assert.ok(cmdline(vmm).includes("--v8-pool-size=2"), `the VMM process has the pool flag: ${cmdline(vmm).join(" ")}`);
    const r = await exited;
    assert.equal(r.code, 3, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("run as a program, `nodevisor run` is one process with V8's pool flag; other commands get no flag", { skip: !existsSync(join(ROOT, "dist/cli/main.js")) ? "dist/ is not built (npm run build)" : process.platform !== "linux" ? "reads /proc" : false }, async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bin-"));
  try {
    for (const [env, flag] of [[{ NODEVISOR_V8_POOL_SIZE: "3" }, "--v8-pool-size=3"], [{ NODEVISOR_V8_POOL_SIZE: "bogus" }, `--v8-pool-size=${v8PoolSize()}`]] as const) {
      const pidFile = join(dir, "vm.pid");
      rmSync(pidFile, { force: true });
      const { child, exited } = start(["run", "--pid-file", pidFile, "--", "sh", "-c", "sleep 1; exit 4"], env, true);
      while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 50));
      assert.equal(Number(readFileSync(pidFile, "utf8")), child.pid, "no second process");
      assert.ok(cmdline(child.pid!).includes(flag), `the VMM process has ${flag}: ${cmdline(child.pid!).join(" ")}`);
      assert.equal((await exited).code, 4);
    }
    const help = start(["--help"], {}, true);
    const { code } = await help.exited;
    assert.equal(code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SIGTERM to `nodevisor run` stops the VM process too; NODEVISOR_V8_POOL_SIZE=default keeps one process", { skip: !existsSync(join(ROOT, "dist/cli/main.js")) ? "dist/ is not built (npm run build)" : process.platform !== "linux" ? "reads /proc" : false }, async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bin-"));
  try {
    const pidFile = join(dir, "vm.pid");
    const { child, exited } = start(["run", "--pid-file", pidFile, "--", "sleep", "600"]);
    while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 50));
    const vmm = Number(readFileSync(pidFile, "utf8"));
    child.kill("SIGTERM");
    const r = await exited;
    assert.notEqual(r.code, 0, "a VM stopped before its command finished is not a success");
    assert.equal(existsSync(`/proc/${vmm}`), false, "the VM process is gone");

    const onePidFile = join(dir, "one.pid");
    const one = start(["run", "--pid-file", onePidFile, "--", "true"], { NODEVISOR_V8_POOL_SIZE: "default" });
    while (!existsSync(onePidFile)) await new Promise((r) => setTimeout(r, 50));
    assert.equal(Number(readFileSync(onePidFile, "utf8")), one.child.pid);
    assert.equal((await one.exited).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
