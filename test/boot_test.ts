// Boot tests: the real Debian riscv64 kernel and busybox userland, through the real CLI.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { nodevisor, nodevisorInteractive, ensureTestImage } from "./helpers.js";

before(ensureTestImage, { timeout: 600_000 });

test("uname -m in a fresh VM prints riscv64 and exits 0", async () => {
  const r = await nodevisor(["run", "--", "uname", "-m"]);
  assert.equal(r.stdout, "riscv64\n", r.stderr);
  assert.equal(r.status, 0, `status ${r.status}; stderr:\n${r.stderr}`);
});

// /init's shell catches SIGCHLD without SA_RESTART: a child dying during a plain printf to a tty fails the write
// (about 1 in 150 tries here), which once lost the exit line. /init's `report` must deliver every line.
test("/init's report delivers every line to a tty while children die around it", async () => {
  const n = 300;
  const loop = `. /init; i=0; while [ $i -lt ${n} ]; do i=$((i+1)); sleep 5 & kill $!; report 2 'line %d\\n' $i; done`;
  const r = await nodevisor(["run", "--", "sh", "-c", loop], { timeoutMs: 300_000 });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("line "));
  assert.deepEqual(lines, Array.from({ length: n }, (_, i) => `line ${i + 1}`));
});

test("the guest command's non-zero exit status becomes ours, and stderr stays separate", async () => {
  const r = await nodevisor(["run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
  assert.equal(r.stdout, "out\n");
  assert.match(r.stderr, /^err$/m);
  assert.equal(r.status, 7);
});

test("a raw disk: the guest reads the host's pattern and the host sees the guest's writes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-disk-"));
  try {
    const disk = join(dir, "disk.img");
    const image = Buffer.alloc(4 << 20);
    const hostPattern = randomBytes(4096);
    hostPattern.copy(image, 8192);
    writeFileSync(disk, image);
    const guestPattern = "nodevisor-guest-wrote-this-block";
    const script =
      `dd if=/dev/vda bs=4096 skip=2 count=1 2>/dev/null | md5sum | cut -d' ' -f1; ` +
      `printf '${guestPattern}' | dd of=/dev/vda bs=512 seek=100 conv=notrunc 2>/dev/null; sync`;
    // Loading ext4 and its three dependencies checks four module signatures: ~1 min in CI, more on a loaded host.
    const r = await nodevisor(["run", "--disk", disk, "--", "sh", "-c", script], { timeoutMs: 400_000 });
    assert.equal(r.status, 0, `status ${r.status} (null: killed after 400 s); stderr:\n${r.stderr}`);
    const md5 = (await import("node:crypto")).createHash("md5").update(hostPattern).digest("hex");
    assert.equal(r.stdout.trim(), md5, "guest read the host-written pattern");
    const after = readFileSync(disk);
    assert.equal(after.subarray(51200, 51200 + guestPattern.length).toString(), guestPattern);
    assert.equal(after.subarray(8192, 8192 + 4096).compare(hostPattern), 0, "untouched data survives");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("poweroff typed on the interactive console ends the VM with status 0", async () => {
  const r = await nodevisorInteractive(["run"], /~# /, "poweroff -f\n");
  assert.equal(r.status, 0, r.stderr + r.stdout.slice(-2000));
});

test("with --cpus 2 the kernel brings up both harts", async () => {
  const r = await nodevisor(["run", "--cpus", "2", "--", "nproc"]);
  assert.equal(r.stdout, "2\n", r.stderr);
  assert.equal(r.status, 0);
});

test("the same kernel boots under Debian's OpenSBI with --firmware", async () => {
  const r = await nodevisor(["run", "--firmware", "opensbi", "--", "uname", "-m"]);
  assert.equal(r.stdout, "riscv64\n", r.stderr);
  assert.equal(r.status, 0);
});

test("a qcow2 disk written by the guest passes qemu-img check and holds the guest's bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-qcow2-"));
  try {
    const disk = join(dir, "vm.qcow2");
    const created = await nodevisor(["disk", "create", "-f", "qcow2", disk, "64M"]);
    assert.equal(created.status, 0, created.stderr);
    // 1 MiB of a known pattern at 8 MiB into the disk, then read it back in the guest.
    const script =
      "yes nodevisor-qcow2 | head -c 1048576 > /tmp/p; dd if=/tmp/p of=/dev/vda bs=65536 seek=128 conv=fsync 2>/dev/null; " +
      "dd if=/dev/vda bs=65536 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1; md5sum < /tmp/p | cut -d' ' -f1";
    // Loading ext4 and its three dependencies checks four module signatures: ~1 min in CI, more on a loaded host.
    const r = await nodevisor(["run", "--disk", disk, "--", "sh", "-c", script], { timeoutMs: 400_000 });
    assert.equal(r.status, 0, `status ${r.status} (null: killed after 400 s); stderr:\n${r.stderr}`);
    const [readBack, written] = r.stdout.trim().split("\n");
    assert.equal(readBack, written, "the guest reads back what it wrote");
    const check = spawnSync("qemu-img", ["check", disk]);
    assert.equal(check.status, 0, check.stdout.toString() + check.stderr.toString());
    const raw = join(dir, "vm.raw");
    assert.equal(spawnSync("qemu-img", ["convert", "-O", "raw", disk, raw]).status, 0);
    const expected = Buffer.from("nodevisor-qcow2\n".repeat(65536));
    assert.equal(readFileSync(raw).subarray(8 << 20, (8 << 20) + expected.length).compare(expected), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an ext4 disk: mounting loads ext4 on demand, the guest reads the host's file and the host reads the guest's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-ext4-"));
  try {
    const content = join(dir, "content");
    mkdirSync(content);
    writeFileSync(join(content, "hello.txt"), "written by the host\n");
    const disk = join(dir, "fs.img");
    const mkfs = spawnSync("mkfs.ext4", ["-q", "-F", "-d", content, disk, "32M"]);
    assert.equal(mkfs.status, 0, mkfs.stderr.toString());
    const script = "mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && echo 'written by the guest' > /mnt/guest.txt && umount /mnt";
    // Loading ext4 and its three dependencies checks four module signatures: ~1 min in CI, more on a loaded host.
    const r = await nodevisor(["run", "--disk", disk, "--", "sh", "-c", script], { timeoutMs: 400_000 });
    assert.equal(r.status, 0, `status ${r.status} (null: killed after 400 s); stderr:\n${r.stderr}`);
    assert.equal(r.stdout, "written by the host\n");
    const cat = spawnSync("debugfs", ["-R", "cat /guest.txt", disk]);
    assert.equal(cat.stdout.toString(), "written by the guest\n", cat.stderr.toString());
    assert.equal(spawnSync("e2fsck", ["-fn", disk]).status, 0, "the filesystem is clean after the guest unmounted it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
