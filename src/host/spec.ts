// A VM's specification as the API takes it, its JSON schema (the OpenAPI document is built from
// it), and the checks a schema cannot express. Names are short and safe as file names.

import { MAX_CPUS, MAX_MEMORY, MIN_MEMORY } from "../machine/layout.js";
import { DISK_FORMATS } from "../storage/open.js";
import { invalid } from "./errors.js";
import { checkNic, nicSchema, type NicSpec } from "./nic_spec.js";
import { FREE_VIRTIO_SLOTS } from "../vm/virtio_slots.js";

export type RestartPolicy = "no" | "on-failure" | "always";

export interface DiskSpec {
  path: string;
  readOnly?: boolean;
  format?: (typeof DISK_FORMATS)[number];
  /** Bytes per second; 0 or absent: unlimited. */
  bps?: number;
  /** Requests per second; 0 or absent: unlimited. */
  iops?: number;
  /** One-time extra bytes on top of bps. */
  burst?: number;
}

export interface VmSpec {
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** A guest image by name or directory; ignored for the parts kernel/initrd give. */
  image?: string;
  kernel?: string;
  initrd?: string;
  /** Extra kernel command line. */
  cmdline?: string;
  disks: DiskSpec[];
  /** Virtual NICs (eth0, eth1, …), as `--net` takes them; absent in specs stored before NICs existed. */
  nics?: NicSpec[];
  /** CPU cap in per cent of a host core per vCPU; null: none. */
  cpuCap: number | null;
  /** Relative weight when VMs contend for host cores. */
  cpuShares: number;
  restartPolicy: RestartPolicy;
  autostart: boolean;
  /** The guest's memory size while it runs (a balloon target within memoryMiB); null or absent: all of memoryMiB. */
  memoryTargetMiB?: number | null;
  /** Whether the daemon's memory policy may move this VM's balloon (default true). */
  memoryPolicy?: boolean;
  /** A snapshot file the VM's next start resumes (`run --restore`); the daemon clears it once the restore ran (vm_state.ts). */
  restore?: string;
}

export const VM_NAME_PATTERN = "^[a-z0-9][a-z0-9-]{0,31}$";
export const MAX_DISKS = 4;

const diskSchema = {
  type: "object",
  additionalProperties: false,
  required: ["path"],
  properties: {
    path: { type: "string", minLength: 1, maxLength: 4096 },
    readOnly: { type: "boolean" },
    format: { type: "string", enum: [...DISK_FORMATS] },
    bps: { type: "integer", minimum: 0 },
    iops: { type: "integer", minimum: 0 },
    burst: { type: "integer", minimum: 0 },
  },
} as const;

const specProperties = {
  name: { type: "string", pattern: VM_NAME_PATTERN, description: "lower-case letters, digits and -, at most 32" },
  vcpus: { type: "integer", minimum: 1, maximum: MAX_CPUS },
  memoryMiB: { type: "integer", minimum: MIN_MEMORY / 2 ** 20, maximum: MAX_MEMORY / 2 ** 20 },
  image: { type: "string", minLength: 1, maxLength: 4096 },
  kernel: { type: "string", minLength: 1, maxLength: 4096 },
  initrd: { type: "string", minLength: 1, maxLength: 4096 },
  cmdline: { type: "string", maxLength: 900 },
  disks: { type: "array", maxItems: MAX_DISKS, items: diskSchema },
  nics: { type: "array", maxItems: FREE_VIRTIO_SLOTS, items: nicSchema },
  cpuCap: { type: ["integer", "null"], minimum: 1, maximum: 100 },
  cpuShares: { type: "integer", minimum: 1, maximum: 10000 },
  restartPolicy: { type: "string", enum: ["no", "on-failure", "always"] },
  autostart: { type: "boolean" },
  memoryTargetMiB: { type: ["integer", "null"], minimum: 1, maximum: MAX_MEMORY / 2 ** 20, description: "the guest's memory size while it runs (balloon target), at most memoryMiB" },
  memoryPolicy: { type: "boolean", description: "let the daemon's memory policy move this VM's balloon (default true)" },
  restore: { type: "string", minLength: 1, maxLength: 4096, description: "an absolute path to a snapshot (POST /v1/vms/{name}/snapshot): the first start resumes it; vcpus, memoryMiB, boot files, disks and NICs come from it" },
} as const;

/** What POST /v1/vms accepts: everything but the name has a default. */
export const vmSpecInputSchema = {
  type: "object",
  additionalProperties: false,
  required: ["name"],
  properties: specProperties,
} as const;

/** What PATCH /v1/vms/{name} accepts: any field but the name. */
export const vmSpecPatchSchema = {
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: Object.fromEntries(Object.entries(specProperties).filter(([k]) => k !== "name" && k !== "restore")),
} as const;

/** What POST /v1/vms/{name}/receive accepts beside the address: the VM's spec for later starts (the name is in the path; the machine that arrives wins). */
export const vmSpecReceiveSchema = {
  type: "object",
  additionalProperties: false,
  properties: Object.fromEntries(Object.entries(specProperties).filter(([k]) => k !== "name" && k !== "restore")),
} as const;

/** A stored spec: every field present. */
export const vmSpecSchema = {
  type: "object",
  additionalProperties: false,
  required: ["name", "vcpus", "memoryMiB", "disks", "cpuCap", "cpuShares", "restartPolicy", "autostart"],
  properties: specProperties,
} as const;

export function withDefaults(input: Partial<VmSpec> & { name: string }): VmSpec {
  return {
    vcpus: 1,
    memoryMiB: 256,
    disks: [],
    cpuCap: null,
    cpuShares: 100,
    restartPolicy: "no",
    autostart: false,
    ...input,
  };
}

/** Checks what the schema cannot: combinations of fields. Throws a 400 ApiError naming the field. */
export function checkSpec(spec: VmSpec): void {
  if (spec.memoryTargetMiB != null && spec.memoryTargetMiB > spec.memoryMiB) {
    throw invalid(`The field "memoryTargetMiB" asks for ${spec.memoryTargetMiB} MiB, more than the VM's RAM (memoryMiB ${spec.memoryMiB}); raise memoryMiB and restart the VM, or ask for less.`);
  }
  if (spec.initrd !== undefined && spec.kernel === undefined) {
    throw invalid(`The field "initrd" needs "kernel" beside it: an initrd alone would boot the image's kernel with another initramfs.`);
  }
  const seen = new Set<string>();
  spec.disks.forEach((d, i) => {
    if (seen.has(d.path)) throw invalid(`The field "disks[${i}].path" names "${d.path}" a second time; attach each disk once.`);
    seen.add(d.path);
    if (d.burst && !d.bps) throw invalid(`The field "disks[${i}].burst" needs "bps" beside it.`);
  });
  const nics = spec.nics ?? [];
  if (spec.disks.length + nics.length > FREE_VIRTIO_SLOTS) {
    throw invalid(`The field "nics" asks for ${nics.length} NICs beside ${spec.disks.length} disks; a VM has room for ${FREE_VIRTIO_SLOTS} disks and NICs together.`);
  }
  const macs = new Set<string>();
  nics.forEach((n, i) => {
    checkNic(n, `nics[${i}]`);
    if (n.mac !== undefined) {
      if (macs.has(n.mac.toLowerCase())) throw invalid(`The field "nics[${i}].mac" repeats ${n.mac}; give each NIC its own MAC.`);
      macs.add(n.mac.toLowerCase());
    }
  });
}
