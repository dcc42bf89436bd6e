// `nodevisor vm …`: the daemon's client. Tables for people, --json for scripts.
// Exit status: 0 done; 1 the daemon refused (conflict, illegal transition, no capacity);
// 2 bad usage or an invalid request; 3 no such VM; 4 no daemon answers; 5 the VM failed.

import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { ApiClient, ApiClientError } from "../host/api_client.js";
import { defaultHostPaths } from "../host/paths.js";
import type { DiskSpec, VmSpec } from "../host/spec.js";
import type { VmView } from "../host/vm_manager.js";
import { checkCpuCap, parseMemorySize } from "../vm/config.js";
import { formatSize } from "../storage/sizes.js";
import { NetSpecError, parseNetSpec, type NetConfig } from "../net/spec.js";
import { describeNic, nicFromNetConfig, type NicSpec } from "../host/nic_spec.js";
import { latencyQuantileBound, type LatencySnapshot } from "../devices/virtio/block/latency.js";
import { parseDiskSpec } from "./run.js";
import { UsageError } from "./errors.js";
import { attachTerminal } from "./terminal.js";
import { runStateCommand, STATE_COMMANDS, VM_STATE_HELP } from "./vm_state.js";
import { resolve } from "node:path";

export const VM_HELP = `Usage: nodevisor vm <command> [options]

Commands:
  create NAME [spec options]   define a VM (stopped)
  edit NAME [spec options]     change it (CPU cap, shares, disk limits apply at once)
  list                         the VMs and their state
  show NAME                    one VM's spec and state
  start | stop | kill | reboot | pause | resume NAME
                               stop asks the guest to power off, then kills it
                               after --timeout SEC (default: the daemon's, 30)
  delete NAME                  remove a stopped VM and its logs
  console NAME                 attach to the serial console (Ctrl-A X detaches)
  exec NAME -- CMD [ARGS...]   run a command in a fresh VM made from NAME's spec
  stats NAME                   counters of a running VM
  logs NAME [--vmm] [--bytes N]  the end of its console (or VMM) log
${VM_STATE_HELP}
Spec options:
  -c, --cpus N  -m, --memory SIZE  --image NAME  --kernel FILE  --initrd FILE
  --append "ARGS"  --disk FILE[,readonly][,format=F][,bps=RATE][,iops=N][,burst=B]
  --net SPEC (repeatable, as \`nodevisor run --net\`; --net none on edit removes them)
  --cpu-cap PCT  --cpu-shares N  --restart no|on-failure|always  --autostart / --no-autostart
  --memory-target SIZE|none (the guest's memory while it runs: a balloon target
  within --memory, applied at once)  --memory-policy on|off (docs/memory.md)
  --restore FILE (create only: the VM starts from a snapshot, which sets its
  vCPUs, memory, boot files, disks and NICs; later starts boot it afresh)

Connection (default: the local daemon's socket):
  --socket PATH  --host URL  --token TOKEN | --token-file FILE  --json

Exit status: 0 done, 1 refused by the daemon, 2 bad input, 3 no such VM,
4 no daemon answers, 5 the VM failed.
`;

