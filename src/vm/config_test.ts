import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMemorySize, checkMemory, checkCpus, checkFile, ConfigError, defaultCpuTier, validateConfig, type VmConfig } from "./config.js";
import { FIXED_VIRTIO_DEVICES, FREE_VIRTIO_SLOTS, virtioSlotPlan } from "./virtio_slots.js";
import { VIRTIO_SLOTS } from "../machine/layout.js";

test("memory sizes parse with suffixes, and bare small numbers mean MiB", () => {
  assert.equal(parseMemorySize("512M"), 512 * 2 ** 20);
  assert.equal(parseMemorySize("2G"), 2 * 2 ** 30);
  assert.equal(parseMemorySize("256"), 256 * 2 ** 20);
  assert.equal(parseMemorySize("1GiB"), 2 ** 30);
  assert.throws(() => parseMemorySize("lots"), /e\.g\. 512M/);
});

test("memory and vCPU counts out of range are refused with the allowed range", () => {
  assert.throws(() => checkMemory(2 ** 20), /between 16 MiB and 4 GiB/);
  assert.throws(() => checkMemory(64 * 2 ** 40), ConfigError);
  assert.doesNotThrow(() => checkMemory(512 * 2 ** 20));
  assert.throws(() => checkCpus(0), /1 to 8/);
  assert.throws(() => checkCpus(9), /1 to 8/);
  assert.throws(() => checkCpus(1.5), ConfigError);
});

test("a missing file is named in the error", () => {
  assert.throws(() => checkFile("kernel", "/nonexistent/vmlinux"), /Cannot find the kernel "\/nonexistent\/vmlinux"/);
  assert.throws(() => checkFile("disk", "/tmp"), /not a regular file/);
});

test("the number of disks is limited by the free virtio slots, computed from the slot plan", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-slots-"));
  try {
    const fw = join(dir, "fw.bin");
    writeFileSync(fw, "x");
    const disks = Array.from({ length: FREE_VIRTIO_SLOTS + 1 }, (_, i) => {
      const path = join(dir, `d${i}.img`);
      writeFileSync(path, new Uint8Array(512));
      return { path, readOnly: true };
    });
    const config = (n: number): VmConfig => ({
      name: "vm", memoryBytes: 64 << 20, cpus: 1, kernel: null, initrd: null, firmware: fw, append: "",
      disks: disks.slice(0, n), consoleLog: null, controlSocket: null, command: null,
    });
    assert.doesNotThrow(() => validateConfig(config(FREE_VIRTIO_SLOTS)));
    assert.equal(virtioSlotPlan(config(FREE_VIRTIO_SLOTS)).length, VIRTIO_SLOTS);
    assert.throws(() => validateConfig(config(FREE_VIRTIO_SLOTS + 1)), new RegExp(`room for ${FREE_VIRTIO_SLOTS} \\(${VIRTIO_SLOTS} virtio slots, ${FIXED_VIRTIO_DEVICES.length} taken`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the default CPU tier is the JIT, with any number of vCPUs; NODEVISOR_CPU_TIER overrides", () => {
  const saved = process.env.NODEVISOR_CPU_TIER;
  try {
    delete process.env.NODEVISOR_CPU_TIER;
    assert.equal(defaultCpuTier(), "jit");
    process.env.NODEVISOR_CPU_TIER = "interp";
    assert.equal(defaultCpuTier(), "interp");
    process.env.NODEVISOR_CPU_TIER = "jit";
    assert.equal(defaultCpuTier(), "jit");
  } finally {
    if (saved === undefined) delete process.env.NODEVISOR_CPU_TIER;
    else process.env.NODEVISOR_CPU_TIER = saved;
  }
});
