import { test } from "node:test";
import assert from "node:assert/strict";
import { findBusyboxApplets, REQUIRED_APPLETS } from "./busybox_applets.js";

test("reads the sorted applet table and stops at the data after it", () => {
  const names = ["[", "[[", ...REQUIRED_APPLETS, "zcat"].sort();
  const table = Buffer.from("\x7fELF junk \xa0" + names.join("\0") + "\0\0/var/log/wtmp\0", "latin1");
  assert.deepEqual(findBusyboxApplets(table), names);
});

test("a table missing what /init needs is not taken", () => {
  assert.equal(findBusyboxApplets(Buffer.from("[\0[[\0acpid\0ash\0cat\0\0", "latin1")), null);
  assert.equal(findBusyboxApplets(Buffer.from("no table here", "latin1")), null);
});

test("an out-of-order name ends the table", () => {
  const names = ["[", "[[", ...REQUIRED_APPLETS].sort();
  const found = findBusyboxApplets(Buffer.from(names.join("\0") + "\0abc\0zzz\0", "latin1"));
  assert.deepEqual(found, names);
});
