// `nodevisor run`: boots a VM in this process. Without a command the terminal is attached to
// the serial console; with `-- CMD...` the command runs in the guest and its output and exit
// status become ours.

import { parseBalloonSpec } from "../vm/balloon_config.js";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { asImageError, UsageError } from "./errors.js";
import { parseSize } from "../storage/sizes.js";
import { attachTerminal } from "./terminal.js";
import { progressRenderer } from "./progress.js";
import { checkCpuCap, checkCpus, ConfigError, DEFAULT_VM_NAME, defaultCpuTier, parseCpuTier, parseMemorySize, validateConfig, type DiskConfig, type VmConfig } from "../vm/config.js";
import { kernelCommandLine, Vm } from "../vm/vm.js";
import { ControlServer } from "../vm/control_server.js";
import { resolveImage, type GuestImage } from "../image/guest_image.js";
import { ensureDefaultImage } from "../image/index.js";
import { PACKAGE_VERSION } from "./version.js";
import { DISK_FORMATS } from "../storage/open.js";
import { parseTerminalSpec, terminalOfStdout, writePidFile } from "./run_daemon_options.js";
import { collectGarbageNow } from "../vm/collect_boot_garbage.js";
import { parseNetSpec, type NetConfig } from "../net/spec.js";
import { readSnapshotInfo, SnapshotError } from "../vm/snapshot/snapshot_file.js";
import { checkSnapshotHeader, type VmSnapshotHeader, type VmSnapshotInfo } from "../vm/snapshot/vm_snapshot.js";
import { restoredDisks } from "../vm/snapshot/disk_snapshot.js";
import { parseMigrationUri, type MigrationUri } from "../vm/migration/stream.js";
import { IncomingMigration } from "../vm/migration/incoming.js";
import { writeRamDigestIfAsked } from "../vm/ram_digest.js";
import { RestoreWait, type RestoreRequestHandler } from "../vm/restore_wait.js";
import { preloadReclaim, tuneHostAllocator } from "../vm/host_memory.js";

export const RUN_HELP = `Usage: nodevisor run [options] [-- COMMAND [ARGS...]]

Boots a RISC-V VM. Without a command, the terminal is attached to the serial
console (Ctrl-A X quits, Ctrl-A Ctrl-A sends Ctrl-A). With a command, it runs in
a fresh VM; its output is printed and its exit status becomes nodevisor's.

Options:
  -m, --memory SIZE        guest RAM, e.g. 512M or 2G (default 512M)
  -c, --cpus N             virtual CPUs, 1-8 (default 1); 2 or more run on a host thread each
      --image NAME|DIR     guest image (default: "default", built on first use)
      --kernel FILE        kernel Image or ELF (instead of the image's)
      --initrd FILE        initramfs (instead of the image's)
      --append "ARGS"      extra kernel command-line arguments
      --disk FILE[,readonly][,format=${DISK_FORMATS.join("|")}][,bps=RATE][,iops=N][,burst=BYTES]
                           attach a disk (repeatable; /dev/vda, /dev/vdb, ...);
                           bps/iops cap its throughput per second (token buckets)
      --net SPEC           add a virtual NIC (repeatable: eth0, eth1, ...):
                             user[,hostfwd=tcp:HOSTPORT-:GUESTPORT]  NAT through passt
                             switch=NAME[,vlan=N|,trunk=N,M,...]     a virtual switch
                             tap=IFNAME                              bridged (TAP)
                             none                                    no NIC (the default)
                           options in every mode: mac=, link=down, rx-bps=, tx-bps=,
                           rx-pps=, tx-pps=, allow=/deny=DIR:PROTO[:CIDR][:PORTS],
                           policy-in=, policy-out=, spoof=on, offload=off
                           (see docs/networking.md)
      --firmware FILE      run an M-mode firmware. With --kernel or --image it
                           boots that kernel (e.g. OpenSBI fw_dynamic.bin); alone
                           it runs bare-metal from the start of RAM. The word
                           "opensbi" means the image's Debian OpenSBI.
      --console-log FILE   write everything the serial console prints to FILE
      --control-socket PATH
                           serve the JSON-lines control socket (docs/control-socket.md)
      --control-wait       start the guest only once a client has connected to the
                           --control-socket (QEMU's server=on,wait=on), so a
                           manager sees every event, a quick poweroff included
      --cpu-cap PCT        hold each vCPU to PCT per cent of a host core (1-100)
      --cpu-tier interp|jit
                           how guest code runs: the interpreter, or the JIT that
                           compiles hot blocks to WebAssembly (default: jit; with
                           several vCPUs each runs on a host thread of its
                           own, compiled there; see docs/jit.md)
      --balloon [reporting=on|off][,deflate-on-oom=on|off][,stats=SECONDS][,floor=SIZE]
                           the memory balloon (always present): free page
                           reporting (default on), DEFLATE_ON_OOM (default off),
                           guest statistics every SECONDS (default 0: never),
                           the smallest size a target may leave the guest
                           (default 64M); see docs/memory.md
      --name NAME          the VM's name (in logs and the daemon's inventory; on a
                           switch its DNS name, and the seed of its NICs' MACs)
      --pid-file FILE      write this process's id to FILE; removed on exit
      --console stdio|none where the serial console goes without a command:
                           stdio (default) is this terminal; none reads no
                           input (the control socket's console-write types)
      --restore FILE       start from a snapshot (control socket snapshot-save)
                           instead of booting: the guest runs on as it was;
                           the machine's options come from the snapshot, but
                           --net may reconnect each of its NICs elsewhere
      --restore-wait       start with no VM and wait for snapshot-load on the
                           --control-socket: the restore then skips Node's
                           start (a pool of waiting processes, docs/snapshots.md)
      --incoming tcp:HOST:PORT|unix:PATH
                           wait for a live migration (control socket migrate)
                           and run the VM it brings; the machine's options
                           come from the source (docs/migration.md); --disk,
                           once for each of its disks, says where each goes:
                           a new file for a block migration's copy, else the
                           shared disk's path here
      --terminal TERM[,ROWSxCOLS]
                           the console terminal's type and size told to the
                           guest (default: this terminal's, when it is one)
  -h, --help               show this help
`;

