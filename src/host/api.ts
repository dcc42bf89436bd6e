// The REST API (Fastify): routes, validation of every request and response against the
// schemas in api_schemas.ts, the OpenAPI document at /openapi.json, errors as {code, message}.

import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from "fastify";
import swagger from "@fastify/swagger";
import websocket from "@fastify/websocket";
import responseValidation from "@fastify/response-validation";
import { timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Registry } from "prom-client";
import { loadImage, imagesDir, defaultCacheDir } from "../image/guest_image.js";
import { PACKAGE_VERSION } from "../cli/version.js";
import * as S from "./api_schemas.js";
import { ApiError, illegalTransition, invalid, type ErrorBody } from "./errors.js";
import { VM_NAME_PATTERN, vmSpecInputSchema, vmSpecPatchSchema, type VmSpec } from "./spec.js";
import type { VmAction, VmManager } from "./vm_manager.js";
import type { ConsoleHub } from "./console_hub.js";
import type { DisksService } from "./disks_service.js";
import { execInFreshVm } from "./exec.js";
import { vmPaths, type HostPaths } from "./paths.js";
import type { VmCommand } from "./vm_process.js";
import { registerWebConsole } from "./web.js";

export interface ApiContext {
  manager: VmManager;
  consoles: ConsoleHub;
  disks: DisksService;
  metrics: Registry;
  paths: HostPaths;
  command: VmCommand;
  /** Where guest images are looked up (for `images`). */
  cacheDir?: string;
}

export interface ApiOptions {
  /** Required as "Authorization: Bearer TOKEN" (or ?token=, or the cookie the page /?token= sets); absent: no auth (the 0600 UNIX socket). */
  token?: string;
  https?: { key: Buffer; cert: Buffer };
  logger?: FastifyServerOptions["logger"];
}

