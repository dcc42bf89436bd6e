// The API against its own OpenAPI document, with cheap VMs (tiny kernels that idle in WFI).

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { ApiClient, type RawResponse } from "./api_client.js";
import { startDaemon, testHost, waitFor, type TestHost } from "./testing/daemon_fixture.js";
import { isAlive } from "./vm_process.js";
import { createQcow2 } from "../storage/qcow2/create.js";

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };

/** Checks responses against the document the daemon serves. */
class Contract {
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  constructor(
    readonly doc: Doc,
    private readonly client: ApiClient,
  ) {}

  async call(method: string, route: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res: RawResponse = await this.client.raw(method, path, body);
    const op = this.doc.paths[route]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${route} is not in the OpenAPI document`);
    const documented = op.responses[String(res.status)];
    assert.ok(documented, `${method} ${path} answered ${res.status}, which the document does not list: ${res.text}`);
    const parsed = res.text.length > 0 && String(res.headers["content-type"]).includes("json") ? JSON.parse(res.text) : res.text;
    const schema = documented.content?.["application/json"]?.schema;
    if (schema !== undefined && res.status !== 204) {
      const validate = this.ajv.compile(schema);
      assert.ok(validate(parsed), `${method} ${path} → ${res.status} does not match its schema: ${this.ajv.errorsText(validate.errors)}\n${res.text}`);
    }
    return { status: res.status, body: parsed };
  }
}

async function setup(t: TestContext, capacity = {}): Promise<{ host: TestHost; api: Contract; client: ApiClient }> {
  const host = testHost(t);
  const { client } = await startDaemon(t, host, { capacity: { cores: 2, memoryBytes: 8 * 2 ** 30, cpuOvercommit: 4, memoryOvercommit: 1, ...capacity } });
  const doc = await client.call<Doc>("GET", "/openapi.json");
  return { host, api: new Contract(doc, client), client };
}

test("the OpenAPI document describes every operation with its request and response schemas", async (t) => {
  const { api } = await setup(t);
  assert.match(api.doc.openapi, /^3\./);
  const ops = Object.entries(api.doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`));
  for (const want of ["GET /v1/vms", "POST /v1/vms", "GET /v1/vms/{name}", "PATCH /v1/vms/{name}", "DELETE /v1/vms/{name}", "POST /v1/vms/{name}/actions", "GET /v1/vms/{name}/console", "POST /v1/vms/{name}/exec", "GET /v1/vms/{name}/stats", "POST /v1/vms/{name}/snapshot", "POST /v1/vms/{name}/migrate", "POST /v1/vms/{name}/migrate-cancel", "POST /v1/vms/{name}/receive", "GET /v1/events", "GET /v1/host", "GET /v1/images", "POST /v1/disks", "POST /v1/disks/clone", "POST /v1/disks/snapshot", "GET /v1/disks/info", "GET /metrics"]) {
    assert.ok(ops.includes(want), `${want} is missing from the document`);
  }
  for (const [p, methods] of Object.entries(api.doc.paths)) {
    for (const [m, op] of Object.entries(methods)) {
      const codes = Object.keys(op.responses);
      if (p.endsWith("/console") || p.endsWith("/stream")) {
        assert.ok(codes.includes("101"), `${p} documents no WebSocket upgrade`);
        continue;
      }
      assert.ok(codes.some((c) => c.startsWith("2")), `${m} ${p} documents no success response`);
      if (p.startsWith("/v1/")) assert.ok(codes.includes("400") && codes.includes("404"), `${m} ${p} documents no error responses`);
    }
  }
});

