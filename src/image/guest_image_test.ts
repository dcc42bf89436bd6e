import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { defaultCacheDir, loadImage, MANIFEST_FORMAT, resolveImage, writeManifest, type ImageManifest } from "./guest_image.js";

function manifest(): ImageManifest {
  return {
    format: MANIFEST_FORMAT,
    name: "default",
    kernel: "vmlinux-6.12.1-riscv64",
    initrd: "initrd.cpio",
    kernelVersion: "6.12.1-riscv64",
    firmware: "fw_dynamic.bin",
    kernelConfig: null,
    modules: ["virtio_mmio"],
    packages: [],
    mirror: "http://mirror.example/debian",
    builtAt: new Date(0).toISOString(),
  };
}

test("defaultCacheDir follows XDG_CACHE_HOME, else ~/.cache", () => {
  const saved = process.env.XDG_CACHE_HOME;
  try {
    process.env.XDG_CACHE_HOME = "/x/cache";
    assert.equal(defaultCacheDir(), "/x/cache/nodevisor");
    delete process.env.XDG_CACHE_HOME;
    assert.equal(defaultCacheDir(), join(homedir(), ".cache", "nodevisor"));
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});

test("resolveImage finds a name under the cache and a directory path, and only complete images", () => {
  const cache = mkdtempSync(join(tmpdir(), "nodevisor-img-"));
  try {
    const dir = join(cache, "images", "default");
    mkdirSync(dir, { recursive: true });
    for (const f of ["vmlinux-6.12.1-riscv64", "initrd.cpio", "fw_dynamic.bin"]) writeFileSync(join(dir, f), "x");
    assert.throws(() => resolveImage("default", cache), /manifest\.json is missing.*Rebuild it with `nodevisor image build --rebuild`/);
    writeManifest(dir, manifest());
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes("tmp")), [], "no temporary file is left behind");
    const byName = resolveImage("default", cache);
    assert.equal(byName.kernel, join(dir, "vmlinux-6.12.1-riscv64"));
    assert.equal(byName.firmware, join(dir, "fw_dynamic.bin"));
    assert.equal(byName.kernelVersion, "6.12.1-riscv64");
    assert.deepEqual(resolveImage(dir + "/", cache).initrd, byName.initrd);
    rmSync(join(dir, "initrd.cpio"));
    assert.equal(loadImage(dir), null, "an image missing a listed file is not complete");
    assert.throws(() => resolveImage("nope", cache), /Cannot use guest image "nope": .*does not exist\. Run `nodevisor image build`/);
    assert.throws(() => resolveImage(join(cache, "elsewhere"), cache), /does not exist\./);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
