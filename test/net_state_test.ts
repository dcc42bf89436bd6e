// NICs in live state, end to end on a NAT switch: a guest's TCP connection to a server on the
// host's loopback survives a live migration to another process (the switch and its NAT outlive
// the VM process; the destination announces the MAC on its new port), and a clone restored from a
// snapshot takes a MAC of its own, renews its lease and reaches the host.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, ensureTestImage, nodevisor } from "./helpers.js";
import { typeLine, until, VmProcess } from "./testing/vm_process.js";

before(ensureTestImage, { timeout: 600_000 });

const hasPasst = !spawnSync("passt", ["--version"]).error;

/** A NAT switch in a directory of its own; removed by the returned function. */
async function natSwitch(name: string): Promise<{ env: NodeJS.ProcessEnv; dir: string; remove: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "nv-netstate-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const created = await nodevisor(["switch", "create", name, "--nat"], { env });
  assert.equal(created.status, 0, created.stderr);
  await until(() => /the host is at /.test(readFileSync(join(dir, `${name}.log`), "utf8")), 20_000, "the NAT uplink's lease");
  return {
    env,
    dir,
    remove: async () => {
      await nodevisor(["switch", "delete", name], { env });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("a guest's TCP connection to the host survives a live migration on a NAT switch", { timeout: 1_200_000 }, async (t) => {
  if (!hasPasst) return t.skip("passt is not installed (apt-get install passt)");
  const sw = await natSwitch("migrate");
  // Each connection's lines, as the host's server received them.
  const connections: string[] = [];
  const closed: boolean[] = [];
  const server = createServer((s: Socket) => {
    const i = connections.push("") - 1;
    closed.push(false);
    s.on("data", (d) => (connections[i] += d.toString("latin1")));
    s.on("close", () => (closed[i] = true));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const source = VmProcess.nodevisor(["--name", "mover", "--net", "switch=migrate", "--control-socket", join(sw.dir, "a.sock"), "--console", "none"], sw.env);
  const dest = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--console", "none", "--incoming", `unix:${join(sw.dir, "mig.sock")}`], sw.env);
  const counts = (): number[] => (connections[0] ?? "").split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
  try {
    const a = await source.connect(join(sw.dir, "a.sock"));
    await source.waitFor(/~# /, 900_000);
    // One TCP connection through the switch's NAT to the host: a line a count, every 0.2 s.
    await typeLine(a, `(i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done) | nc gateway ${port} &`);
    await until(() => counts().length >= 5, 120_000, `the guest's connection to carry 5 lines (console: ${source.stdout.slice(-500)})`);
    await until(() => /waiting for a migration/.test(dest.stderr), 60_000, "the destination to listen");
    await a.execute("migrate", { uri: `unix:${join(sw.dir, "mig.sock")}` });
    await source.exited;
    assert.match(source.stderr, /migrated to/, source.stderr);
    const atSwitch = counts().at(-1)!;
    await until(() => counts().length >= atSwitch + 10, 120_000, `the connection to go on after the migration (lines: ${counts().length}; destination: ${dest.stderr.slice(-500)})`);
    assert.equal(connections.length, 1, "the guest never had to reconnect");
    assert.equal(closed[0], false, "the connection is still open");
    counts().forEach((n, i) => assert.equal(n, i + 1, `line ${i + 1} came as ${n}: nothing was lost or repeated`));
    console.log(`# ${/migrated to .*/.exec(source.stderr)?.[0]}; ${counts().length} lines on one connection`);
  } finally {
    await source.stop();
    await dest.stop();
    server.close();
    await sw.remove();
  }
});

test("a clone restored from a snapshot of a VM on a NAT switch takes its own MAC, renews its lease and reaches the host", { timeout: 1_200_000 }, async (t) => {
  if (!hasPasst) return t.skip("passt is not installed (apt-get install passt)");
  const sw = await natSwitch("clones");
  const seen: string[] = [];
  const http = createHttpServer((req, res) => {
    seen.push(req.url ?? "");
    res.end(`page ${req.url}\n`);
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const port = (http.address() as AddressInfo).port;
  const snap = join(sw.dir, "vm.snap");
  const original = VmProcess.nodevisor(["--name", "orig", "--net", "switch=clones", "--control-socket", join(sw.dir, "o.sock"), "--console", "none"], sw.env);
  let clone: VmProcess | null = null;
  try {
    const o = await original.connect(join(sw.dir, "o.sock"));
    await original.waitFor(/~# /, 900_000);
    await typeLine(o, "echo orig-mac=$(cat /sys/class/net/eth0/address) orig-ip=$(ip -4 -o addr show eth0 | awk '{print $4}')");
    const before = await original.waitFor(/orig-mac=(\S+) orig-ip=(\S+)\s/);
    await o.execute("snapshot-save", { path: snap });
    clone = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore", snap, "--name", "clone1", "--control-socket", join(sw.dir, "c.sock"), "--console", "none"], sw.env);
    const c = await clone.connect(join(sw.dir, "c.sock"));
    await clone.waitFor(/network renewed/, 120_000);
    await typeLine(c, `echo clone-mac=$(cat /sys/class/net/eth0/address) clone-ip=$(ip -4 -o addr show eth0 | awk '{print $4}'); wget -q -T 10 -O - http://gateway:${port}/clone1`);
    const after = await clone.waitFor(/clone-mac=(\S+) clone-ip=(\S+)\s/);
    await clone.waitFor(/page \/clone1/, 60_000);
    assert.notEqual(after[1], before[1], "the clone has a MAC of its own");
    assert.notEqual(after[2], before[2], "and so a lease of its own");
    assert.deepEqual(seen, ["/clone1"]);
    // The original, on the same switch, still reaches the host with its own address.
    await typeLine(o, `wget -q -T 10 -O - http://gateway:${port}/orig`);
    await original.waitFor(/page \/orig/, 60_000);
  } finally {
    await original.stop();
    await clone?.stop();
    http.close();
    await sw.remove();
  }
});