const OPTIONS = {
  memory: { type: "string", short: "m" },
  cpus: { type: "string", short: "c" },
  image: { type: "string" },
  kernel: { type: "string" },
  initrd: { type: "string" },
  append: { type: "string" },
  disk: { type: "string", multiple: true },
  net: { type: "string", multiple: true },
  firmware: { type: "string" },
  "console-log": { type: "string" },
  "control-socket": { type: "string" },
  "control-wait": { type: "boolean" },
  "cpu-cap": { type: "string" },
  "cpu-tier": { type: "string" },
  balloon: { type: "string" },
  name: { type: "string" },
  "pid-file": { type: "string" },
  console: { type: "string" },
  terminal: { type: "string" },
  restore: { type: "string" },
  "restore-wait": { type: "boolean" },
  incoming: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Options that shape the machine: a restored VM takes them from its snapshot. */
const MACHINE_OPTIONS = ["memory", "cpus", "image", "kernel", "initrd", "append", "disk", "net", "firmware", "balloon"] as const;

/** How the process runs a VM, whatever VM it is. */
interface RunProcess {
  pidFile: string | null;
  /** False when the serial console takes no input from stdin (--console none). */
  consoleInput: boolean;
  /** --control-wait: the guest starts once a client has connected to the control socket. */
  controlWait?: boolean;
}

/** How a VM whose machine comes from elsewhere (a migration source, a snapshot loaded later) is run here. */
export type RunSettings = Pick<VmConfig, "cpuCap" | "consoleLog" | "controlSocket">;

/** `run` with the machine given by the options. */
export interface BootRequest extends RunProcess {
  start: "boot";
  config: VmConfig;
}

/** --restore: the machine and the guest come from the snapshot. */
export interface RestoreRequest extends RunProcess {
  start: "restore";
  config: VmConfig;
  restore: { path: string; info: VmSnapshotInfo };
}

/** --incoming: where to wait for a live migration; the machine comes from the source. */
export interface IncomingRequest extends RunProcess {
  start: "incoming";
  settings: RunSettings;
  incoming: { uri: MigrationUri; name: string | null; diskPaths: string[] };
}

/** --restore-wait: no VM until snapshot-load on the control socket; `prepare` checks the file and builds the request, as --restore would. */
export interface RestoreWaitRequest extends RunProcess {
  start: "restore-wait";
  controlSocket: string;
  restoreWait: RestoreRequestHandler<RestoreRequest>;
}

export type VmRunRequest = BootRequest | RestoreRequest | IncomingRequest | RestoreWaitRequest;
export type RunRequest = VmRunRequest | { start: "help" };

/** Splits argv at the first `--` and parses the options; throws UsageError / ConfigError. */
export async function parseRunArgs(argv: string[], opts: { buildImage?: boolean } = {}): Promise<RunRequest> {
  const dash = argv.indexOf("--");
  const optionArgs = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : null;
  let values: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: joinNegativeValues(optionArgs), options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    throw new UsageError(`nodevisor run: ${(e as Error).message.replace(/\. To specify.*$/s, "")}. See \`nodevisor run --help\`.`);
  }
  if (values.help) return { start: "help" };
  if (positionals.length > 0) {
    throw new UsageError(`nodevisor run: unexpected argument "${positionals[0]}". Put the guest command after --, e.g. \`nodevisor run -- uname -a\`.`);
  }
  if (command !== null && command.length === 0) throw new UsageError("nodevisor run: nothing follows --. Give the command to run, e.g. `-- uname -a`.");

  const starts = (["restore", "restore-wait", "incoming"] as const).filter((o) => values[o] !== undefined);
  if (starts.length > 1) throw new UsageError(`nodevisor run: give one of --restore, --restore-wait and --incoming, not --${starts.join(" and --")}.`);
  if (values["control-wait"] && values["control-socket"] === undefined) throw new UsageError("nodevisor run: --control-wait waits for a client of the control socket; give --control-socket PATH too.");
  if (values["control-wait"] && (values["restore-wait"] || values.incoming !== undefined)) {
    throw new UsageError(`nodevisor run: --${values.incoming !== undefined ? "incoming" : "restore-wait"} already waits before the guest runs; leave --control-wait out.`);
  }
  if (values["restore-wait"]) return restoreWaitRequest(values, command);
  if (values.restore !== undefined) return restoreRequest(values, command);
  if (values.incoming !== undefined) return incomingRequest(values, command);
  const memoryBytes = parseMemorySize((values.memory as string | undefined) ?? "512M");
  const cpus = Number((values.cpus as string | undefined) ?? "1");
  checkCpus(cpus);
  const disks = ((values.disk as string[] | undefined) ?? []).map(parseDiskSpec);
  const nets = ((values.net as string[] | undefined) ?? []).map(parseNetSpec).filter((n): n is NetConfig => n !== null);
  const name = (values.name as string | undefined) ?? null;

  let kernel = (values.kernel as string | undefined) ?? null;
  let initrd = (values.initrd as string | undefined) ?? null;
  let firmware = (values.firmware as string | undefined) ?? null;
  const imageName = values.image as string | undefined;
  // The image provides whatever the user did not give, unless a lone --firmware asks for bare metal.
  const bareMetal = firmware !== null && firmware !== "opensbi" && kernel === null && imageName === undefined;
  if (!bareMetal && (kernel === null || firmware === "opensbi")) {
    const image = await findImage(imageName, opts.buildImage ?? true);
    kernel ??= image.kernel;
    if (initrd === null && kernel === image.kernel) initrd = image.initrd;
    if (firmware === "opensbi") {
      if (!image.firmware) throw new ConfigError(`The image "${image.name}" has no OpenSBI firmware; pass --firmware FILE.`);
      firmware = image.firmware;
    }
  }
  const consoleMode = (values.console as string | undefined) ?? "stdio";
  if (consoleMode !== "stdio" && consoleMode !== "none") throw new UsageError(`nodevisor run: --console must be stdio or none, not "${consoleMode}".`);
  const cpuCap = values["cpu-cap"] === undefined ? null : Number(values["cpu-cap"]);
  if (cpuCap !== null) checkCpuCap(cpuCap);
  const terminalText = values.terminal as string | undefined;
  const terminal = command !== null ? null : terminalText !== undefined ? parseTerminalSpec(terminalText) : terminalOfStdout();
  const config: VmConfig = {
    name: name ?? DEFAULT_VM_NAME,
    cpuCap,
    cpuTier: values["cpu-tier"] === undefined ? defaultCpuTier() : parseCpuTier(values["cpu-tier"] as string),
    terminal,
    memoryBytes,
    cpus,
    kernel: kernel && resolve(kernel),
    initrd: initrd && resolve(initrd),
    firmware: firmware && resolve(firmware),
    append: (values.append as string | undefined) ?? "",
    disks,
    nets,
    consoleLog: (values["console-log"] as string | undefined) ?? null,
    controlSocket: (values["control-socket"] as string | undefined) ?? null,
    command,
    ...(values.balloon !== undefined ? { balloon: parseBalloonSpec(values.balloon as string) } : {}),
  };
  validateConfig(config);
  kernelCommandLine(config); // refuses a command line the kernel would truncate
  const pidFile = values["pid-file"] === undefined ? null : resolve(values["pid-file"] as string);
  return { start: "boot", config, pidFile, consoleInput: consoleMode === "stdio", controlWait: values["control-wait"] === true };
}

