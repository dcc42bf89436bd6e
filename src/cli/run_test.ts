import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { parseDiskSpec, parseRunArgs, restoredNets } from "./run.js";
import { parseNetSpec, type NetConfig } from "../net/spec.js";

test("--disk flags: read-only, format and Firecracker-style limits", () => {
  const d = parseDiskSpec("/tmp/a.qcow2,readonly,format=qcow2,bps=10M,burst=64M,iops=500");
  assert.equal(d.path, "/tmp/a.qcow2");
  assert.equal(d.readOnly, true);
  assert.equal(d.format, "qcow2");
  assert.deepEqual(d.limits, {
    bandwidth: { size: 10 << 20, refillTimeMs: 1000, oneTimeBurst: 64 << 20 },
    ops: { size: 500, refillTimeMs: 1000 },
  });
});

test("--disk refuses unknown flags and bad amounts with the list of known ones", () => {
  assert.throws(() => parseDiskSpec("a.img,fast"), /unknown disk flag "fast".*bps=RATE/);
  assert.throws(() => parseDiskSpec("a.img,bps=lots"), /needs a positive amount/);
  assert.throws(() => parseDiskSpec("a.img,burst=1M"), /needs a bps= limit/);
  assert.throws(() => parseDiskSpec("a.img,format=vdi"), /unknown disk flag/);
});

test("restored NICs: the same VM keeps its MACs, a clone gets its own, --net reconnects each NIC", () => {
  const saved = [{ ...parseNetSpec("switch=lab")!, mac: "52:54:00:aa:bb:01" }, { ...parseNetSpec("user")!, mac: "52:54:00:aa:bb:02" }];
  const macs = (nets: NetConfig[]) => nets.map((n) => n.mac);
  assert.deepEqual(macs(restoredNets(saved, null, false)), ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]);
  assert.deepEqual(macs(restoredNets(saved, null, true)), [null, null], "a clone's MACs come from its own name");
  const moved = restoredNets(saved, ["switch=other", "user,hostfwd=tcp:8081-:80,mac=52:54:00:00:00:09"], true);
  assert.deepEqual(moved.map((n) => n.mode.kind), ["switch", "user"]);
  assert.deepEqual(macs(moved), [null, "52:54:00:00:00:09"]);
  assert.deepEqual(macs(restoredNets(saved, ["switch=other", "user"], false)), ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]);
  assert.throws(() => restoredNets(saved, ["user"], true), /has 2 NIC\(s\) and --net gives 1; give one --net for each/);
});

test("--incoming and --restore-wait requests carry how the VM is run, and nothing of a machine they do not have yet", async () => {
  const incoming = await parseRunArgs(["--incoming", "unix:/tmp/m.sock", "--cpu-cap", "50", "--console-log", "c.log", "--control-socket", "c.sock", "--console", "none", "--disk", "copy.qcow2"]);
  assert.equal(incoming.start, "incoming");
  if (incoming.start !== "incoming") return;
  assert.deepEqual(incoming.settings, { cpuCap: 50, consoleLog: "c.log", controlSocket: "c.sock" });
  assert.deepEqual(incoming.incoming.diskPaths, [resolve("copy.qcow2")]);
  assert.equal(incoming.consoleInput, false);
  assert.equal(incoming.pidFile, null);

  const waiting = await parseRunArgs(["--restore-wait", "--control-socket", "w.sock", "--pid-file", "w.pid"]);
  assert.equal(waiting.start, "restore-wait");
  if (waiting.start !== "restore-wait") return;
  assert.equal(waiting.controlSocket, "w.sock");
  assert.equal(waiting.pidFile, resolve("w.pid"));
  await assert.rejects(waiting.restoreWait.prepare("/nonexistent/vm.snap"), /vm\.snap/);

  assert.deepEqual(await parseRunArgs(["--help"]), { start: "help" });
});

test("--control-wait holds a booted guest for the first control client, and needs a control socket to wait on", async () => {
  const boot = await parseRunArgs(["--kernel", process.execPath, "--control-socket", "c.sock", "--control-wait"], { buildImage: false });
  assert.equal(boot.start, "boot");
  assert.equal(boot.start === "boot" && boot.controlWait, true);
  await assert.rejects(parseRunArgs(["--kernel", process.execPath, "--control-wait"], { buildImage: false }), /--control-wait waits for a client of the control socket; give --control-socket PATH too/);
  await assert.rejects(parseRunArgs(["--incoming", "unix:/tmp/m.sock", "--control-socket", "c.sock", "--control-wait"]), /--incoming already waits/);
});
