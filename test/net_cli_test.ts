// Bad network input from the command line: one sentence, exit status 2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, nodevisor } from "./helpers.js";

test("a bad --net spec is one sentence and status 2", async () => {
  const r = await nodevisor(["run", "--net", "switch=lab,vlan=9999", "--kernel", "/x", "--initrd", "/y", "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^Cannot use --net switch=lab,vlan=9999: VLAN ids must be whole numbers from 1 to 4094\./);
  assert.equal(r.stderr.trim().split("\n").length, 1);
});

test("too many NICs and disks for the board's slots are refused", async () => {
  await ensureTestImage();
  const r = await nodevisor(["run", ...Array(5).fill(["--net", "user"]).flat(), "--", "true"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Cannot attach 0 disks and 5 NICs: this board has room for 4 .*disks and NICs share the rest/);
});

test("user mode without passt says how to install it", async () => {
  await ensureTestImage();
  const r = await nodevisor(["run", "--net", "user", "--", "true"], { env: { NODEVISOR_PASST: "/nonexistent/passt" } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /passt is not installed\. Install it \(Debian\/Ubuntu: `apt-get install passt`\)/);
});

test("switch commands: bad names, missing switches, unknown subcommands", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-swcli-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  try {
    const bad = await nodevisor(["switch", "create", "../evil"], { env });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Cannot use the switch name "\.\.\/evil"/);
    const gone = await nodevisor(["switch", "delete", "nothere"], { env });
    assert.equal(gone.status, 2);
    assert.match(gone.stderr, /No switch "nothere" is running\./);
    const subnet = await nodevisor(["switch", "create", "s1", "--subnet", "10.0.0.0/33"], { env });
    assert.equal(subnet.status, 2);
    assert.match(subnet.stderr, /Cannot use the subnet "10\.0\.0\.0\/33"/);
    assert.equal((await nodevisor(["switch", "frob"], { env })).status, 2);
    const bareNat = await nodevisor(["switch", "create", "s3", "--bare", "--nat"], { env });
    assert.equal(bareNat.status, 2);
    assert.match(bareNat.stderr, /--nat needs the switch's services/);
    const noPasst = await nodevisor(["switch", "create", "s4", "--nat"], { env: { ...env, NODEVISOR_PASST: "/nonexistent/passt" } });
    assert.equal(noPasst.status, 2);
    assert.match(noPasst.stderr, /passt is not installed/);
    // A persistent switch: created, listed, refused twice, deleted.
    assert.equal((await nodevisor(["switch", "create", "s2"], { env })).status, 0);
    assert.match((await nodevisor(["switch", "list"], { env })).stdout, /^s2\tpersistent\t.*s2\.sock$/m);
    assert.match((await nodevisor(["switch", "create", "s2"], { env })).stderr, /already exists/);
    assert.equal((await nodevisor(["switch", "delete", "s2"], { env })).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
