import { test } from "node:test";
import assert from "node:assert/strict";
import { readNewcArchive } from "./cpio_read.js";
import { buildInitramfs } from "./initramfs.js";
import { INITTAB, INIT_SCRIPT } from "./init_script.js";

const S_IFMT = 0o170000;

test("the initramfs carries /init, busybox with applet links, modules and modprobe's modules.dep/alias/builtin", () => {
  const busybox = Buffer.from("\x7fELF fake busybox");
  const archive = buildInitramfs({
    kernelVersion: "6.12.0-riscv64",
    busybox,
    applets: ["[", "busybox", "insmod", "sh"],
    modules: [
      { name: "jbd2", data: Buffer.from("A"), depends: [], aliases: [] },
      { name: "ext4", data: Buffer.from("B"), depends: ["jbd2"], aliases: ["fs-ext4"] },
    ],
    builtin: ["virtio_console"],
  });
  const entries = readNewcArchive(archive);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const init = byPath.get("init")!;
  assert.equal(Buffer.from(init.data).toString(), INIT_SCRIPT);
  assert.equal(init.mode, 0o100755);
  assert.deepEqual(Buffer.from(byPath.get("bin/busybox")!.data), busybox);
  for (const applet of ["[", "insmod", "sh"]) {
    const e = byPath.get(`bin/${applet}`)!;
    assert.equal(e.mode & S_IFMT, 0o120000, `${applet} is a symlink`);
    assert.equal(Buffer.from(e.data).toString(), "busybox");
  }
  assert.equal(byPath.get("bin/busybox")!.mode & S_IFMT, 0o100000, "busybox itself is not replaced by a link");
  assert.equal(Buffer.from(byPath.get("sbin")!.data).toString(), "bin");
  assert.equal(byPath.get("dev/console")!.mode, 0o020600);
  const file = (p: string): string => Buffer.from(byPath.get(p)!.data).toString();
  assert.equal(file("lib/modules/6.12.0-riscv64/modules.dep"), "jbd2.ko:\next4.ko: jbd2.ko\n");
  assert.equal(file("lib/modules/6.12.0-riscv64/modules.alias"), "alias fs-ext4 ext4\n");
  assert.equal(file("lib/modules/6.12.0-riscv64/modules.builtin"), "virtio_console.ko\n");
  assert.equal(file("etc/inittab"), INITTAB);
  assert.equal(Buffer.from(byPath.get("lib/modules/6.12.0-riscv64/ext4.ko")!.data).toString(), "B");
  // Every entry's directory comes before it, as the kernel's unpacker needs.
  const seen = new Set<string>();
  for (const e of entries) {
    const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
    assert.ok(parent === "" || seen.has(parent), `${e.path} after its directory`);
    seen.add(e.path);
  }
  assert.equal(archive.length % 4, 0);
});