const OPTIONS = {
  cpus: { type: "string", short: "c" },
  memory: { type: "string", short: "m" },
  image: { type: "string" },
  kernel: { type: "string" },
  initrd: { type: "string" },
  append: { type: "string" },
  disk: { type: "string", multiple: true },
  net: { type: "string", multiple: true },
  "cpu-cap": { type: "string" },
  "cpu-shares": { type: "string" },
  "memory-target": { type: "string" },
  "memory-policy": { type: "string" },
  restart: { type: "string" },
  autostart: { type: "boolean" },
  "no-autostart": { type: "boolean" },
  timeout: { type: "string" },
  restore: { type: "string" },
  listen: { type: "string" },
  "downtime-limit": { type: "string" },
  "max-bandwidth": { type: "string" },
  "no-wait": { type: "boolean" },
  "copy-disks": { type: "boolean" },
  vmm: { type: "boolean" },
  bytes: { type: "string" },
  socket: { type: "string" },
  host: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = Record<string, string | string[] | boolean | undefined>;

const EXIT_BY_STATUS = (e: ApiClientError): number => {
  if (e.code === "unreachable") return 4;
  if (e.status === 404) return 3;
  if (e.status === 400) return 2;
  if (e.status >= 500) return 5;
  return 1;
};

export async function runVmCommand(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const dash = argv.indexOf("--");
  const optionArgs = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : null;
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: optionArgs, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    throw new UsageError(`nodevisor vm: ${(e as Error).message.replace(/\. To specify.*$/s, "")}. See \`nodevisor vm --help\`.`);
  }
  const [sub, name, ...extra] = positionals;
  if (values.help || sub === undefined || sub === "help") {
    out(VM_HELP);
    return sub === undefined && !values.help ? 2 : 0;
  }
  const takesTarget = sub === "snapshot" || sub === "migrate";
  if (extra.length > (takesTarget ? 1 : 0)) throw new UsageError(`nodevisor vm ${sub}: unexpected argument "${extra[takesTarget ? 1 : 0]}".`);
  if (values.restore !== undefined && sub !== "create") throw new UsageError(`nodevisor vm ${sub}: --restore applies to create only.`);
  const client = clientFrom(values);
  const json = values.json === true;
  const needName = (): string => {
    if (name === undefined) throw new UsageError(`nodevisor vm ${sub}: give the VM's name, e.g. \`nodevisor vm ${sub} web1\`.`);
    return name;
  };
  const print = (data: unknown, human: () => string): void => out(json ? `${JSON.stringify(data, null, 2)}\n` : human());
  try {
    switch (sub) {
      case "list": {
        const { vms } = await client.call<{ vms: VmView[] }>("GET", "/v1/vms");
        print(vms, () => table(["NAME", "STATE", "VCPUS", "MEMORY", "CPU CAP", "SHARES", "PID", "RESTARTS"], vms.map((v) => [v.name, v.state, v.spec.vcpus, `${v.spec.memoryMiB} MiB`, v.effectiveCpuCap === null ? "-" : `${v.effectiveCpuCap}%`, v.spec.cpuShares, v.pid ?? "-", v.restarts])));
        return 0;
      }
      case "create": {
        const body = { name: needName(), ...specFrom(values), ...(values.restore !== undefined ? { restore: resolve(values.restore as string) } : {}) };
        const v = await client.call<VmView>("POST", "/v1/vms", body);
        print(v, () => `VM ${v.name} created (${v.spec.vcpus} vCPU, ${v.spec.memoryMiB} MiB); start it with \`nodevisor vm start ${v.name}\`.\n`);
        return 0;
      }
      case "edit": {
        const patch = specFrom(values);
        if (Object.keys(patch).length === 0) throw new UsageError("nodevisor vm edit: give at least one spec option to change, e.g. --cpu-cap 50.");
        const v = await client.call<VmView>("PATCH", `/v1/vms/${enc(needName())}`, patch);
        print(v, () => `VM ${v.name} changed.\n`);
        return 0;
      }
      case "show": {
        const v = await client.call<VmView>("GET", `/v1/vms/${enc(needName())}`);
        print(v, () => showVm(v));
        return 0;
      }
      case "start":
      case "stop":
      case "kill":
      case "reboot":
      case "pause":
      case "resume": {
        const body: { action: string; timeoutSec?: number } = { action: sub };
        if (values.timeout !== undefined) {
          if (sub !== "stop") throw new UsageError("nodevisor vm: --timeout applies to stop and receive only.");
          body.timeoutSec = Number(values.timeout);
          if (!(body.timeoutSec >= 0)) throw new UsageError(`nodevisor vm stop: --timeout needs seconds, not "${values.timeout}".`);
        }
        const v = await client.call<VmView>("POST", `/v1/vms/${enc(needName())}/actions`, body);
        print(v, () => `VM ${v.name} is ${v.state}.\n`);
        return 0;
      }
      case "delete": {
        await client.call("DELETE", `/v1/vms/${enc(needName())}`);
        print({ deleted: name }, () => `VM ${name} deleted.\n`);
        return 0;
      }
      case "stats": {
        const s = await client.call<Record<string, any>>("GET", `/v1/vms/${enc(needName())}/stats`);
        print(s, () => showStats(s));
        return 0;
      }
      case "logs": {
        const q = new URLSearchParams({ kind: values.vmm ? "vmm" : "console" });
        if (values.bytes !== undefined) q.set("bytes", String(values.bytes));
        out(await client.call<string>("GET", `/v1/vms/${enc(needName())}/logs?${q}`));
        return 0;
      }
      case "exec": {
        if (command === null || command.length === 0) throw new UsageError("nodevisor vm exec: put the command after --, e.g. `nodevisor vm exec web1 -- uname -a`.");
        const r = await client.call<{ exitStatus: number; stdout: string; stderr: string }>("POST", `/v1/vms/${enc(needName())}/exec`, { command });
        if (json) out(`${JSON.stringify(r, null, 2)}\n`);
        else {
          out(r.stdout);
          process.stderr.write(r.stderr);
        }
        return r.exitStatus;
      }
      case "console":
        return await attachConsole(client, needName());
      default:
        if (STATE_COMMANDS.has(sub)) return await runStateCommand({ sub, name: needName(), target: extra[0], values, client, json, out, spec: () => specFrom(values) });
        throw new UsageError(`nodevisor vm: unknown command "${sub}". See \`nodevisor vm --help\`.`);
    }
  } catch (e) {
    if (!(e instanceof ApiClientError)) throw e;
    process.stderr.write(`nodevisor vm ${sub}: ${e.message}\n`);
    return EXIT_BY_STATUS(e);
  }
}