export async function buildApi(ctx: ApiContext, opts: ApiOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    ...(opts.https ? { https: opts.https } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", allErrors: false } },
    bodyLimit: 1 << 20,
  }) as unknown as FastifyInstance;

  app.setErrorHandler((error: FastifyError, _req, reply) => {
    const { status, body } = errorResponse(error);
    if (status >= 500) app.log.error(error);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: "not-found", message: `There is no ${req.method} ${req.url.split("?")[0]}; /openapi.json lists the API.` });
  });

  if (opts.token !== undefined) {
    const expected = Buffer.from(opts.token);
    app.addHook("onRequest", async (req, reply) => {
      const header = req.headers.authorization;
      const fromQuery = (req.query as Record<string, unknown> | undefined)?.token;
      const fromCookie = /(?:^|;\s*)nodevisor_token=([^;]*)/.exec(req.headers.cookie ?? "")?.[1];
      const given =
        typeof header === "string" && header.startsWith("Bearer ")
          ? header.slice(7)
          : typeof fromQuery === "string"
            ? fromQuery
            : fromCookie !== undefined
              ? decodeURIComponent(fromCookie)
              : "";
      const g = Buffer.from(given);
      if (g.length !== expected.length || !timingSafeEqual(g, expected)) {
        return reply.status(401).send({ code: "unauthorized", message: "A valid bearer token is required." });
      }
      // The web console opened as /?token=T keeps the token in a cookie for its own requests.
      if (typeof fromQuery === "string" && req.url.split("?")[0] === "/") {
        void reply.header("set-cookie", `nodevisor_token=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/`);
      }
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "nodevisor", version: PACKAGE_VERSION, description: "The nodevisor host daemon: VMs, their consoles, disks, events and the host's capacity." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      ...(opts.token !== undefined ? { security: [{ bearer: [] }] } : {}),
    },
    // @fastify/websocket hides its routes from the document; they are described here instead.
    transformObject: (documentObject) => {
      const doc = (documentObject as { openapiObject: { paths?: Record<string, unknown> } }).openapiObject;
      doc.paths = { ...doc.paths, ...WEBSOCKET_PATHS };
      return doc as never;
    },
  });
  await app.register(responseValidation, { ajv: { coerceTypes: false } });
  await app.register(websocket, { options: { maxPayload: 1 << 20 } });

  const m = ctx.manager;

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  app.get("/v1/vms", { schema: { summary: "List the VMs", response: S.withErrors({ 200: { type: "object", required: ["vms"], properties: { vms: { type: "array", items: S.vmViewSchema } } } }) } }, async () => ({
    vms: m.list(),
  }));

  app.post<{ Body: Partial<VmSpec> & { name: string } }>(
    "/v1/vms",
    { schema: { summary: "Create a VM (stopped)", body: vmSpecInputSchema, response: S.withErrors({ 201: S.vmViewSchema }) } },
    async (req, reply) => {
      const view = await m.create(req.body);
      return reply.status(201).send(view);
    },
  );

  app.get<{ Params: { name: string } }>("/v1/vms/:name", { schema: { summary: "One VM", params: S.nameParams, response: S.withErrors({ 200: S.vmViewSchema }) } }, async (req) =>
    m.get(req.params.name),
  );

  app.patch<{ Params: { name: string }; Body: Partial<VmSpec> }>(
    "/v1/vms/:name",
    {
      schema: {
        summary: "Change a VM's spec",
        description: "CPU cap, shares and disk rate limits apply to a running VM at once; vCPUs, memory, boot files and the set of disks at its next start.",
        params: S.nameParams,
        body: vmSpecPatchSchema,
        response: S.withErrors({ 200: S.vmViewSchema }),
      },
    },
    async (req) => m.edit(req.params.name, req.body),
  );

  app.delete<{ Params: { name: string } }>(
    "/v1/vms/:name",
    { schema: { summary: "Delete a stopped VM and its logs", params: S.nameParams, response: S.withErrors({ 204: { type: "null" } }) } },
    async (req, reply) => {
      await m.delete(req.params.name);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { name: string }; Body: { action: VmAction; timeoutSec?: number } }>(
    "/v1/vms/:name/actions",
    {
      schema: {
        summary: "start, stop (power-down, then kill after timeoutSec), kill, reboot, pause or resume a VM",
        params: S.nameParams,
        body: S.actionBodySchema,
        response: S.withErrors({ 200: S.vmViewSchema }, 502),
      },
    },
    async (req) => m.act(req.params.name, req.body.action, req.body.timeoutSec !== undefined ? { timeoutMs: req.body.timeoutSec * 1000 } : {}),
  );

  registerStateRoutes(app, m);

  app.get<{ Params: { name: string } }>(
    "/v1/vms/:name/stats",
    { schema: { summary: "Counters of a running VM", params: S.nameParams, response: S.withErrors({ 200: S.statsSchema }, 502) } },
    async (req) => {
      const name = req.params.name;
      const stats = await m.stats(name);
      const view = m.get(name);
      return { name, ...stats, memoryBytes: view.spec.memoryMiB * 2 ** 20, cpuCores: m.sample(name)?.cpuCores ?? 0, restarts: view.restarts };
    },
  );

  app.get<{ Params: { name: string }; Querystring: { kind?: "console" | "vmm"; bytes?: number } }>(
    "/v1/vms/:name/logs",
    {
      schema: {
        summary: "The end of a VM's console or VMM log",
        params: S.nameParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { kind: { type: "string", enum: ["console", "vmm"] }, bytes: { type: "integer", minimum: 1, maximum: 16 << 20 } },
        },
        response: S.withErrors({ 200: { type: "string" } }),
      },
    },
    async (req, reply) => {
      m.get(req.params.name);
      const p = vmPaths(ctx.paths, req.params.name);
      const path = req.query.kind === "vmm" ? p.vmmLog : p.consoleLog;
      const text = existsSync(path) ? tail(readFileSync(path), req.query.bytes ?? 65536) : "";
      return reply.type("text/plain; charset=utf-8").send(text);
    },
  );

  app.post<{ Params: { name: string }; Body: { command: string[]; timeoutSec?: number } }>(
    "/v1/vms/:name/exec",
    {
      schema: {
        summary: "Run a command in a fresh VM made from this VM's spec; returns its output and exit status",
        params: S.nameParams,
        body: S.execBodySchema,
        response: S.withErrors({ 200: S.execResultSchema }, 502),
      },
    },
    async (req) => {
      const view = m.get(req.params.name);
      if (view.spec.restore !== undefined) throw illegalTransition(`VM ${view.name} has not resumed its snapshot yet (its disks are made then); start it once first.`);
      if (view.state !== "stopped" && view.state !== "crashed" && view.state !== "failed" && view.spec.disks.some((d) => !d.readOnly)) {
        throw illegalTransition(`VM ${view.name} is ${view.state} and its disks are in use; stop it first, or exec in a VM without writable disks.`);
      }
      const release = m.reserve({ vcpus: view.spec.vcpus, memoryBytes: view.spec.memoryMiB * 2 ** 20 });
      try {
        return await execInFreshVm(view.spec, req.body.command, ctx.command, (req.body.timeoutSec ?? 300) * 1000);
      } catch (e) {
        throw new ApiError(502, "vm-failed", (e as Error).message);
      } finally {
        release();
      }
    },
  );

  app.get<{ Params: { name: string }; Querystring: { write?: string; token?: string } }>(
    "/v1/vms/:name/console",
    {
      websocket: true,
      schema: {
        summary: "WebSocket to the serial console (binary frames: bytes; text frames: JSON control). ?write=1 asks to be the one writer",
        params: S.nameParams,
      },
    },
    async (socket, req) => {
      const name = req.params.name;
      try {
        const proc = m.processOf(name);
        if (proc === null) throw illegalTransition(`VM ${name} is not running; start it to open its console.`);
        await ctx.consoles.join(name, proc, socket, { wantWrite: req.query.write === "1", consoleLog: vmPaths(ctx.paths, name).consoleLog });
      } catch (e) {
        const { body } = errorResponse(e as FastifyError);
        socket.send(JSON.stringify({ type: "error", ...body }));
        socket.close(1008, body.code);
      }
    },
  );

  app.get<{ Querystring: { after?: number; limit?: number; vm?: string } }>(
    "/v1/events",
    {
      schema: {
        summary: "State changes, oldest first, after sequence number `after`",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { after: { type: "integer", minimum: 0 }, limit: { type: "integer", minimum: 1, maximum: 1000 }, vm: { type: "string" } },
        },
        response: S.withErrors({ 200: { type: "object", required: ["events"], properties: { events: { type: "array", items: S.eventSchema } } } }),
      },
    },
    async (req) => ({ events: m.events(req.query.after ?? 0, req.query.limit ?? 100, req.query.vm) }),
  );

  app.get("/v1/events/stream", { websocket: true, schema: { summary: "WebSocket: each new event as one JSON text frame" } }, (socket) => {
    const send = (e: unknown): void => socket.send(JSON.stringify(e));
    m.on("event", send);
    socket.on("close", () => m.off("event", send));
  });

  app.get("/v1/host", { schema: { summary: "Capacity, what is promised and what is used", response: S.withErrors({ 200: S.hostSchema }) } }, async () => {
    const c = m.capacity;
    const vms: Record<string, number> = {};
    let cpuCores = 0;
    let memoryTouchedBytes = 0;
    for (const v of m.list()) {
      vms[v.state] = (vms[v.state] ?? 0) + 1;
      const s = m.sample(v.name);
      cpuCores += s?.cpuCores ?? 0;
      memoryTouchedBytes += s?.stats.memoryTouchedBytes ?? 0;
    }
    return {
      capacity: { ...c },
      limits: { vcpus: Math.floor(c.cores * c.cpuOvercommit), memoryBytes: Math.floor(c.memoryBytes * c.memoryOvercommit) },
      promised: m.promised(),
      used: { cpuCores, memoryTouchedBytes },
      vms,
    };
  });

  app.get("/v1/images", { schema: { summary: "Guest images in the cache", response: S.withErrors({ 200: { type: "object", required: ["images"], properties: { images: { type: "array", items: S.imageSchema } } } }) } }, async () => {
    const dir = imagesDir(ctx.cacheDir ?? defaultCacheDir());
    const images = [];
    for (const name of existsSync(dir) ? readdirSync(dir) : []) {
      if (!statSync(join(dir, name)).isDirectory()) continue;
      const img = loadImage(join(dir, name));
      if (img !== null) images.push({ name: img.name, dir: img.dir, kernel: img.kernel, initrd: img.initrd, kernelVersion: img.kernelVersion });
    }
    return { images };
  });

  registerDiskRoutes(app, ctx);

  app.get("/metrics", { schema: { summary: "Prometheus metrics", response: { 200: { type: "string" } } } }, async (_req, reply) => {
    const text = await ctx.metrics.metrics();
    return reply.type(ctx.metrics.contentType).send(text);
  });

  registerWebConsole(app);
  return app;
}