test("a VM's life through the API, each answer checked against the document", async (t) => {
  const { host, api } = await setup(t);
  const created = await api.call("POST", "/v1/vms", "/v1/vms", { name: "web1", memoryMiB: 64, kernel: host.kernels.idle, restartPolicy: "on-failure" });
  assert.equal(created.status, 201);
  assert.equal(created.body.state, "stopped");
  assert.equal(created.body.spec.cpuShares, 100, "defaults are filled in");
  let r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "start" });
  assert.equal(r.status, 200);
  assert.equal(r.body.state, "running");
  assert.ok(isAlive(r.body.pid));
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "start" });
  assert.deepEqual([r.status, r.body], [409, { code: "invalid-transition", message: "VM web1 is already running." }]);
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "pause" })).body.state, "paused");
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "pause" });
  assert.deepEqual([r.status, r.body.message], [409, "VM web1 is already paused."]);
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "resume" });
  if (r.body.state !== "running") {
    const events = await api.call("GET", "/v1/events", "/v1/events?vm=web1");
    assert.fail(`resume answered ${r.status} ${JSON.stringify(r.body)}; the VM's events: ${JSON.stringify(events.body)}`);
  }
  const stats = await waitFor("stats from the poller", async () => {
    const s = await api.call("GET", "/v1/vms/{name}/stats", "/v1/vms/web1/stats");
    return s.status === 200 && typeof s.body.cpuMs === "number" ? s.body : undefined;
  });
  assert.equal(stats.memoryBytes, 64 * 2 ** 20);
  assert.ok(stats.memoryTouchedBytes < 8 * 2 ** 20, `an idle tiny guest touched ${stats.memoryTouchedBytes} bytes`);
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/web1", { cpuCap: 40 });
  assert.equal(r.body.spec.cpuCap, 40);
  assert.equal(r.body.effectiveCpuCap, 40);
  r = await api.call("DELETE", "/v1/vms/{name}", "/v1/vms/web1");
  assert.deepEqual([r.status, r.body.code], [409, "invalid-transition"]);
  assert.match(r.body.message, /^VM web1 is running; stop it before deleting it\.$/);
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "kill" })).body.state, "stopped");
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web1/actions", { action: "stop" });
  assert.equal(r.status, 409);
  assert.match(r.body.message, /VM web1 is not running/);
  assert.equal((await api.call("DELETE", "/v1/vms/{name}", "/v1/vms/web1")).status, 204);
  r = await api.call("GET", "/v1/vms/{name}", "/v1/vms/web1");
  assert.deepEqual([r.status, r.body.code], [404, "not-found"]);
  const events = (await api.call("GET", "/v1/events", "/v1/events?vm=web1")).body.events.map((e: { type: string }) => e.type);
  assert.deepEqual(events, ["created", "started", "paused", "resumed", "edited", "killed", "deleted"]);
  const host_ = (await api.call("GET", "/v1/host", "/v1/host")).body;
  assert.deepEqual(host_.promised, { vcpus: 0, memoryBytes: 0 });
  const metrics = await api.call("GET", "/metrics", "/metrics");
  assert.match(metrics.body, /^nodevisor_host_cores 2$/m);
});

