// JSON schemas of the API's requests and responses. Fastify validates requests with them, the
// response-validation plugin checks every response, and @fastify/swagger turns them into the
// OpenAPI document at /openapi.json.

import { vmSpecReceiveSchema, vmSpecSchema } from "./spec.js";

export const errorSchema = {
  type: "object",
  additionalProperties: false,
  required: ["code", "message"],
  properties: {
    code: { type: "string", enum: ["invalid-request", "unauthorized", "not-found", "conflict", "invalid-transition", "insufficient-capacity", "vm-failed", "internal"] },
    message: { type: "string", description: "one sentence for people" },
  },
} as const;

export const vmStates = ["stopped", "starting", "running", "paused", "stopping", "crashed", "failed", "incoming"] as const;

/** A live migration as the VM's view shows it: query-migrate's figures (docs/control-socket.md) and its direction. */
export const migrationViewSchema = {
  type: ["object", "null"],
  required: ["direction", "uri", "status"],
  properties: {
    direction: { type: "string", enum: ["out", "in"], description: "out: this VM leaves this host; in: it arrives (uri: where it is awaited)" },
    uri: { type: "string" },
    status: { type: "string", enum: ["waiting", "none", "setup", "active", "device", "completed", "failed", "cancelled"] },
    totalTimeMs: { type: "number" },
    ram: { type: "object", additionalProperties: { type: "number" } },
    disk: { type: "object", additionalProperties: { type: "number" }, description: "block migration (copyDisks): disk bytes sent, and bytes written since that are still to go" },
    expectedDowntimeMs: { type: ["number", "null"] },
    downtimeMs: { type: "number" },
    throttlePercent: { type: ["number", "null"] },
    error: { type: "string" },
  },
} as const;

export const vmViewSchema = {
  type: "object",
  additionalProperties: false,
  required: ["name", "spec", "desired", "state", "pid", "restarts", "lastExit", "effectiveCpuCap", "migration", "migratedTo", "restoredFrom", "createdAt", "updatedAt"],
  properties: {
    name: { type: "string" },
    spec: vmSpecSchema,
    desired: { type: "string", enum: ["running", "paused", "stopped"] },
    state: { type: "string", enum: [...vmStates] },
    pid: { type: ["integer", "null"] },
    restarts: { type: "integer" },
    lastExit: { type: ["string", "null"] },
    effectiveCpuCap: { type: ["integer", "null"] },
    migration: migrationViewSchema,
    migratedTo: { type: ["string", "null"], description: "where the VM went by live migration; it does not start here while set" },
    restoredFrom: { type: ["string", "null"], description: "the snapshot it was restored from, once the restore ran" },
    createdAt: { type: "string" },
    updatedAt: { type: "string" },
  },
} as const;

export const nameParams = {
  type: "object",
  required: ["name"],
  properties: { name: { type: "string", maxLength: 64 } },
} as const;

export const actionBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["action"],
  properties: {
    action: { type: "string", enum: ["start", "stop", "kill", "reboot", "pause", "resume"] },
    timeoutSec: { type: "number", minimum: 0, maximum: 3600, description: "stop: seconds to wait for the guest to power off before killing it" },
  },
} as const;

export const snapshotBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["path"],
  properties: { path: { type: "string", minLength: 1, maxLength: 4096, description: "an absolute path for the snapshot file, in an existing folder; never overwritten" } },
} as const;

export const snapshotResultSchema = {
  type: "object",
  additionalProperties: false,
  required: ["path", "bytes", "ramPages", "pausedMs", "rounds", "disks"],
  properties: {
    path: { type: "string" },
    bytes: { type: "integer", description: "the file's length (its RAM image is sparse)" },
    ramPages: { type: "integer", description: "non-zero 4 KiB pages written" },
    pausedMs: { type: "number", description: "how long the guest was stopped" },
    rounds: { type: "integer", description: "rounds of pages written while the guest ran" },
    disks: {
      type: "array",
      description: "each writable disk: the file the snapshot keeps (frozen) and the overlay the VM writes to now (active; the VM's spec follows)",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["device", "frozen", "active"],
        properties: { device: { type: "string" }, frozen: { type: "string" }, active: { type: "string" } },
      },
    },
  },
} as const;

export const migrateBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["uri"],
  properties: {
    uri: { type: "string", minLength: 1, maxLength: 4096, description: "where a `vm receive` waits: tcp:HOST:PORT or unix:PATH" },
    downtimeLimitMs: { type: "integer", minimum: 1, maximum: 60_000, description: "the longest the guest may stop for the switch-over (default 300)" },
    maxBandwidth: { type: "integer", minimum: 1 << 20, description: "bytes per second the stream may use (default 128 MiB/s)" },
    copyDisks: { type: "boolean", description: "block migration: copy the writable disks along into the files the receiving VM's spec names (default: shared storage)" },
  },
} as const;

export const receiveBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["listen"],
  properties: {
    listen: { type: "string", minLength: 1, maxLength: 4096, description: "where to wait: tcp:HOST:PORT (port 0: any free one; the view's migration.uri names it) or unix:PATH" },
    timeoutSec: { type: "number", minimum: 1, maximum: 86_400, description: "how long to wait for the migration (default 3600)" },
    spec: vmSpecReceiveSchema,
  },
} as const;