/** Live snapshots, restores' counterpart (POST /v1/vms with `restore`), and live migration out and in. */
function registerStateRoutes(app: FastifyInstance, m: VmManager): void {
  app.post<{ Params: { name: string }; Body: { path: string } }>(
    "/v1/vms/:name/snapshot",
    {
      schema: {
        summary: "Save a running VM to a snapshot file while it runs; its writable disks go on on new overlays (the spec follows)",
        params: S.nameParams,
        body: S.snapshotBodySchema,
        response: S.withErrors({ 200: S.snapshotResultSchema }, 502),
      },
    },
    async (req) => m.snapshot(req.params.name, req.body.path),
  );
  app.post<{ Params: { name: string }; Body: { uri: string; downtimeLimitMs?: number; maxBandwidth?: number; copyDisks?: boolean } }>(
    "/v1/vms/:name/migrate",
    {
      schema: {
        summary: "Start a live migration of a running VM to a VM waiting with receive; GET /v1/vms/{name} shows its progress",
        params: S.nameParams,
        body: S.migrateBodySchema,
        response: S.withErrors({ 200: S.vmViewSchema }, 502),
      },
    },
    async (req) => m.migrate(req.params.name, req.body.uri, { downtimeLimitMs: req.body.downtimeLimitMs, maxBandwidth: req.body.maxBandwidth, copyDisks: req.body.copyDisks }),
  );
  app.post<{ Params: { name: string } }>(
    "/v1/vms/:name/migrate-cancel",
    { schema: { summary: "Call off the migration under way; the guest runs on here", params: S.nameParams, response: S.withErrors({ 200: S.vmViewSchema }, 502) } },
    async (req) => m.migrateCancel(req.params.name),
  );
  app.post<{ Params: { name: string }; Body: { listen: string; timeoutSec?: number; spec?: Partial<VmSpec> } }>(
    "/v1/vms/:name/receive",
    {
      schema: {
        summary: "Wait for a VM migrated from another nodevisor: creates it in state incoming (or takes back one that migrated away from here)",
        params: S.nameParams,
        body: S.receiveBodySchema,
        response: S.withErrors({ 201: S.vmViewSchema }, 502),
      },
    },
    async (req, reply) => {
      if (!new RegExp(VM_NAME_PATTERN).test(req.params.name)) throw invalid(`The name "${req.params.name}" is not a VM name: use lower-case letters, digits and -, at most 32.`);
      const view = await m.receive({ ...req.body.spec, name: req.params.name }, req.body.listen, (req.body.timeoutSec ?? 3600) * 1000);
      return reply.status(201).send(view);
    },
  );
}

function registerDiskRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const d = ctx.disks;
  const pathBody = (extra: Record<string, unknown>, required: string[]) => ({
    type: "object",
    additionalProperties: false,
    required: ["path", ...required],
    properties: { path: { type: "string", minLength: 1, maxLength: 4096 }, ...extra },
  });
  app.get("/v1/disks", { schema: { summary: "Disks the daemon made", response: S.withErrors({ 200: { type: "object", required: ["disks"], properties: { disks: { type: "array", items: { type: "object", additionalProperties: true } } } } }) } }, async () => ({
    disks: d.list(),
  }));
  app.get<{ Querystring: { path: string } }>(
    "/v1/disks/info",
    { schema: { summary: "Format, sizes, snapshots and backing chain of a disk", querystring: pathBody({}, []), response: S.withErrors({ 200: S.diskInfoSchema }) } },
    async (req) => d.info(req.query.path),
  );
  app.post<{ Body: { path: string; format?: "qcow2" | "raw"; sizeBytes: number } }>(
    "/v1/disks",
    {
      schema: {
        summary: "Create a disk (relative paths land in the daemon's disks folder)",
        body: pathBody({ format: { type: "string", enum: ["qcow2", "raw"] }, sizeBytes: { type: "integer", minimum: 512 } }, ["sizeBytes"]),
        response: S.withErrors({ 201: S.diskInfoSchema }),
      },
    },
    async (req, reply) => reply.status(201).send(await d.create({ path: req.body.path, format: req.body.format ?? "qcow2", sizeBytes: req.body.sizeBytes })),
  );
  app.post<{ Body: { path: string; source: string } }>(
    "/v1/disks/clone",
    {
      schema: {
        summary: "Linked clone: a new qcow2 backed by the source",
        body: pathBody({ source: { type: "string", minLength: 1, maxLength: 4096 } }, ["source"]),
        response: S.withErrors({ 201: S.diskInfoSchema }),
      },
    },
    async (req, reply) => reply.status(201).send(await d.clone(req.body)),
  );
  app.post<{ Body: { path: string; name: string } }>(
    "/v1/disks/snapshot",
    {
      schema: {
        summary: "Take an internal snapshot of a qcow2 disk (not in use by a running VM)",
        body: pathBody({ name: { type: "string", minLength: 1, maxLength: 128 } }, ["name"]),
        response: S.withErrors({ 201: S.diskInfoSchema }),
      },
    },
    async (req, reply) => reply.status(201).send(await d.snapshot(req.body)),
  );
}

