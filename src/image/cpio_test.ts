import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpioWriter } from "./cpio.js";

// An independent reader, written from the newc description in the kernel's buffer-format.rst.
function readNewc(buf: Buffer): Array<{ name: string; mode: number; nlink: number; data: Buffer; rmaj: number; rmin: number; ino: number }> {
  const out = [];
  let off = 0;
  for (;;) {
    assert.equal(buf.toString("ascii", off, off + 6), "070701", `magic at ${off}`);
    const field = (i: number): number => parseInt(buf.toString("ascii", off + 6 + i * 8, off + 14 + i * 8), 16);
    const namesize = field(11);
    const filesize = field(6);
    assert.equal(field(12), 0, "check field is zero");
    const name = buf.toString("utf8", off + 110, off + 110 + namesize - 1);
    assert.equal(buf[off + 110 + namesize - 1], 0, "name is NUL-terminated");
    let dataOff = off + 110 + namesize;
    dataOff += (4 - (dataOff % 4)) % 4;
    const data = buf.subarray(dataOff, dataOff + filesize);
    out.push({ name, mode: field(1), nlink: field(4), data, rmaj: field(9), rmin: field(10), ino: field(0) });
    off = dataOff + filesize;
    off += (4 - (off % 4)) % 4;
    if (name === "TRAILER!!!") break;
  }
  assert.equal(off, buf.length, "nothing after the trailer's padding");
  return out;
}

test("a one-file archive matches the newc layout byte for byte", () => {
  const w = new CpioWriter({ mtime: 0x5f5e100 });
  w.add({ kind: "file", path: "/init", data: Buffer.from("hi\n"), mode: 0o755 });
  const buf = w.finish();
  const expectedHeader =
    "070701" +
    "00000001" + // ino
    "000081ED" + // mode: S_IFREG | 0755
    "00000000" + // uid
    "00000000" + // gid
    "00000001" + // nlink
    "05F5E100" + // mtime
    "00000003" + // filesize
    "00000000" + "00000000" + // dev major/minor
    "00000000" + "00000000" + // rdev major/minor
    "00000005" + // namesize: "init" + NUL
    "00000000"; // check
  assert.equal(buf.toString("ascii", 0, 110), expectedHeader);
  // 110 + 5 = 115, padded to 116; data 3 bytes padded to 4.
  assert.deepEqual([...buf.subarray(110, 116)], [0x69, 0x6e, 0x69, 0x74, 0, 0]);
  assert.equal(buf.toString("ascii", 116, 119), "hi\n");
  assert.equal(buf[119], 0);
  const trailer = buf.subarray(120);
  assert.equal(trailer.toString("ascii", 0, 6), "070701");
  assert.equal(trailer.toString("ascii", 6 + 11 * 8, 6 + 12 * 8), "0000000B"); // "TRAILER!!!" + NUL
  assert.equal(trailer.toString("ascii", 110, 120), "TRAILER!!!");
  assert.equal((120 + trailer.length) % 4, 0);
  assert.equal(trailer.length, 124); // 110 + 11 = 121, padded to 124
});

test("directories, symlinks and device nodes round-trip through an independent reader", () => {
  const w = new CpioWriter();
  w.add({ kind: "dir", path: "bin" });
  w.add({ kind: "file", path: "bin/busybox", data: Buffer.alloc(5, 7), mode: 0o755 });
  w.add({ kind: "symlink", path: "bin/sh", target: "busybox" });
  w.add({ kind: "dir", path: "dev" });
  w.add({ kind: "chardev", path: "dev/console", major: 5, minor: 1 });
  const entries = readNewc(w.finish());
  assert.deepEqual(
    entries.map((e) => [e.name, e.mode.toString(8), e.nlink]),
    [
      ["bin", "40755", 2],
      ["bin/busybox", "100755", 1],
      ["bin/sh", "120777", 1],
      ["dev", "40755", 2],
      ["dev/console", "20600", 1],
      ["TRAILER!!!", "0", 1],
    ],
  );
  assert.equal(entries[2]!.data.toString(), "busybox");
  assert.deepEqual([entries[4]!.rmaj, entries[4]!.rmin], [5, 1]);
  assert.equal(new Set(entries.slice(0, -1).map((e) => e.ino)).size, 5, "inodes are unique, so nothing is taken for a hard link");
});

test("entries whose directory is missing, duplicates and unsafe paths are refused", () => {
  const w = new CpioWriter();
  assert.throws(() => w.add({ kind: "file", path: "lib/x.ko", data: new Uint8Array(1) }), /directory "lib" must be added first/);
  w.add({ kind: "dir", path: "lib" });
  assert.throws(() => w.add({ kind: "dir", path: "/lib/" }), /twice/);
  assert.throws(() => w.add({ kind: "dir", path: "lib/../etc" }), /plain relative path/);
  w.finish();
  assert.throws(() => w.add({ kind: "dir", path: "etc" }), /already finished/);
});

test("cpio -t lists the archive, when the host has cpio", (t) => {
  if (spawnSync("cpio", ["--version"]).error) {
    t.skip("cpio is not installed on this host");
    return;
  }
  const w = new CpioWriter();
  w.add({ kind: "dir", path: "etc" });
  w.add({ kind: "file", path: "etc/hostname", data: Buffer.from("nodevisor\n") });
  w.add({ kind: "symlink", path: "etc/link", target: "hostname" });
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-cpio-"));
  try {
    const file = join(dir, "a.cpio");
    writeFileSync(file, w.finish());
    const r = spawnSync("cpio", ["-t", "-F", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["etc", "etc/hostname", "etc/link"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