test("invalid specs get a 400 that names the field and why", async (t) => {
  const { host, api } = await setup(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ name: "x", vcpus: 0 }, /^The field "vcpus" must be >= 1\.$/],
    [{ name: "x", vcpus: 2, memoryMiB: 1 << 20 }, /^The field "memoryMiB" must be <= \d+\.$/],
    [{ name: "Web_1" }, /^The field "name" must match pattern/],
    [{ vcpus: 1 }, /^The field "name" is required\.$/],
    [{ name: "x", colour: "red" }, /^The field "colour" is not known; \/openapi\.json lists the fields\.$/],
    [{ name: "x", disks: [{ path: "/a", format: "floppy" }] }, /^The field "disks\[0\]\.format" must be equal to one of the allowed values\.$/],
    [{ name: "x", restartPolicy: "sometimes" }, /^The field "restartPolicy" must be equal to one of the allowed values\.$/],
    [{ name: "x", initrd: "/boot/initrd" }, /^The field "initrd" needs "kernel" beside it/],
    [{ name: "x", memoryMiB: 256, memoryTargetMiB: 512 }, /^The field "memoryTargetMiB" asks for 512 MiB, more than the VM's RAM \(memoryMiB 256\); raise memoryMiB/],
    [{ name: "x", memoryMiB: 256, memoryTargetMiB: 64 }, /^Cannot set VM x's memory to 64 MiB: the host keeps every guest at 128 MiB at least/],
    [{ name: "x", disks: [{ path: "/a" }, { path: "/a" }] }, /^The field "disks\[1\]\.path" names "\/a" a second time/],
    [{ name: "x", nics: [{ mode: "bridge" }] }, /^The field "nics\[0\]\.mode" must be equal to one of the allowed values\.$/],
    [{ name: "x", nics: [{ mode: "switch", switch: "lab", vlan: 5000 }] }, /^The field "nics\[0\]\.vlan" must be <= 4094\.$/],
    [{ name: "x", nics: [{ mode: "user", mac: "52:54:00:zz:00:01" }] }, /^The field "nics\[0\]\.mac" must match pattern/],
    [{ name: "x", nics: [{ mode: "user" }, { mode: "switch" }] }, /^The field "nics\[1\]\.switch" is required for mode "switch"\.$/],
    [{ name: "x", nics: [{ mode: "user", firewall: { rules: [{ action: "allow", match: "in:tcp:0" }] } }] }, /^The field "nics\[0\]" is not a usable NIC: "0" in allow=in:tcp:0 is not a port range/],
    [{ name: "x", disks: [{ path: "/a" }, { path: "/b" }], nics: [{ mode: "user" }, { mode: "user" }, { mode: "user" }] }, /^The field "nics" asks for 3 NICs beside 2 disks; a VM has room for 4 disks and NICs together\.$/],
  ];
  for (const [body, message] of cases) {
    const r = await api.call("POST", "/v1/vms", "/v1/vms", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, "invalid-request");
    assert.match(r.body.message, message, JSON.stringify(body));
  }
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "ok", kernel: host.kernels.idle, memoryMiB: 64 });
  let r = await api.call("POST", "/v1/vms", "/v1/vms", { name: "ok", kernel: host.kernels.idle });
  assert.deepEqual([r.status, r.body.code, r.body.message], [409, "conflict", "VM ok already exists; choose another name or delete it first."]);
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/ok/actions", { action: "dance" });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /^The field "action" must be equal to one of the allowed values\.$/);
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/nope/actions", { action: "start" });
  assert.deepEqual([r.status, r.body.message], [404, "VM nope does not exist; `nodevisor vm list` shows the VMs."]);
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/ok", {});
  assert.equal(r.status, 400);
});

test("a running VM's memory size changes as a balloon target; out-of-range targets are a 400 sentence", async (t) => {
  const { host, api } = await setup(t);
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "m", kernel: host.kernels.idle, memoryMiB: 512, memoryTargetMiB: 384 });
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/m/actions", { action: "start" })).status, 200);
  const target = async (): Promise<number> => (await api.call("GET", "/v1/vms/{name}/stats", "/v1/vms/m/stats")).body.balloon.target;
  assert.equal(await target(), 384 * 2 ** 20, "the spec's target is sent at start");
  let r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/m", { memoryTargetMiB: 256 });
  assert.equal(r.status, 200);
  assert.equal(await target(), 256 * 2 ** 20);
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/m", { memoryTargetMiB: 100 });
  assert.deepEqual([r.status, r.body.message], [400, "Cannot set VM m's memory to 100 MiB: the host keeps every guest at 128 MiB at least (nodevisor daemon --memory-floor); ask for more."]);
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/m", { memoryTargetMiB: 600 });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /asks for 600 MiB, more than the VM's RAM \(memoryMiB 512\)/);
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/m", { memoryTargetMiB: null });
  assert.equal(r.status, 200);
  assert.equal(await target(), 512 * 2 ** 20, "null gives the guest all its RAM again");
  assert.equal(await target(), 512 * 2 ** 20);
});

test("admission control refuses an over-committed start and says what was asked and what is free", async (t) => {
  const { host, api } = await setup(t, { cores: 1, memoryBytes: 128 * 2 ** 20, memoryOvercommit: 1.5, cpuOvercommit: 2 });
  for (const name of ["a", "b", "c"]) await api.call("POST", "/v1/vms", "/v1/vms", { name, kernel: host.kernels.idle, memoryMiB: 96 });
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "wide", kernel: host.kernels.idle, memoryMiB: 16, vcpus: 2 });
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/a/actions", { action: "start" })).status, 200);
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/b/actions", { action: "start" })).status, 200, "96 MiB of 192 are still free");
  let r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/c/actions", { action: "start" });
  assert.deepEqual([r.status, r.body], [409, { code: "insufficient-capacity", message: "not enough memory: asked 96 MiB, 0 B free under overcommit ratio 1.5" }]);
  assert.equal((await api.call("GET", "/v1/vms/{name}", "/v1/vms/c")).body.state, "stopped", "a refused start changes nothing");
  await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/a/actions", { action: "kill" });
  r = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/wide/actions", { action: "start" });
  assert.deepEqual([r.status, r.body.message], [409, "not enough CPU: asked 2 vCPUs, 1 free under overcommit ratio 2"]);
  assert.equal((await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/c/actions", { action: "start" })).status, 200, "room freed by a stop is usable");
});

