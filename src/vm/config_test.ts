import { test } from "node:test";
import assert from "node:assert/strict";
import { parseMemorySize, checkMemory, checkCpus, checkFile, ConfigError } from "./config.js";

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