/** `run --restore FILE`: the machine comes from the snapshot; only how it is run comes from the options. */
async function restoreRequest(values: Record<string, string | string[] | boolean | undefined>, command: string[] | null): Promise<RestoreRequest> {
  // --net may say where each NIC of the snapshot connects now (a clone's own forwarded ports); the rest is the snapshot's.
  const clash = MACHINE_OPTIONS.find((o) => o !== "net" && values[o] !== undefined);
  if (clash !== undefined) throw new UsageError(`nodevisor run: --restore takes the VM's --${clash} from the snapshot; leave --${clash} out.`);
  if (command !== null) throw new UsageError("nodevisor run: --restore resumes the snapshot's guest as it was; it takes no command after --.");
  const path = resolve(values.restore as string);
  let info: VmSnapshotInfo;
  try {
    info = await readSnapshotInfo<VmSnapshotHeader>(path);
    checkSnapshotHeader(path, info.header);
  } catch (e) {
    if (e instanceof SnapshotError) throw new ConfigError(e.message);
    throw e;
  }
  const cpuCap = values["cpu-cap"] === undefined ? null : Number(values["cpu-cap"]);
  if (cpuCap !== null) checkCpuCap(cpuCap);
  const consoleMode = (values.console as string | undefined) ?? "stdio";
  if (consoleMode !== "stdio" && consoleMode !== "none") throw new UsageError(`nodevisor run: --console must be stdio or none, not "${consoleMode}".`);
  const name = (values.name as string | undefined) ?? info.header.config.name;
  const config: VmConfig = {
    ...info.header.config,
    name,
    cpuCap,
    cpuTier: values["cpu-tier"] === undefined ? defaultCpuTier() : parseCpuTier(values["cpu-tier"] as string),
    consoleLog: (values["console-log"] as string | undefined) ?? null,
    controlSocket: (values["control-socket"] as string | undefined) ?? null,
  };
  config.nets = restoredNets(info.header.config.nets ?? [], (values.net as string[] | undefined) ?? null, name !== info.header.config.name);
  validateConfig(config);
  // Each restored VM writes to overlays of its own on the snapshot's frozen disks.
  config.disks = await restoredDisks(info.header.disks, info.header.config.disks, (d) => `${path}.${name}.${d.device}.qcow2`);
  const pidFile = values["pid-file"] === undefined ? null : resolve(values["pid-file"] as string);
  return { start: "restore", config, pidFile, consoleInput: consoleMode === "stdio", controlWait: values["control-wait"] === true, restore: { path, info } };
}