test("20 VMs created and started at once all end up running, each with its own process, and the inventory agrees", async (t) => {
  const { host, api, client } = await setup(t, { cores: 8, cpuOvercommit: 4 });
  const names = Array.from({ length: 20 }, (_, i) => `vm${i}`);
  const results = await Promise.all(
    names.map(async (name) => {
      const c = await api.call("POST", "/v1/vms", "/v1/vms", { name, kernel: host.kernels.idle, memoryMiB: 32 });
      assert.equal(c.status, 201);
      return api.call("POST", "/v1/vms/{name}/actions", `/v1/vms/${name}/actions`, { action: "start" });
    }),
  );
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
  const { vms } = await client.call("GET", "/v1/vms");
  assert.equal(vms.length, 20);
  assert.ok(vms.every((v: { state: string; pid: number }) => v.state === "running" && isAlive(v.pid)));
  assert.equal(new Set(vms.map((v: { pid: number }) => v.pid)).size, 20);
  const h = (await api.call("GET", "/v1/host", "/v1/host")).body;
  assert.deepEqual(h.promised, { vcpus: 20, memoryBytes: 20 * 32 * 2 ** 20 });
  const killed = await Promise.all(names.map((name) => api.call("POST", "/v1/vms/{name}/actions", `/v1/vms/${name}/actions`, { action: "kill" })));
  assert.ok(killed.every((r) => r.status === 200 && r.body.state === "stopped"));
  assert.deepEqual((await api.call("GET", "/v1/host", "/v1/host")).body.promised, { vcpus: 0, memoryBytes: 0 });
});

