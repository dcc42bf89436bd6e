import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runVmCommand, table } from "./vm.js";

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
  await assert.rejects(runVmCommand(["frobnicate", "x"]), /unknown command "frobnicate"/);
});