const enc = encodeURIComponent;

function clientFrom(v: Values): ApiClient {
  let token = v.token as string | undefined;
  if (v["token-file"] !== undefined) {
    try {
      token = readFileSync(v["token-file"] as string, "utf8").trim();
    } catch (e) {
      throw new UsageError(`nodevisor vm: cannot read the token file "${v["token-file"]}": ${(e as Error).message}.`);
    }
  }
  if (v.host !== undefined) {
    if (!/^https?:\/\//.test(v.host as string)) throw new UsageError(`nodevisor vm: --host takes a URL such as https://host:8443, not "${v.host}".`);
    if (token === undefined) throw new UsageError("nodevisor vm: a remote daemon needs --token or --token-file.");
    return new ApiClient({ url: v.host as string, token });
  }
  return new ApiClient({ socketPath: (v.socket as string | undefined) ?? defaultHostPaths().apiSocket });
}

function specFrom(v: Values): Partial<VmSpec> {
  const spec: Partial<VmSpec> = {};
  if (v.cpus !== undefined) spec.vcpus = Number(v.cpus);
  if (v.memory !== undefined) spec.memoryMiB = Math.round(parseMemorySize(v.memory as string) / 2 ** 20);
  if (v.image !== undefined) spec.image = v.image as string;
  if (v.kernel !== undefined) spec.kernel = v.kernel as string;
  if (v.initrd !== undefined) spec.initrd = v.initrd as string;
  if (v.append !== undefined) spec.cmdline = v.append as string;
  if (v.disk !== undefined) spec.disks = (v.disk as string[]).map(diskFrom);
  if (v.net !== undefined) spec.nics = nicsFrom(v.net as string[]);
  if (v["cpu-cap"] !== undefined) {
    spec.cpuCap = v["cpu-cap"] === "none" ? null : Number(v["cpu-cap"]);
    if (spec.cpuCap !== null) checkCpuCap(spec.cpuCap);
  }
  if (v["cpu-shares"] !== undefined) spec.cpuShares = Number(v["cpu-shares"]);
  if (v["memory-target"] !== undefined) {
    spec.memoryTargetMiB = v["memory-target"] === "none" ? null : Math.round(parseMemorySize(v["memory-target"] as string) / 2 ** 20);
  }
  if (v["memory-policy"] !== undefined) {
    if (v["memory-policy"] !== "on" && v["memory-policy"] !== "off") throw new UsageError(`nodevisor vm: --memory-policy takes on or off, not "${String(v["memory-policy"])}".`);
    spec.memoryPolicy = v["memory-policy"] === "on";
  }
  if (v.restart !== undefined) spec.restartPolicy = v.restart as VmSpec["restartPolicy"];
  if (v.autostart) spec.autostart = true;
  if (v["no-autostart"]) spec.autostart = false;
  return spec;
}

/** `--net` values as `nodevisor run` takes them; "none" alone means no NICs. */
function nicsFrom(texts: string[]): NicSpec[] {
  try {
    return texts.map(parseNetSpec).filter((c): c is NetConfig => c !== null).map(nicFromNetConfig);
  } catch (e) {
    if (e instanceof NetSpecError) throw new UsageError(`nodevisor vm: ${e.message}`);
    throw e;
  }
}

function diskFrom(text: string): DiskSpec {
  const d = parseDiskSpec(text);
  const spec: DiskSpec = { path: d.path };
  if (d.readOnly) spec.readOnly = true;
  if (d.format) spec.format = d.format;
  if (d.limits?.bandwidth) spec.bps = d.limits.bandwidth.size;
  if (d.limits?.bandwidth?.oneTimeBurst) spec.burst = d.limits.bandwidth.oneTimeBurst;
  if (d.limits?.ops) spec.iops = d.limits.ops.size;
  return spec;
}

export function table(header: string[], rows: unknown[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

function showVm(v: VmView): string {
  const s = v.spec;
  const boot = s.kernel !== undefined ? `kernel ${s.kernel}${s.initrd ? `, initrd ${s.initrd}` : ""}` : `image ${s.image ?? "default"}`;
  const lines = [
    ["name", v.name],
    ["state", `${v.state} (wanted: ${v.desired})`],
    ["pid", v.pid ?? "-"],
    ["vcpus", s.vcpus],
    ["memory", `${s.memoryMiB} MiB${s.memoryTargetMiB != null ? `, running at ${s.memoryTargetMiB} MiB` : ""}${s.memoryPolicy === false ? ", memory policy off" : ""}`],
    ["boot", boot + (s.cmdline ? `, cmdline "${s.cmdline}"` : "")],
    ["cpu", `cap ${s.cpuCap === null ? "none" : `${s.cpuCap}%`} (applied: ${v.effectiveCpuCap === null ? "none" : `${v.effectiveCpuCap}%`}), shares ${s.cpuShares}`],
    ["restart", `${s.restartPolicy}${s.autostart ? ", autostart" : ""}; restarted ${v.restarts} times`],
    ...s.disks.map((d, i) => [`disk vd${String.fromCharCode(97 + i)}`, `${d.path}${d.readOnly ? " (read-only)" : ""}${d.bps ? ` bps=${d.bps}` : ""}${d.iops ? ` iops=${d.iops}` : ""}`]),
    ...(s.nics ?? []).map((n, i) => [`nic eth${i}`, describeNic(n)]),
    ...(s.restore !== undefined ? [["restore", `${s.restore} (its next start resumes this snapshot)`]] : []),
    ...(v.restoredFrom !== null ? [["restored", `from ${v.restoredFrom}`]] : []),
    ...(v.migration !== null ? [["migration", describeMigration(v.migration)]] : []),
    ...(v.migratedTo !== null ? [["moved", `to ${v.migratedTo} (it runs there; it does not start here)`]] : []),
    ["last exit", v.lastExit ?? "-"],
  ];
  return lines.map(([k, val]) => `${String(k).padEnd(10)} ${val}`).join("\n") + "\n";
}

function describeMigration(m: NonNullable<VmView["migration"]>): string {
  const where = m.direction === "out" ? `to ${m.uri}` : `from elsewhere, on ${m.uri}`;
  const figures = [
    m.ram ? `${formatSize(m.ram.bytesSent ?? (m.ram.pagesSent ?? 0) * 4096)} sent in ${m.ram.rounds} rounds, ${m.ram.remainingPages ?? 0} pages left` : "",
    m.disk ? `disks: ${formatSize(m.disk.bytesSent)} sent, ${formatSize(m.disk.dirtyBytes)} to go` : "",
    m.downtimeMs !== undefined ? `the guest stopped for ${m.downtimeMs} ms` : "",
    m.error ?? "",
  ].filter((f) => f !== "");
  return `${where}: ${m.status}${figures.length > 0 ? ` (${figures.join("; ")})` : ""}`;
}

function showStats(s: Record<string, any>): string {
  const lines: Array<[string, string]> = [
    ["instructions", String(s.instructionsRetired)],
    ["MIPS", String(s.mips)],
    ["CPU", `${((s.cpuMs ?? 0) / 1000).toFixed(1)} s (${((s.cpuCores ?? 0) * 100).toFixed(0)}% of a core now)`],
    ["steal", `${((s.stealMs ?? 0) / 1000).toFixed(1)} s (by the cap: ${((s.throttledMs ?? 0) / 1000).toFixed(1)} s)`],
    ["cap", s.cpuCap === null || s.cpuCap === undefined ? "none" : `${s.cpuCap}%`],
    ["WFI idle", `${(s.idleMs / 1000).toFixed(1)} s`],
    ["memory", `${formatSize(s.memoryBytes)}, touched ${s.memoryTouchedBytes == null ? "unknown" : formatSize(s.memoryTouchedBytes)}`],
    ["restarts", String(s.restarts ?? 0)],
  ];
  const b = s.balloon;
  if (b) {
    lines.push(["balloon", `guest ${formatSize(b.actual)} (target ${formatSize(b.target)}); ${b.pagesReported} pages reported, ${b.pagesReturned} returned to the host (${b.reclaim}${b.reclaimProblem ? `: ${b.reclaimProblem}` : ""})`]);
    const g = b.guestStats?.values ?? {};
    if (g.available !== undefined) lines.push(["guest memory", `available ${formatSize(g.available)}, free ${formatSize(g.free ?? 0)}, caches ${formatSize(g.caches ?? 0)}, major faults ${g.majorFaults ?? 0}`]);
  }
  for (const [cause, n] of Object.entries(s.trapsByCause ?? {})) lines.push([`traps ${cause}`, String(n)]);
  for (const d of s.devices ?? []) {
    lines.push([`${d.name} (${d.kind})`, `${d.requests} requests, ${d.bytesRead} B read, ${d.bytesWritten} B written, ${d.errors} errors`]);
    if (d.queueDepth) lines.push([`${d.name} queue`, `${d.queueDepth.current} in flight (most at once: ${d.queueDepth.max})`]);
    if (d.latency) lines.push([`${d.name} latency`, describeLatency(d.latency)]);
  }
  const w = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n") + "\n";
}

/** Mean and bucket bounds of the median and 99th percentile, e.g. "mean 0.41 ms, p50 ≤ 0.25 ms, p99 ≤ 5 ms (812 requests)". */
export function describeLatency(l: LatencySnapshot): string {
  if (l.count === 0) return "no requests yet";
  const ms = (s: number): string => (s === Infinity ? `> ${l.boundsSeconds.at(-1)! * 1000} ms` : `≤ ${+(s * 1000).toPrecision(3)} ms`);
  return `mean ${((l.sumSeconds / l.count) * 1000).toFixed(2)} ms, p50 ${ms(latencyQuantileBound(l, 0.5)!)}, p99 ${ms(latencyQuantileBound(l, 0.99)!)} (${l.count} requests)`;
}

async function attachConsole(client: ApiClient, name: string): Promise<number> {
  // Fails with the daemon's sentence if the VM does not exist or is not running.
  await client.call("GET", `/v1/vms/${enc(name)}`);
  const ws = client.websocket(`/v1/vms/${enc(name)}/console?write=1`);
  return new Promise((resolve) => {
    let detach = (): void => {};
    let status = 0;
    const sendSize = (rows: number, cols: number): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "resize", rows, cols }));
    };
    ws.on("open", () => {
      process.stderr.write(`Connected to the console of VM ${name}; Ctrl-A X detaches.\r\n`);
      detach = attachTerminal({ write: (d) => ws.send(d), onQuit: () => ws.close(), onResize: sendSize }).detach;
      if (process.stdout.isTTY) sendSize(process.stdout.rows, process.stdout.columns);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        process.stdout.write(data as Buffer);
        return;
      }
      const m = JSON.parse(String(data)) as { type: string; message?: string; writer?: boolean };
      if (m.type === "hello" && !m.writer) process.stderr.write("Someone else is typing on this console; you can watch only.\r\n");
      if (m.type === "error" || m.type === "closed") {
        process.stderr.write(`\r\n${m.message}\r\n`);
        if (m.type === "error") status = 1;
      }
    });
    ws.on("error", (e) => {
      process.stderr.write(`nodevisor vm console: ${e.message}\n`);
      status = 4;
    });
    ws.on("close", () => {
      detach();
      resolve(status);
    });
  });
}
