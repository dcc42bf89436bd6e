// Bad input: one clear sentence, exit status 2, nothing written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodevisor } from "./helpers.js";

test("an unknown option is named, with a pointer to --help", async () => {
  const r = await nodevisor(["run", "--frobnicate"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--frobnicate.*nodevisor run --help/s);
});

test("a missing kernel is named", async () => {
  const r = await nodevisor(["run", "--kernel", "/nonexistent/vmlinux", "--initrd", "/nonexistent/initrd", "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Cannot find the kernel "\/nonexistent\/vmlinux"/);
});

test("a file that is not a kernel is refused, and nothing is written", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-bad-"));
  try {
    writeFileSync(join(dir, "notakernel"), "hello, I am text\n".repeat(100));
    writeFileSync(join(dir, "initrd"), "x");
    const r = await nodevisor(["run", "--kernel", join(dir, "notakernel"), "--initrd", join(dir, "initrd"), "--console-log", join(dir, "log"), "--", "true"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /neither a RISC-V Linux Image.*nor a RISC-V ELF/);
    assert.deepEqual(readdirSync(dir).sort(), ["initrd", "notakernel"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("memory out of range gives the allowed range", async () => {
  const r = await nodevisor(["run", "--memory", "1T", "--kernel", "/x", "--initrd", "/y", "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /between 16 MiB and 4 GiB/);
});

test("too many vCPUs is refused", async () => {
  const r = await nodevisor(["run", "--cpus", "64", "--kernel", "/x", "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /1 to 8/);
});

test("an unknown subcommand is refused", async () => {
  const r = await nodevisor(["frob"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "frob"/);
});

test("a command too long for the kernel command line is refused instead of truncated", async () => {
  const r = await nodevisor(["run", "--kernel", "/bin/sh", "--initrd", "/bin/sh", "--", "echo", "x".repeat(2000)]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /kernel command line would be \d+ bytes, over the kernel's 1023/);
});

test("negative memory and vCPU counts get our one sentence, not the argument parser's text", async () => {
  for (const [args, pattern] of [
    [["--memory", "-1G"], /^Cannot use memory size "-1G": write a number/],
    [["-m", "-1G"], /^Cannot use memory size "-1G"/],
    [["--cpus", "-1"], /^Cannot give the VM -1 vCPUs: choose a whole number from 1 to 8\.$/],
  ] as const) {
    const r = await nodevisor(["run", ...args, "--kernel", "/x", "--", "true"]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr.trim(), pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

test("a console log in a missing folder or on a directory is refused with a sentence before the VM runs", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-log-"));
  try {
    const fw = join(dir, "fw.bin");
    writeFileSync(fw, new Uint8Array([0x6f, 0x00, 0x00, 0x00])); // j . (spins forever if it ever ran)
    for (const [log, why] of [
      [join(dir, "missing", "console.log"), /its folder does not exist/],
      [dir, /it is a directory/],
    ] as const) {
      const r = await nodevisor(["run", "--firmware", fw, "--console-log", log], { timeoutMs: 60_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr.trim(), new RegExp(`^Cannot write the console log ".*": ${why.source}\\. Give --console-log a file`));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