export const statsSchema = {
  type: "object",
  required: ["name", "instructionsRetired", "mips", "idleMs", "trapsByCause", "devices"],
  properties: {
    name: { type: "string" },
    instructionsRetired: { type: "number" },
    mips: { type: "number" },
    idleMs: { type: "number" },
    cpuMs: { type: "number" },
    stealMs: { type: "number" },
    throttledMs: { type: "number" },
    cpuCap: { type: ["number", "null"] },
    memoryBytes: { type: "number" },
    memoryTouchedBytes: { type: ["number", "null"] },
    cpuTier: { type: "string", enum: ["interp", "jit"] },
    jit: { type: "object", description: "the JIT's code cache (docs/jit.md)", additionalProperties: { type: "number" } },
    cpuCores: { type: "number", description: "host cores used over the last second" },
    balloon: { type: "object", additionalProperties: true, description: "the memory balloon: target, size, guest statistics, pages reported and returned (docs/control-socket.md, query-balloon)" },
    trapsByCause: { type: "object", additionalProperties: { type: "number" } },
    devices: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "kind", "requests", "bytesRead", "bytesWritten", "errors"],
        properties: {
          name: { type: "string" },
          kind: { type: "string" },
          requests: { type: "number" },
          bytesRead: { type: "number" },
          bytesWritten: { type: "number" },
          errors: { type: "number" },
          counters: { type: "object", additionalProperties: { type: "number" } },
          queueDepth: {
            type: "object",
            required: ["current", "max"],
            properties: { current: { type: "integer", description: "requests on the backend now" }, max: { type: "integer", description: "the most at once so far" } },
          },
          latency: {
            type: "object",
            description: "request latency, from leaving the ring to completing, as a histogram",
            required: ["boundsSeconds", "cumulativeCounts", "count", "sumSeconds"],
            properties: {
              boundsSeconds: { type: "array", items: { type: "number" } },
              cumulativeCounts: { type: "array", items: { type: "integer" }, description: "requests at or below each bound" },
              count: { type: "integer" },
              sumSeconds: { type: "number" },
            },
          },
        },
      },
    },
    restarts: { type: "integer" },
  },
} as const;

export const execBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["command"],
  properties: {
    command: { type: "array", minItems: 1, maxItems: 256, items: { type: "string", maxLength: 4096 } },
    timeoutSec: { type: "number", minimum: 1, maximum: 3600 },
  },
} as const;

export const execResultSchema = {
  type: "object",
  additionalProperties: false,
  required: ["exitStatus", "stdout", "stderr", "durationMs", "truncated"],
  properties: {
    exitStatus: { type: "integer" },
    stdout: { type: "string" },
    stderr: { type: "string" },
    durationMs: { type: "number" },
    truncated: { type: "boolean", description: "output beyond 1 MiB per stream was dropped" },
  },
} as const;

export const eventSchema = {
  type: "object",
  additionalProperties: false,
  required: ["seq", "time", "vm", "type", "message", "data"],
  properties: {
    seq: { type: "integer" },
    time: { type: "string" },
    vm: { type: ["string", "null"] },
    type: { type: "string" },
    message: { type: "string" },
    data: { type: "object", additionalProperties: true },
  },
} as const;

export const hostSchema = {
  type: "object",
  additionalProperties: false,
  required: ["capacity", "limits", "promised", "used", "vms"],
  properties: {
    capacity: {
      type: "object",
      additionalProperties: false,
      required: ["cores", "memoryBytes", "cpuOvercommit", "memoryOvercommit"],
      properties: { cores: { type: "number" }, memoryBytes: { type: "number" }, cpuOvercommit: { type: "number" }, memoryOvercommit: { type: "number" } },
    },
    limits: {
      type: "object",
      additionalProperties: false,
      required: ["vcpus", "memoryBytes"],
      properties: { vcpus: { type: "number" }, memoryBytes: { type: "number" } },
    },
    promised: {
      type: "object",
      additionalProperties: false,
      required: ["vcpus", "memoryBytes"],
      properties: { vcpus: { type: "number" }, memoryBytes: { type: "number" } },
    },
    used: {
      type: "object",
      additionalProperties: false,
      required: ["cpuCores", "memoryTouchedBytes"],
      properties: { cpuCores: { type: "number" }, memoryTouchedBytes: { type: "number" } },
    },
    vms: { type: "object", additionalProperties: { type: "integer" } },
  },
} as const;

export const imageSchema = {
  type: "object",
  required: ["name", "dir", "kernel", "initrd"],
  properties: {
    name: { type: "string" },
    dir: { type: "string" },
    kernel: { type: "string" },
    initrd: { type: "string" },
    kernelVersion: { type: "string" },
  },
} as const;

export const diskInfoSchema = {
  type: "object",
  required: ["filename", "format", "virtualSize", "diskSize", "backingChain"],
  properties: {
    filename: { type: "string" },
    format: { type: "string" },
    virtualSize: { type: "number" },
    diskSize: { type: "number" },
    clusterSize: { type: "number" },
    backingFile: { type: "string" },
    snapshots: { type: "array", items: { type: "object", additionalProperties: true } },
    backingChain: { type: "array", items: { type: "object", additionalProperties: true } },
  },
  additionalProperties: true,
} as const;

/** Error responses every route may give. */
export function withErrors<T extends Record<number, unknown>>(ok: T, ...codes: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = { ...ok };
  for (const c of [400, 401, 404, 409, 500, ...codes]) out[c] = errorSchema;
  return out;
}
