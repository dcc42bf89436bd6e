import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeLatency, runVmCommand, table } from "./vm.js";
import { LatencyHistogram } from "../devices/virtio/block/latency.js";

test("tables line their columns up", () => {
  assert.equal(table(["NAME", "STATE"], [["web1", "running"], ["a", "stopped"]]), "NAME  STATE\nweb1  running\na     stopped\n");
});

test("no daemon: exit status 4 and a sentence that says how to start one", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-cli-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const errors: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => (errors.push(s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await runVmCommand(["list", "--socket", join(dir, "none.sock")]), 4);
  } finally {
    process.stderr.write = write;
  }
  assert.match(errors.join(""), /^nodevisor vm list: No nodevisor daemon answers at .*none\.sock; start one with `nodevisor daemon`/);
});

test("bad usage is refused before anything is sent", async () => {
  await assert.rejects(runVmCommand(["start"]), /give the VM's name/);
  await assert.rejects(runVmCommand(["exec", "web1"]), /put the command after --/);
  await assert.rejects(runVmCommand(["list", "--host", "example.org"]), /--host takes a URL/);
  await assert.rejects(runVmCommand(["list", "--host", "https://example.org"]), /needs --token/);
  await assert.rejects(runVmCommand(["create", "x", "--cpu-cap", "300"]), /choose a per cent of a core from 1 to 100/);
  await assert.rejects(runVmCommand(["edit", "x", "--memory-policy", "maybe"]), /--memory-policy takes on or off, not "maybe"/);
  await assert.rejects(runVmCommand(["edit", "x", "--memory-target", "lots"]), /Cannot use memory size "lots"/);
  await assert.rejects(runVmCommand(["frobnicate", "x"]), /unknown command "frobnicate"/);
  await assert.rejects(runVmCommand(["snapshot", "web1"]), /^UsageError: nodevisor vm snapshot: give the snapshot file, e\.g\. `nodevisor vm snapshot web1 \/var\/tmp\/web1\.snap`\.$/);
  await assert.rejects(runVmCommand(["snapshot", "web1", "a.snap", "b.snap"]), /unexpected argument "b\.snap"/);
  await assert.rejects(runVmCommand(["migrate", "web1"]), /give where to, e\.g\. `nodevisor vm migrate web1 tcp:10\.0\.0\.7:4444`/);
  await assert.rejects(runVmCommand(["migrate", "web1", "tcp:h:1", "--downtime-limit", "soon"]), /--downtime-limit needs a whole number above 0, not "soon"/);
  await assert.rejects(runVmCommand(["receive", "web1"]), /nodevisor vm receive: give where to wait, e\.g\. `--listen tcp:0\.0\.0\.0:4444`/);
  await assert.rejects(runVmCommand(["start", "web1", "--restore", "x.snap"]), /nodevisor vm start: --restore applies to create only\./);
});

test("disk latency reads as a mean and the bounds of its median and 99th percentile", () => {
  const h = new LatencyHistogram();
  assert.equal(describeLatency(h.snapshot()), "no requests yet");
  for (let i = 0; i < 99; i++) h.observe(0.0002);
  h.observe(0.02);
  assert.equal(describeLatency(h.snapshot()), "mean 0.40 ms, p50 ≤ 0.25 ms, p99 ≤ 0.25 ms (100 requests)");
  h.observe(30);
  h.observe(30);
  assert.match(describeLatency(h.snapshot()), /p99 > 5000 ms \(102 requests\)$/);
});