/** `run --restore-wait`: listen on the control socket and restore whatever snapshot-load names, as --restore would. */
function restoreWaitRequest(values: Record<string, string | string[] | boolean | undefined>, command: string[] | null): RestoreWaitRequest {
  if (command !== null) throw new UsageError("nodevisor run: --restore-wait resumes a snapshot's guest as it was; it takes no command after --.");
  if (values["control-socket"] === undefined) throw new UsageError("nodevisor run: --restore-wait needs --control-socket PATH, where snapshot-load arrives.");
  const clash = MACHINE_OPTIONS.find((o) => o !== "net" && values[o] !== undefined);
  if (clash !== undefined) throw new UsageError(`nodevisor run: --restore-wait takes the VM's --${clash} from the snapshot; leave --${clash} out.`);
  const pidFile = values["pid-file"] === undefined ? null : resolve(values["pid-file"] as string);
  return {
    start: "restore-wait",
    controlSocket: values["control-socket"] as string,
    pidFile,
    consoleInput: false,
    restoreWait: { prepare: (path) => restoreRequest({ ...values, restore: path }, null) },
  };
}

/**
 * The NICs of a restored VM: the snapshot's, or those `--net` gives instead (one for each of the
 * snapshot's). A clone (another name) gets MACs of its own, derived from its name, unless --net
 * sets one; the same VM keeps the MACs its guest knows.
 */