test("on TCP a bearer token is required: none or a wrong one gets 401 and nothing else; TLS works with a certificate", async (t) => {
  const host = testHost(t);
  const token = "s3cret-token-0123456789abcdef";
  const key = join(host.dir, "key.pem");
  const cert = join(host.dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const tls = { key: readFileSync(key), cert: readFileSync(cert) };
  const { daemon } = await startDaemon(t, host, { tcp: { host: "127.0.0.1", port: 0, token, tls } });
  const url = `https://127.0.0.1:${daemon.tcpPort}`;
  const anonymous = new ApiClient({ url, ca: tls.cert });
  for (const path of ["/v1/vms", "/v1/vms/nope", "/openapi.json", "/metrics", "/"]) {
    const r = await anonymous.raw("GET", path);
    assert.equal(r.status, 401, path);
    assert.deepEqual(JSON.parse(r.text), { code: "unauthorized", message: "A valid bearer token is required." });
  }
  const wrong = await new ApiClient({ url, ca: tls.cert, token: "s3cret-token-0123456789abcdeX" }).raw("GET", "/v1/vms");
  assert.equal(wrong.status, 401);
  const good = new ApiClient({ url, ca: tls.cert, token });
  assert.deepEqual(await good.call("GET", "/v1/vms"), { vms: [] });
  // The local socket needs no token (it is 0600).
  assert.deepEqual(await new ApiClient({ socketPath: host.paths.apiSocket }).call("GET", "/v1/vms"), { vms: [] });
});

test("disks through the API: create, clone, snapshot, info; a running VM's disk limits change in place; reboot; the event stream", async (t) => {
  const { host, api, client } = await setup(t);
  let r = await api.call("POST", "/v1/disks", "/v1/disks", { path: "base.qcow2", sizeBytes: 64 * 2 ** 20 });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual([r.body.format, r.body.virtualSize], ["qcow2", 64 * 2 ** 20]);
  const base = r.body.filename as string;
  assert.ok(base.startsWith(join(host.paths.stateDir, "disks")), "relative paths land in the daemon's disks folder");
  r = await api.call("POST", "/v1/disks", "/v1/disks", { path: "base.qcow2", sizeBytes: 512 });
  assert.deepEqual([r.status, r.body.code], [409, "conflict"]);
  r = await api.call("POST", "/v1/disks/clone", "/v1/disks/clone", { source: "base.qcow2", path: "web.qcow2" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.backingFile, base);
  r = await api.call("POST", "/v1/disks/snapshot", "/v1/disks/snapshot", { path: "web.qcow2", name: "clean" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(r.body.snapshots.map((s: { name: string }) => s.name), ["clean"]);
  r = await api.call("GET", "/v1/disks/info", "/v1/disks/info?path=nope.qcow2");
  assert.equal(r.status, 404);
  assert.deepEqual((await api.call("GET", "/v1/disks", "/v1/disks")).body.disks.map((d: { origin: string }) => d.origin), ["create", `clone of ${base}`]);
  assert.equal((await api.call("GET", "/v1/images", "/v1/images")).status, 200);

  const stream = client.websocket("/v1/events/stream");
  t.after(() => stream.close());
  const streamed: string[] = [];
  stream.on("message", (d) => streamed.push(JSON.parse(String(d)).type));
  await new Promise((res) => stream.once("open", res));

  const web = join(host.paths.stateDir, "disks", "web.qcow2");
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "web", kernel: host.kernels.idle, memoryMiB: 32, disks: [{ path: web, bps: 1 << 20 }] });
  const started = (await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web/actions", { action: "start" })).body;
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/web", { disks: [{ path: web, bps: 4 << 20, iops: 100 }] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.spec.disks, [{ path: web, bps: 4 << 20, iops: 100 }]);
  assert.equal(r.body.pid, started.pid, "no restart");
  r = await api.call("PATCH", "/v1/vms/{name}", "/v1/vms/web", { disks: [] });
  assert.deepEqual([r.status, r.body.message], [409, "VM web is running: its disks can change only their rate limits now; stop it to attach or detach disks."]);
  const rebooted = (await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web/actions", { action: "reboot" })).body;
  assert.equal(rebooted.state, "running");
  assert.notEqual(rebooted.pid, started.pid);
  await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/web/actions", { action: "kill" });
  await waitFor("the streamed events", () => streamed.includes("killed"));
  assert.deepEqual(streamed, ["created", "started", "edited", "started", "rebooted", "killed"]);
});

test("live snapshots through the API: bad input, the reply's figures, the spec following the new overlay, an event", async (t) => {
  const { host, api } = await setup(t);
  const disk = join(host.dir, "data.qcow2");
  await createQcow2(disk, { size: 8 << 20 });
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "s", kernel: host.kernels.idle, memoryMiB: 32, disks: [{ path: disk, bps: 1 << 20 }] });
  const snap = join(host.dir, "s.snap");
  let r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/nope/snapshot", { path: snap });
  assert.deepEqual([r.status, r.body.code], [404, "not-found"]);
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", { path: snap });
  assert.deepEqual([r.status, r.body], [409, { code: "invalid-transition", message: "VM s is stopped; only a running or paused VM can be snapshotted (start it first)." }]);
  await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/s/actions", { action: "start" });
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", { path: "s.snap" });
  assert.deepEqual([r.status, r.body.message], [400, 'The field "path" must be an absolute path for the snapshot file, not "s.snap".']);
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", { path: join(host.dir, "no", "s.snap") });
  assert.deepEqual([r.status, r.body.message], [400, `Cannot write the snapshot "${join(host.dir, "no", "s.snap")}": the folder "${join(host.dir, "no")}" does not exist; create it first.`]);
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", {});
  assert.deepEqual([r.status, r.body.message], [400, 'The field "path" is required.']);
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", { path: snap });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.path, snap);
  assert.ok(r.body.bytes > 4096 && r.body.pausedMs >= 0, JSON.stringify(r.body));
  assert.deepEqual(r.body.disks, [{ device: "vda", frozen: disk, active: `${snap}.vda.after.qcow2` }]);
  const view = (await api.call("GET", "/v1/vms/{name}", "/v1/vms/s")).body;
  assert.deepEqual(view.spec.disks, [{ path: `${snap}.vda.after.qcow2`, format: "qcow2", bps: 1 << 20 }], "the next start opens the overlay, not the frozen file");
  assert.equal(view.state, "running");
  r = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/s/snapshot", { path: snap });
  assert.deepEqual([r.status, r.body.code], [409, "conflict"]);
  assert.match(r.body.message, /exists already; choose another path/);
  const saved = (await api.call("GET", "/v1/events", "/v1/events?vm=s")).body.events.find((e: { type: string }) => e.type === "snapshot-saved");
  assert.ok(saved !== undefined && saved.data.path === snap && typeof saved.data.pausedMs === "number" && saved.data.disks.length === 1, JSON.stringify(saved));
  // A restart opens the overlay (the frozen file stays as the snapshot left it).
  const rebooted = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/s/actions", { action: "reboot" });
  assert.equal(rebooted.body.state, "running", JSON.stringify(rebooted.body));
  await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/s/actions", { action: "kill" });
});

test("VMs restored from a snapshot: bad input, the machine read from the snapshot, two clones side by side, a restart boots afresh", async (t) => {
  const { host, api } = await setup(t);
  const disk = join(host.dir, "data.qcow2");
  await createQcow2(disk, { size: 8 << 20 });
  await api.call("POST", "/v1/vms", "/v1/vms", { name: "src", kernel: host.kernels.idle, memoryMiB: 48, disks: [{ path: disk }] });
  const srcStarted = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/src/actions", { action: "start" });
  assert.deepEqual([srcStarted.status, srcStarted.body.state], [200, "running"], JSON.stringify(srcStarted.body));
  const snap = join(host.dir, "src.snap");
  const taken = await api.call("POST", "/v1/vms/{name}/snapshot", "/v1/vms/src/snapshot", { path: snap });
  assert.equal(taken.status, 200, JSON.stringify(taken.body));
  await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/src/actions", { action: "kill" });

  const notSnapshot = join(host.dir, "not.snap");
  writeFileSync(notSnapshot, "hello");
  const bad: Array<[unknown, number, RegExp]> = [
    [{ name: "c", restore: notSnapshot }, 400, /^The field "restore" names no usable snapshot: ".*not\.snap" is not a usable nodevisor snapshot: it is only 5 bytes long\.$/],
    [{ name: "c", restore: join(host.dir, "missing.snap") }, 400, /^The field "restore" names no usable snapshot: Cannot open the snapshot ".*missing\.snap": no such file\.$/],
    [{ name: "c", restore: "src.snap" }, 400, /^The field "restore" must be an absolute path to a snapshot file, not "src\.snap"\.$/],
    [{ name: "c", restore: snap, memoryMiB: 64 }, 400, /^The field "memoryMiB" comes from the snapshot when a VM is restored; leave it out/],
    [{ name: "c", restore: snap, disks: [] }, 400, /^The field "disks" comes from the snapshot/],
  ];
  for (const [body, status, message] of bad) {
    const r = await api.call("POST", "/v1/vms", "/v1/vms", body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match(r.body.message, message);
  }

  const clones = ["c1", "c2"];
  for (const name of clones) {
    const r = await api.call("POST", "/v1/vms", "/v1/vms", { name, restore: snap, cpuCap: 50 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual([r.body.spec.vcpus, r.body.spec.memoryMiB, r.body.spec.kernel, r.body.spec.restore], [1, 48, host.kernels.idle, snap]);
    assert.deepEqual(r.body.spec.disks, [{ path: `${snap}.${name}.vda.qcow2`, format: "qcow2" }]);
    const p = await api.call("PATCH", "/v1/vms/{name}", `/v1/vms/${name}`, { memoryMiB: 64 });
    assert.deepEqual([p.status, p.body.message], [400, `VM ${name} starts from the snapshot "${snap}", which sets its "memoryMiB"; start it once, then change it.`]);
  }
  const started = await Promise.all(clones.map((name) => api.call("POST", "/v1/vms/{name}/actions", `/v1/vms/${name}/actions`, { action: "start" })));
  for (const r of started) {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, "running");
    assert.equal(r.body.spec.restore, undefined, "the restore ran");
    assert.equal(r.body.restoredFrom, snap);
  }
  assert.notEqual(started[0]!.body.pid, started[1]!.body.pid);
  for (const name of clones) assert.ok(existsSync(`${snap}.${name}.vda.qcow2`), `${name} writes to its own overlay`);
  const stats = await api.call("GET", "/v1/vms/{name}/stats", "/v1/vms/c1/stats");
  assert.equal(stats.body.memoryBytes, 48 * 2 ** 20);
  // A restart boots the snapshot's kernel afresh on the clone's own overlay.
  const rebooted = await api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/c1/actions", { action: "reboot" });
  assert.equal(rebooted.body.state, "running", JSON.stringify(rebooted.body));
  assert.notEqual(rebooted.body.pid, started[0]!.body.pid);
  const r = await api.call("POST", "/v1/vms", "/v1/vms", { name: "c3", restore: snap });
  assert.equal(r.status, 201);
  await api.call("DELETE", "/v1/vms/{name}", "/v1/vms/c3");
  for (const name of clones) await api.call("POST", "/v1/vms/{name}/actions", `/v1/vms/${name}/actions`, { action: "kill" });
  await api.call("DELETE", "/v1/vms/{name}", "/v1/vms/c1");
  const again = await api.call("POST", "/v1/vms", "/v1/vms", { name: "c1", restore: snap });
  assert.deepEqual([again.status, again.body.code], [409, "conflict"]);
  assert.match(again.body.message, /^The disk overlay ".*c1\.vda\.qcow2" exists already: a VM named c1 was restored from this snapshot before/);
  const types = (await api.call("GET", "/v1/events", "/v1/events?vm=c2")).body.events.map((e: { type: string }) => e.type);
  assert.deepEqual(types, ["created", "started", "restored", "killed"]);
});

test("live migration between two daemons: bad input, a tiny VM moves with its disk copied, the source shows it migrated and never restarts it", async (t) => {
  const a = await setup(t);
  const b = await setup(t);
  const disk = join(a.host.dir, "data.qcow2");
  await createQcow2(disk, { size: 8 << 20 });
  await a.api.call("POST", "/v1/vms", "/v1/vms", { name: "m", kernel: a.host.kernels.idle, memoryMiB: 32, restartPolicy: "always", disks: [{ path: disk }] });
  let r = await a.api.call("POST", "/v1/vms/{name}/migrate", "/v1/vms/nope/migrate", { uri: "tcp:127.0.0.1:1" });
  assert.deepEqual([r.status, r.body.code], [404, "not-found"]);
  r = await a.api.call("POST", "/v1/vms/{name}/migrate", "/v1/vms/m/migrate", { uri: "tcp:127.0.0.1:1" });
  assert.deepEqual([r.status, r.body.message], [409, "VM m is stopped; only a running VM can be migrated."]);
  await a.api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/m/actions", { action: "start" });
  r = await a.api.call("POST", "/v1/vms/{name}/migrate", "/v1/vms/m/migrate", { uri: "http://b:80" });
  assert.deepEqual([r.status, r.body.message], [400, 'The field "uri" is not a migration address: Cannot migrate to "http://b:80": give tcp:HOST:PORT or unix:PATH.']);
  r = await a.api.call("POST", "/v1/vms/{name}/migrate-cancel", "/v1/vms/m/migrate-cancel");
  assert.deepEqual([r.status, r.body.message], [409, "VM m is not migrating; there is nothing to cancel."]);
  r = await b.api.call("POST", "/v1/vms/{name}/receive", "/v1/vms/m/receive", { listen: "udp:1" });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /^The field "listen" is not a migration address/);
  r = await b.api.call("POST", "/v1/vms/{name}/receive", "/v1/vms/Bad_Name/receive", { listen: "tcp:127.0.0.1:0" });
  assert.equal(r.status, 400);

  // A migration to a receiver that is called off fails, and the source runs on, supervised.
  const sock = join(b.host.dir, "mig.sock");
  r = await b.api.call("POST", "/v1/vms/{name}/receive", "/v1/vms/m/receive", { listen: `unix:${sock}`, spec: { restartPolicy: "on-failure" } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.state, "incoming");
  assert.deepEqual([r.body.migration.direction, r.body.migration.status, r.body.migration.uri], ["in", "waiting", `unix:${sock}`]);
  r = await b.api.call("POST", "/v1/vms/{name}/receive", "/v1/vms/m/receive", { listen: "tcp:127.0.0.1:0" });
  assert.deepEqual([r.status, r.body.code], [409, "conflict"]);
  r = await b.api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/m/actions", { action: "kill" });
  assert.equal(r.body.state, "stopped");
  assert.equal(r.body.migration.status, "cancelled");
  const sourcePid = (await a.api.call("GET", "/v1/vms/{name}", "/v1/vms/m")).body.pid;
  r = await a.api.call("POST", "/v1/vms/{name}/migrate", "/v1/vms/m/migrate", { uri: `unix:${sock}` });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const failed = await waitFor("the migration to fail", async () => {
    const v = (await a.api.call("GET", "/v1/vms/{name}", "/v1/vms/m")).body;
    return v.migration.status === "failed" ? v : undefined;
  });
  assert.deepEqual([failed.state, failed.pid, failed.migratedTo], ["running", sourcePid, null]);
  assert.ok(failed.migration.error.length > 0);

  // Received under the name it had; the source's process exits after the hand-over, which is no crash.
  await b.api.call("DELETE", "/v1/vms/{name}", "/v1/vms/m");
  const copy = join(b.host.dir, "copy.qcow2");
  r = await b.api.call("POST", "/v1/vms/{name}/receive", "/v1/vms/m/receive", { listen: "tcp:127.0.0.1:0", spec: { disks: [{ path: copy }] } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const uri = r.body.migration.uri as string;
  assert.match(uri, /^tcp:127\.0\.0\.1:\d+$/);
  assert.notEqual(uri, "tcp:127.0.0.1:0", "the port it got");
  r = await a.api.call("POST", "/v1/vms/{name}/migrate", "/v1/vms/m/migrate", { uri, downtimeLimitMs: 100, copyDisks: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.migration.direction, "out");
  const moved = await waitFor("the source to show the VM migrated", async () => {
    const v = (await a.api.call("GET", "/v1/vms/{name}", "/v1/vms/m")).body;
    return v.migratedTo !== null ? v : undefined;
  });
  assert.deepEqual([moved.state, moved.desired, moved.pid, moved.migratedTo, moved.migration.status], ["stopped", "stopped", null, uri, "completed"]);
  assert.ok(!isAlive(sourcePid), "the source process has ended");
  const arrived = await waitFor("the VM to run on b", async () => {
    const v = (await b.api.call("GET", "/v1/vms/{name}", "/v1/vms/m")).body;
    return v.state === "running" ? v : undefined;
  });
  assert.deepEqual([arrived.spec.memoryMiB, arrived.spec.restartPolicy], [32, "no"], "the RAM of the VM that arrived, not the default 256 MiB");
  assert.ok(isAlive(arrived.pid));
  assert.deepEqual(arrived.spec.disks, [{ path: copy }], "a restart on b opens the copy");
  assert.ok(existsSync(copy), "the block migration made the copy");
  await new Promise((res) => setTimeout(res, 1500));
  assert.equal((await a.api.call("GET", "/v1/vms/{name}", "/v1/vms/m")).body.state, "stopped", "restart policy always does not bring it back");
  r = await a.api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/m/actions", { action: "start" });
  assert.equal(r.status, 409);
  assert.match(r.body.message, /^VM m was migrated to tcp:127\.0\.0\.1:\d+ and runs there on the same disks; delete it here, or migrate it back/);
  const typesA = (await a.api.call("GET", "/v1/events", "/v1/events?vm=m")).body.events.map((e: { type: string }) => e.type);
  assert.deepEqual(typesA, ["created", "started", "migrating", "migration-failed", "migrating", "migrated"]);
  const typesB = (await b.api.call("GET", "/v1/events", "/v1/events?vm=m")).body.events.map((e: { type: string }) => e.type);
  assert.deepEqual(typesB.slice(-3), ["created", "receiving", "received"]);
  await b.api.call("POST", "/v1/vms/{name}/actions", "/v1/vms/m/actions", { action: "kill" });
});
