// JSON schemas of the API's requests and responses. Fastify validates requests with them, the
// response-validation plugin checks every response, and @fastify/swagger turns them into the
// OpenAPI document at /openapi.json.

import { vmSpecSchema } from "./spec.js";

export const errorSchema = {
  type: "object",
  additionalProperties: false,
  required: ["code", "message"],
  properties: {
    code: { type: "string", enum: ["invalid-request", "unauthorized", "not-found", "conflict", "invalid-transition", "insufficient-capacity", "vm-failed", "internal"] },
    message: { type: "string", description: "one sentence for people" },
  },
} as const;

export const vmStates = ["stopped", "starting", "running", "paused", "stopping", "crashed", "failed"] as const;

export const vmViewSchema = {
  type: "object",
  additionalProperties: false,
  required: ["name", "spec", "desired", "state", "pid", "restarts", "lastExit", "effectiveCpuCap", "createdAt", "updatedAt"],
  properties: {
    name: { type: "string" },
    spec: vmSpecSchema,
    desired: { type: "string", enum: ["running", "paused", "stopped"] },
    state: { type: "string", enum: [...vmStates] },
    pid: { type: ["integer", "null"] },
    restarts: { type: "integer" },
    lastExit: { type: ["string", "null"] },
    effectiveCpuCap: { type: ["integer", "null"] },
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