export function restoredNets(saved: NetConfig[], specs: string[] | null, clone: boolean): NetConfig[] {
  if (specs === null) return clone ? saved.map((n) => ({ ...n, mac: null })) : saved;
  const given = specs.map(parseNetSpec).filter((n): n is NetConfig => n !== null);
  if (given.length !== saved.length) {
    throw new UsageError(`nodevisor run: the snapshot's VM has ${saved.length} NIC(s) and --net gives ${given.length}; give one --net for each, in order, or none to keep the snapshot's.`);
  }
  return given.map((n, i) => ({ ...n, mac: n.mac ?? (clone ? null : saved[i]!.mac) }));
}

/** `run --incoming URI`: the machine comes from the migration source; only how it is run comes from the options. */
function incomingRequest(values: Record<string, string | string[] | boolean | undefined>, command: string[] | null): IncomingRequest {
  // --disk says where each of the source's disks is here: a new file for a block migration's copy, or shared storage at another path.
  const clash = MACHINE_OPTIONS.find((o) => o !== "disk" && values[o] !== undefined);
  if (clash !== undefined) throw new UsageError(`nodevisor run: --incoming takes the VM's --${clash} from the migration source; leave --${clash} out.`);
  const diskPaths = ((values.disk as string[] | undefined) ?? []).map((spec) => resolve(parseDiskSpec(spec).path));
  if (command !== null) throw new UsageError("nodevisor run: --incoming runs the migrated guest as it was; it takes no command after --.");
  const uri = parseMigrationUri(values.incoming as string);
  const cpuCap = values["cpu-cap"] === undefined ? null : Number(values["cpu-cap"]);
  if (cpuCap !== null) checkCpuCap(cpuCap);
  const consoleMode = (values.console as string | undefined) ?? "stdio";
  if (consoleMode !== "stdio" && consoleMode !== "none") throw new UsageError(`nodevisor run: --console must be stdio or none, not "${consoleMode}".`);
  const settings: RunSettings = {
    cpuCap,
    consoleLog: (values["console-log"] as string | undefined) ?? null,
    controlSocket: (values["control-socket"] as string | undefined) ?? null,
  };
  const pidFile = values["pid-file"] === undefined ? null : resolve(values["pid-file"] as string);
  return { start: "incoming", settings, pidFile, consoleInput: consoleMode === "stdio", incoming: { uri, name: (values.name as string | undefined) ?? null, diskPaths } };
}

/**
 * Joins `--cpus -1` into `--cpus=-1`, so that a negative number reaches our own checks (and
 * their one-sentence errors) instead of util.parseArgs' "argument is ambiguous" text.
 */
