import assert from "node:assert/strict";
import { test } from "node:test";
import { macToString } from "./ethernet.js";
import { nicMac } from "./open.js";
import { passtForwardArgs } from "./passt.js";
import { parseNetSpec } from "./spec.js";

test("a NIC's MAC is stable per VM name and index, settable, and QEMU-prefixed", () => {
  const c = parseNetSpec("switch=lab")!;
  const a = macToString(nicMac(c, "web", 0));
  assert.match(a, /^52:54:00:/);
  assert.equal(macToString(nicMac(c, "web", 0)), a, "stable");
  assert.notEqual(macToString(nicMac(c, "web", 1)), a, "per NIC");
  assert.notEqual(macToString(nicMac(c, "db", 0)), a, "per VM");
  assert.equal(macToString(nicMac(parseNetSpec("switch=lab,mac=52:54:00:00:00:07")!, "web", 0)), "52:54:00:00:00:07");
});

test("hostfwd becomes passt's -t/-u arguments", () => {
  const c = parseNetSpec("user,hostfwd=tcp:8080-:80,hostfwd=udp:127.0.0.1:5353-:53")!;
  assert.deepEqual(passtForwardArgs(c.mode.kind === "user" ? c.mode.hostForwards : []), ["-t", "8080:80", "-u", "127.0.0.1/5353:53"]);
});
