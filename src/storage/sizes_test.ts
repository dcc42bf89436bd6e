import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSize, parseSize } from "./sizes.js";

test("parseSize accepts plain bytes and binary suffixes in any case", () => {
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("512B"), 512);
  assert.equal(parseSize("1k"), 1024);
  assert.equal(parseSize("1K"), 1024);
  assert.equal(parseSize("64M"), 64 * 2 ** 20);
  assert.equal(parseSize("64MiB"), 64 * 2 ** 20);
  assert.equal(parseSize("64mb"), 64 * 2 ** 20);
  assert.equal(parseSize("10G"), 10 * 2 ** 30);
  assert.equal(parseSize(" 10 GiB "), 10 * 2 ** 30);
  assert.equal(parseSize("2T"), 2 * 2 ** 40);
  assert.equal(parseSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseSize("0"), 0);
});

test("parseSize rejects junk with a sentence naming the input", () => {
  for (const bad of ["", "G", "-1", "10Q", "5iB", "1.5", "0.3K", "1e3", "10 G B", "99999999T"]) {
    assert.throws(() => parseSize(bad), (e: unknown) => e instanceof RangeError && e.message.includes(`"${bad}"`), bad);
  }
});

test("formatSize prints binary units with at most two decimals", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(512), "512 B");
  assert.equal(formatSize(1536), "1.5 KiB");
  assert.equal(formatSize(10 * 2 ** 30), "10 GiB");
  assert.equal(formatSize(1.25 * 2 ** 40), "1.25 TiB");
  assert.equal(formatSize(parseSize("3M")), "3 MiB");
  assert.throws(() => formatSize(-1), RangeError);
});