const upgradeResponses = {
  101: { description: "Switching Protocols: the WebSocket is open" },
  400: { description: "Not a WebSocket request", content: { "application/json": { schema: S.errorSchema } } },
  401: { description: "No valid bearer token (TCP listeners)", content: { "application/json": { schema: S.errorSchema } } },
  404: { description: "No such VM", content: { "application/json": { schema: S.errorSchema } } },
};

const WEBSOCKET_PATHS = {
  "/v1/vms/{name}/console": {
    get: {
      summary: "WebSocket to the VM's serial console",
      description:
        'Binary frames carry console bytes both ways. Text frames are JSON: from the server {"type":"hello","writer":bool}, {"type":"error","code","message"}, {"type":"closed","message"}; from the writer {"type":"resize","rows":N,"cols":N}. Any number of viewers; the first to ask with ?write=1 is the one writer. A VM that is not running gets an error frame and close code 1008.',
      parameters: [
        { name: "name", in: "path", required: true, schema: { type: "string" } },
        { name: "write", in: "query", required: false, schema: { type: "string", enum: ["1"] } },
      ],
      responses: upgradeResponses,
    },
  },
  "/v1/events/stream": {
    get: {
      summary: "WebSocket: every new event as one JSON text frame (the schema of GET /v1/events items)",
      responses: upgradeResponses,
    },
  },
};

function tail(buf: Buffer, bytes: number): string {
  return buf.subarray(Math.max(0, buf.length - bytes)).toString("utf8");
}

/** Any error as the status and {code, message} body the API answers with. */
export function errorResponse(error: FastifyError | ApiError | Error): { status: number; body: ErrorBody } {
  if (error instanceof ApiError) return { status: error.statusCode, body: { code: error.code, message: error.message } };
  const fe = error as FastifyError & { validation?: Array<{ instancePath: string; message?: string; params?: Record<string, unknown> }>; validationContext?: string };
  if (fe.validation !== undefined && fe.validation.length > 0) {
    const v = fe.validation[0]!;
    const where = fe.validationContext === "body" ? "" : `${fe.validationContext ?? "request"} `;
    const path = v.instancePath.replace(/^\//, "").replace(/\/(\d+)(?=\/|$)/g, "[$1]").replace(/\//g, ".");
    const extra = v.params?.additionalProperty ?? v.params?.missingProperty;
    let message: string;
    if (path === "" && extra !== undefined) {
      message = v.params?.missingProperty !== undefined ? `The ${where}field "${extra}" is required.` : `The ${where}field "${extra}" is not known; /openapi.json lists the fields.`;
    } else if (extra !== undefined) {
      message = v.params?.missingProperty !== undefined ? `The ${where}field "${path}.${extra}" is required.` : `The ${where}field "${path}.${extra}" is not known; /openapi.json lists the fields.`;
    } else {
      message = `The ${where}field "${path || "(body)"}" ${v.message ?? "is not valid"}.`;
    }
    return { status: 400, body: invalid(message).toJSONBody() };
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { code: fe.statusCode === 404 ? "not-found" : "invalid-request", message: sentence(fe.message) } };
  }
  return { status: 500, body: { code: "internal", message: `The daemon failed (a nodevisor bug; see its log): ${sentence(error.message)}` } };
}

function sentence(s: string): string {
  const t = s.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}
