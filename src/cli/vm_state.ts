// `nodevisor vm snapshot | migrate | migrate-cancel | receive`: whole-VM state through the daemon
// (docs/daemon.md). `vm create --restore FILE` is in vm.ts with the other spec options.

import { resolve } from "node:path";
import type { ApiClient } from "../host/api_client.js";
import type { VmSpec } from "../host/spec.js";
import type { MigrationView, VmView } from "../host/vm_manager.js";
import type { SnapshotResult } from "../vm/snapshot/vm_snapshot.js";
import { formatSize, parseSize } from "../storage/sizes.js";
import { UsageError } from "./errors.js";

export const VM_STATE_HELP = `  snapshot NAME FILE           save the running VM to FILE while it runs; its disks
                               go on on new overlays (the VM's spec follows)
  migrate NAME URI             move the running VM to a \`vm receive\` at URI
                               (tcp:HOST:PORT or unix:PATH) and wait until it is there;
                               --downtime-limit MS, --max-bandwidth RATE, --no-wait,
                               --copy-disks (block migration: no shared storage)
  migrate-cancel NAME          call off its migration (it runs on here)
  receive NAME --listen URI    wait for a VM migrated from another daemon
                               (--timeout SEC; spec options for its later starts;
                               --disk FILE: where each disk is here, or the new file
                               a --copy-disks migration fills)
`;

export const STATE_COMMANDS = new Set(["snapshot", "migrate", "migrate-cancel", "receive"]);

type Values = Record<string, string | string[] | boolean | undefined>;

export interface StateCommandContext {
  sub: string;
  name: string;
  /** The positional after the name (snapshot's FILE, migrate's URI). */
  target: string | undefined;
  values: Values;
  client: ApiClient;
  json: boolean;
  out: (s: string) => void;
  /** The spec options given (receive). */
  spec: () => Partial<VmSpec>;
}

const enc = encodeURIComponent;

export async function runStateCommand(c: StateCommandContext): Promise<number> {
  const print = (data: unknown, human: () => string): void => c.out(c.json ? `${JSON.stringify(data, null, 2)}\n` : human());
  const base = `/v1/vms/${enc(c.name)}`;
  switch (c.sub) {
    case "snapshot": {
      if (c.target === undefined) throw new UsageError("nodevisor vm snapshot: give the snapshot file, e.g. `nodevisor vm snapshot web1 /var/tmp/web1.snap`.");
      const r = await c.client.call<SnapshotResult>("POST", `${base}/snapshot`, { path: resolve(c.target) });
      print(r, () => {
        const moved = r.disks.map((d) => `\n  ${d.device} now writes to ${d.active} (${d.frozen} belongs to the snapshot)`).join("");
        return `VM ${c.name} saved to ${r.path} (${formatSize(r.bytes)}; the guest stopped for ${r.pausedMs} ms after ${r.rounds} rounds).${moved}\nRestore it with \`nodevisor vm create NAME --restore ${r.path}\`.\n`;
      });
      return 0;
    }
    case "migrate": {
      if (c.target === undefined) throw new UsageError("nodevisor vm migrate: give where to, e.g. `nodevisor vm migrate web1 tcp:10.0.0.7:4444` (start `nodevisor vm receive` there first).");
      const body: Record<string, unknown> = { uri: c.target };
      if (c.values["downtime-limit"] !== undefined) body.downtimeLimitMs = wholeNumber("--downtime-limit", c.values["downtime-limit"] as string);
      if (c.values["max-bandwidth"] !== undefined) body.maxBandwidth = bytes("--max-bandwidth", c.values["max-bandwidth"] as string);
      if (c.values["copy-disks"]) body.copyDisks = true;
      let v = await c.client.call<VmView>("POST", `${base}/migrate`, body);
      if (c.values["no-wait"]) {
        print(v, () => `VM ${c.name} is migrating to ${c.target}; \`nodevisor vm show ${c.name}\` shows how far it is.\n`);
        return 0;
      }
      let m: MigrationView | null = v.migration;
      while (m !== null && !["completed", "failed", "cancelled"].includes(m.status)) {
        await new Promise((r) => setTimeout(r, 500));
        v = await c.client.call<VmView>("GET", base);
        m = v.migration;
      }
      if (m?.status === "completed") {
        print(v, () => `VM ${c.name} was migrated to ${m!.uri}${m!.totalTimeMs !== undefined ? ` in ${m!.totalTimeMs} ms` : ""}${m!.downtimeMs !== undefined ? ` (the guest stopped for ${m!.downtimeMs} ms)` : ""}; it runs there now.\n`);
        return 0;
      }
      if (c.json) print(v, () => "");
      process.stderr.write(`nodevisor vm migrate: the migration of VM ${c.name} ${m?.status === "cancelled" ? "was cancelled" : `failed: ${m?.error ?? "no reason given"}`}; it runs on here.\n`);
      return m?.status === "cancelled" ? 1 : 5;
    }
    case "migrate-cancel": {
      const v = await c.client.call<VmView>("POST", `${base}/migrate-cancel`);
      print(v, () => `The migration of VM ${c.name} is called off; it runs on here.\n`);
      return 0;
    }
    case "receive": {
      const listen = c.values.listen as string | undefined;
      if (listen === undefined) throw new UsageError("nodevisor vm receive: give where to wait, e.g. `--listen tcp:0.0.0.0:4444` or `--listen unix:/run/mig.sock`.");
      const body: Record<string, unknown> = { listen };
      if (c.values.timeout !== undefined) body.timeoutSec = wholeNumber("--timeout", c.values.timeout as string);
      const spec = c.spec();
      if (Object.keys(spec).length > 0) body.spec = spec;
      const v = await c.client.call<VmView>("POST", `${base}/receive`, body);
      print(v, () => `VM ${c.name} waits for a migration on ${v.migration?.uri ?? listen}; on the source: \`nodevisor vm migrate NAME ${v.migration?.uri ?? listen}\`.\n`);
      return 0;
    }
    default:
      throw new UsageError(`nodevisor vm: unknown command "${c.sub}".`);
  }
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`nodevisor vm: ${flag} needs a whole number above 0, not "${text}".`);
  return n;
}

function bytes(flag: string, text: string): number {
  try {
    return parseSize(text);
  } catch {
    throw new UsageError(`nodevisor vm: ${flag} needs bytes per second such as 64M, not "${text}".`);
  }
}
