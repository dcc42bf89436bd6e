import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeExit, incomingArguments, rotateLog, runArguments, truncateLogIfLarge, VM_MALLOC_TUNABLE, vmProcessEnv } from "./vm_process.js";
import { withDefaults } from "./spec.js";
import { vmPaths } from "./paths.js";

test("a VM process's end is told apart: clean power-off, reboot, quit, panic, signal, bad status, unknown", () => {
  assert.deepEqual(describeExit(0, null, "poweroff"), { code: 0, signal: null, reason: "poweroff", failed: false, message: "the guest powered off" });
  assert.equal(describeExit(0, null, "reset").failed, false);
  assert.equal(describeExit(0, null, "quit").failed, false);
  assert.deepEqual([describeExit(1, null, "guest-panic").failed, describeExit(1, null, "guest-panic").message], [true, "the guest kernel panicked"]);
  assert.equal(describeExit(null, "SIGKILL", null).message, "the VM process was killed by SIGKILL");
  assert.equal(describeExit(70, null, "crashed").message, "the VM stopped (crashed) with status 70");
  assert.equal(describeExit(2, null, null).message, "the VM process exited with status 2");
  assert.match(describeExit(null, null, null).message, /status is unknown/);
});

test("the run options carry the whole spec, and the daemon's own options", () => {
  const spec = withDefaults({
    name: "web1",
    vcpus: 2,
    memoryMiB: 512,
    kernel: "/k",
    initrd: "/i",
    cmdline: "quiet",
    cpuCap: 40,
    disks: [{ path: "/d.qcow2", readOnly: true, format: "qcow2", bps: 1000, iops: 10, burst: 500 }],
    nics: [{ mode: "user", hostForwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }] }, { mode: "switch", switch: "lab", trunk: [10, 20] }],
  });
  const p = vmPaths({ stateDir: "/s", runtimeDir: "/r", apiSocket: "/r/api.sock" }, "web1");
  assert.deepEqual(runArguments(spec, p), [
    "run", "--name", "web1", "--memory", "512M", "--cpus", "2", "--kernel", "/k", "--initrd", "/i", "--append", "quiet",
    "--disk", "/d.qcow2,readonly,format=qcow2,bps=1000,iops=10,burst=500",
    "--net", "user,hostfwd=tcp:2222-:22", "--net", "switch=lab,trunk=10,20", "--cpu-cap", "40",
    "--control-socket", "/r/vms/web1.sock", "--control-wait", "--pid-file", "/r/vms/web1.pid", "--console", "none", "--terminal", "xterm-256color,24x80",
  ]);
  // A restore is held for the daemon too; a migration's destination already waits for its source (run refuses both).
  assert.ok(runArguments({ ...spec, restore: "/s.snap" }, p).includes("--control-wait"));
  assert.ok(!incomingArguments(spec, p, "tcp:0.0.0.0:0").includes("--control-wait"));
});

test("logs rotate at start and are copied away and truncated when they grow too large", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-log-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, "console.log");
  for (const text of ["one", "two", "three", "four"]) {
    writeFileSync(log, text);
    rotateLog(log, 3);
  }
  assert.deepEqual([1, 2, 3].map((i) => readFileSync(`${log}.${i}`, "utf8")), ["four", "three", "two"]);
  assert.equal(existsSync(`${log}.4`), false);
  writeFileSync(log, "x".repeat(100));
  assert.equal(truncateLogIfLarge(log, 200), false);
  assert.equal(truncateLogIfLarge(log, 50), true);
  assert.equal(readFileSync(log, "utf8"), "");
  assert.equal(readFileSync(`${log}.1`, "utf8"), "x".repeat(100));
});

test("VM processes get a fixed malloc mmap threshold, unless the operator chose one", () => {
  const env = vmProcessEnv({ PATH: "/bin" }, "web1");
  assert.deepEqual(env, { PATH: "/bin", NODEVISOR_VM_NAME: "web1", GLIBC_TUNABLES: "glibc.malloc.mmap_threshold=131072" });
  assert.equal(vmProcessEnv({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }, "a").GLIBC_TUNABLES, `glibc.malloc.arena_max=2:${VM_MALLOC_TUNABLE}`);
  assert.equal(vmProcessEnv({ GLIBC_TUNABLES: "glibc.malloc.mmap_threshold=65536" }, "a").GLIBC_TUNABLES, "glibc.malloc.mmap_threshold=65536");
});