export function joinNegativeValues(args: string[]): string[] {
  const takesValue = new Set<string>();
  for (const [name, o] of Object.entries(OPTIONS)) {
    if (o.type !== "string") continue;
    takesValue.add(`--${name}`);
    if ("short" in o) takesValue.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (takesValue.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a.startsWith("--") ? a : `--${shortToLong(a)}`}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function shortToLong(flag: string): string {
  for (const [name, o] of Object.entries(OPTIONS)) if ("short" in o && `-${o.short}` === flag) return name;
  return flag;
}

export function parseDiskSpec(spec: string): DiskConfig {
  const [path, ...flags] = spec.split(",");
  if (!path) throw new UsageError(`nodevisor run: --disk "${spec}" names no file. Use --disk FILE[,readonly].`);
  const disk: DiskConfig = { path: resolve(path), readOnly: false };
  const amount = (f: string, value: string): number => {
    try {
      const n = parseSize(value);
      if (n > 0) return n;
    } catch {
      // reported below
    }
    throw new UsageError(`nodevisor run: "${f}" in --disk ${spec} needs a positive amount, e.g. bps=10M or iops=500.`);
  };
  // One-second buckets: bps/iops are the sustained rates, burst= a one-time allowance on top.
  for (const f of flags) {
    const [key, value] = f.split("=", 2) as [string, string | undefined];
    if (f === "readonly" || f === "ro") disk.readOnly = true;
    else if (key === "format" && value && (DISK_FORMATS as readonly string[]).includes(value)) disk.format = value as DiskConfig["format"];
    else if (key === "bps" && value !== undefined) {
      disk.limits = { ...disk.limits, bandwidth: { ...disk.limits?.bandwidth, size: amount(f, value), refillTimeMs: 1000 } };
    } else if (key === "iops" && value !== undefined) {
      disk.limits = { ...disk.limits, ops: { size: amount(f, value), refillTimeMs: 1000 } };
    } else if (key === "burst" && value !== undefined) {
      const bw = disk.limits?.bandwidth;
      if (!bw) throw new UsageError(`nodevisor run: burst= in --disk ${spec} needs a bps= limit before it.`);
      disk.limits = { ...disk.limits, bandwidth: { ...bw, oneTimeBurst: amount(f, value) } };
    } else {
      throw new UsageError(
        `nodevisor run: unknown disk flag "${f}" in --disk ${spec}. Known: readonly, format=${DISK_FORMATS.join("|")}, bps=RATE, iops=N, burst=BYTES.`,
      );
    }
  }
  return disk;
}

/** How long a signalled VM may take to stop cleanly before the process exits anyway. */
export const FORCED_EXIT_MS = 5000;

function forceExit(signal: NodeJS.Signals, why: string): never {
  process.stderr.write(`nodevisor: stopping at once on ${signal}: ${why}.\n`);
  process.exit(signal === "SIGINT" ? 130 : 143);
}

async function findImage(name: string | undefined, build: boolean): Promise<GuestImage> {
  if (name !== undefined && name !== "default") return asImageError(() => resolveImage(name));
  if (!build) return asImageError(() => resolveImage("default"));
  const progress = progressRenderer();
  try {
    return await asImageError(() => ensureDefaultImage({ onProgress: progress.update, log: (l) => process.stderr.write(`${l}\n`) }));
  } finally {
    progress.stop();
  }
}

/** Runs the VM to completion; returns the process exit status. */
export async function runVm(req: VmRunRequest): Promise<number> {
  // On unless NODEVISOR_MALLOC_TUNING=0; host_memory.ts says what it buys.
  if (process.env.NODEVISOR_MALLOC_TUNING !== "0") tuneHostAllocator();
  let server: ControlServer | null = null;
  let waited: Awaited<RestoreWait<RestoreRequest>["requested"]> | null = null;
  let start: BootRequest | RestoreRequest | IncomingRequest;
  if (req.start === "restore-wait") {
    let quit!: () => void;
    const quitting = new Promise<null>((r) => (quit = () => r(null)));
    const waiter = new RestoreWait(req.restoreWait, quit);
    preloadReclaim(); // everything a restore would load, loaded before the request
    server = new ControlServer({ path: req.controlSocket, controller: waiter.controller, version: PACKAGE_VERSION });
    await server.listen();
    process.stderr.write(`nodevisor: waiting for snapshot-load on ${req.controlSocket}\n`);
    waited = await Promise.race([waiter.requested, quitting]);
    if (waited === null) {
      await server.close();
      return 0;
    }
    start = { ...waited.request, pidFile: req.pidFile };
  } else {
    start = req;
  }
  let incoming: IncomingMigration | null = null;
  let config: VmConfig;
  if (start.start === "incoming") {
    incoming = await IncomingMigration.receive(start.incoming.uri, {
      diskPaths: start.incoming.diskPaths,
      onListening: (where) => process.stderr.write(`nodevisor: waiting for a migration on ${where}\n`),
    });
    writeRamDigestIfAsked(incoming.ram);
    const h = incoming.header;
    config = { ...h.config, name: start.incoming.name ?? h.config.name, ...start.settings };
  } else {
    config = start.config;
  }
  const interactive = config.command === null;
  const vm = await Vm.create({
    config,
    restore: start.start === "restore" ? start.restore : undefined,
    incoming: incoming ? { header: incoming.header, ram: incoming.ram } : undefined,
    onStdout: (d) => process.stdout.write(d),
    onStderr: (d) => process.stderr.write(d),
    log: (m) => process.stderr.write(`nodevisor: ${m}\n`),
  }).catch(async (e: unknown) => {
    // The source resumes the guest at once instead of waiting for us.
    incoming?.fail(`the destination cannot build the VM: ${(e as Error).message}`);
    await incoming?.abandonCopies();
    waited?.failed(e as Error);
    await server?.close();
    throw e;
  });
  if (config.controlSocket && server === null) {
    server = new ControlServer({ path: config.controlSocket, controller: vm, version: PACKAGE_VERSION });
    await server.listen();
  }
  let detach = (): void => {};
  if (interactive) {
    vm.onConsoleOutput((d) => process.stdout.write(d));
    if (start.consoleInput) {
      detach = attachTerminal({ write: (d) => vm.consoleWrite(d), onQuit: () => vm.quit(), onResize: (rows, cols) => vm.consoleResize(rows, cols) }).detach;
    }
  }
  const removePidFile = start.pidFile ? writePidFile(start.pidFile) : (): void => {};
  // First signal: stop the VM cleanly (disks flushed). If that has not finished within
  // FORCED_EXIT_MS, or a second signal comes, exit at once: flushed guest writes are on disk already.
  let signalled = false;
  // A reader that goes away (`nodevisor run | head`) stops the VM, as a closed pipe stops `yes`.
  const outputClosed = (e: NodeJS.ErrnoException): void => {
    if (e.code !== "EPIPE") process.stderr.write(`nodevisor: cannot write the VM's output: ${e.message}. Stopping the VM.\n`);
    vm.quit();
  };
  process.stdout.on("error", outputClosed);
  const stopSignal = (signal: NodeJS.Signals): void => {
    if (signalled) forceExit(signal, "a second signal");
    signalled = true;
    vm.quit();
    setTimeout(() => forceExit(signal, `the VM did not stop within ${FORCED_EXIT_MS / 1000} s`), FORCED_EXIT_MS).unref();
  };
  // In an interactive terminal Ctrl-C is a byte for the guest, so SIGINT only comes from kill.
  process.on("SIGINT", stopSignal);
  process.on("SIGTERM", stopSignal);
  let guestStartMs = 0; // when the payloads were in RAM and the harts set going (NODEVISOR_TIMINGS)
  try {
    // A migrated guest runs only once the source gave it up (GO): never on both sides.
    await incoming?.ready();
    // A manager that asked for it sees the guest from its first instruction (a poweroff at once included).
    if (start.controlWait) await server?.untilConnected();
    vm.start();
    guestStartMs = performance.now();
    await incoming?.running();
    if (waited !== null) {
      server?.replaceController(vm); // the clients of the waiting process now talk to the VM
      waited.started();
    }
  } catch (e) {
    waited?.failed(e as Error);
    detach();
    removePidFile();
    // The copies go before the control socket closes: a daemon takes the socket closing for the
    // end and may kill this process at once, which would leave a half-received disk behind.
    await vm.abandon();
    await incoming?.abandonCopies();
    await server?.close();
    throw e;
  }
  // Once the guest runs its /init (or after 20 s), the boot files are garbage: give their memory back.
  let collected = false;
  const collectOnce = (): void => {
    if (!collected) collectGarbageNow();
    collected = true;
  };
  const stopWatching = vm.onEvent((e) => e.event === "GUEST_INIT_STARTED" && setTimeout(collectOnce, 1000).unref());
  setTimeout(collectOnce, 20_000).unref();
  const exit = await vm.exited;
  stopWatching();
  detach();
  if (process.env.NODEVISOR_TIMINGS) {
    // Machine-readable timings for `npm run bench`; performance.now() counts from process start (of
    // this process: through bin/nodevisor.js the bench counts from its own spawn with initAtEpochMs).
    const stats = vm.stats();
    process.stderr.write(
      `nodevisor-timings ${JSON.stringify({ startMs: guestStartMs, initMs: vm.initStartedMs, initAtEpochMs: vm.initStartedMs === null ? null : performance.timeOrigin + vm.initStartedMs, exitMs: performance.now(), instructions: stats.instructionsRetired, idleMs: stats.idleMs, exits: vm.exitCounts })}\n`,
    );
  }
  await server?.close();
  removePidFile();
  process.off("SIGINT", stopSignal);
  process.stdout.off("error", outputClosed);
  process.off("SIGTERM", stopSignal);
  if (interactive) return exit.exitCode;
  const status = vm.guestCommandStatus;
  if (status !== null) return status;
  process.stderr.write(
    `nodevisor: the guest stopped (${exit.reason}) before reporting the command's exit status. Last console output:\n${vm.serialOutputTail.slice(-2000)}\n`,
  );
  return exit.exitCode !== 0 ? exit.exitCode : 1;
}
