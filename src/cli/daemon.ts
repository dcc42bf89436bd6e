// `nodevisor daemon`: runs the host daemon in the foreground, its log on stderr (for systemd).

import type { MemoryPolicySettings } from "../host/memory_policy.js";
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "./errors.js";
import { Daemon, defaultCapacity } from "../host/daemon.js";
import { defaultHostPaths } from "../host/paths.js";
import { parseMemorySize } from "../vm/config.js";

export const DAEMON_HELP = `Usage: nodevisor daemon [options]

Runs the host daemon in the foreground (log on stderr): the REST API on a UNIX
socket, the VM inventory, supervision, CPU and memory allocation, metrics and
the web console. VMs keep running when it stops; the next daemon finds them.

Options:
      --socket PATH          API socket (default $XDG_RUNTIME_DIR/nodevisor/api.sock,
                             /run/nodevisor/api.sock as root); mode 0600
      --state-dir DIR        inventory and VM logs (default $XDG_STATE_HOME/nodevisor,
                             /var/lib/nodevisor as root)
      --runtime-dir DIR      VM control sockets and pid files
      --listen HOST:PORT     also serve the API on TCP; needs --token-file
      --token-file FILE      the bearer token TCP clients must send
      --tls-cert FILE        serve TCP with TLS (with --tls-key)
      --tls-key FILE
      --cpus N               host cores to give VMs (default: all)
      --memory SIZE          host memory to give VMs (default: all)
      --cpu-overcommit R     vCPUs per host core at most (default 4)
      --memory-overcommit R  guest RAM per byte of host memory at most (default 1)
      --memory-policy on|off move memory between running VMs with their balloons
                             (default on; docs/memory.md)
      --memory-low SIZE      inflate idle guests' balloons when the host has less
                             than SIZE free (default 256M; they inflate until
                             twice that is free)
      --memory-floor SIZE    the least memory a balloon may leave a guest, from
                             the policy or a memoryTargetMiB edit (default 128M)
      --stop-timeout SEC     how long stop waits for a guest to power off (default 30)
  -h, --help                 show this help
`;

const OPTIONS = {
  socket: { type: "string" },
  "state-dir": { type: "string" },
  "runtime-dir": { type: "string" },
  listen: { type: "string" },
  "token-file": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  cpus: { type: "string" },
  memory: { type: "string" },
  "cpu-overcommit": { type: "string" },
  "memory-overcommit": { type: "string" },
  "stop-timeout": { type: "string" },
  "memory-policy": { type: "string" },
  "memory-low": { type: "string" },
  "memory-floor": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`nodevisor daemon: --${name} needs a positive number, not "${text}".`);
  return n;
}

function readSecret(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`nodevisor daemon: cannot read the ${what} "${path}": ${(e as Error).message}.`);
  }
}

export async function runDaemonCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (e) {
    throw new UsageError(`nodevisor daemon: ${(e as Error).message.replace(/\. To specify.*$/s, "")}. See \`nodevisor daemon --help\`.`);
  }
  if (values.help) {
    process.stdout.write(DAEMON_HELP);
    return 0;
  }
  const str = (k: string): string | undefined => values[k] as string | undefined;
  const paths = defaultHostPaths();
  if (str("state-dir")) paths.stateDir = resolve(str("state-dir")!);
  if (str("runtime-dir")) {
    paths.runtimeDir = resolve(str("runtime-dir")!);
    paths.apiSocket = resolve(paths.runtimeDir, "api.sock");
  }
  if (str("socket")) paths.apiSocket = resolve(str("socket")!);
  const capacity = defaultCapacity();
  capacity.cores = positive("cpus", str("cpus")) ?? capacity.cores;
  if (str("memory")) capacity.memoryBytes = parseMemorySize(str("memory")!);
  capacity.cpuOvercommit = positive("cpu-overcommit", str("cpu-overcommit")) ?? capacity.cpuOvercommit;
  capacity.memoryOvercommit = positive("memory-overcommit", str("memory-overcommit")) ?? capacity.memoryOvercommit;
  const stopTimeout = positive("stop-timeout", str("stop-timeout"));
  const memoryPolicy: Partial<MemoryPolicySettings> = {};
  const policy = str("memory-policy");
  if (policy !== undefined) {
    if (policy !== "on" && policy !== "off") throw new UsageError(`nodevisor daemon: --memory-policy takes on or off, not "${policy}".`);
    memoryPolicy.enabled = policy === "on";
  }
  if (str("memory-low")) {
    memoryPolicy.lowWatermarkBytes = parseMemorySize(str("memory-low")!);
    memoryPolicy.highWatermarkBytes = 2 * memoryPolicy.lowWatermarkBytes;
  }
  if (str("memory-floor")) memoryPolicy.floorBytes = parseMemorySize(str("memory-floor")!);

  let tcp;
  if (str("listen") !== undefined) {
    const m = /^(.*):(\d{1,5})$/.exec(str("listen")!);
    if (m === null || Number(m[2]) > 65535) throw new UsageError(`nodevisor daemon: --listen takes HOST:PORT, e.g. 127.0.0.1:8443, not "${str("listen")}".`);
    if (!str("token-file")) throw new UsageError("nodevisor daemon: --listen needs --token-file: the API on TCP always requires a bearer token.");
    const token = readSecret("token file", str("token-file")!).toString("utf8").trim();
    if (token.length < 16) throw new UsageError(`nodevisor daemon: the token in "${str("token-file")}" is shorter than 16 characters; use a long random one (e.g. \`openssl rand -hex 32\`).`);
    if ((str("tls-cert") === undefined) !== (str("tls-key") === undefined)) throw new UsageError("nodevisor daemon: give --tls-cert and --tls-key together.");
    const tls = str("tls-cert") ? { cert: readSecret("TLS certificate", str("tls-cert")!), key: readSecret("TLS key", str("tls-key")!) } : undefined;
    tcp = { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]), token, ...(tls ? { tls } : {}) };
  } else if (str("token-file") || str("tls-cert") || str("tls-key")) {
    throw new UsageError("nodevisor daemon: --token-file and --tls-* apply to the TCP listener; add --listen HOST:PORT.");
  }

  const daemon = await Daemon.start({ paths, capacity, memoryPolicy, ...(tcp ? { tcp } : {}), ...(stopTimeout ? { stopTimeoutMs: stopTimeout * 1000 } : {}) });
  await new Promise<void>((done) => {
    const stop = (signal: string): void => {
      process.stderr.write(`nodevisor daemon: ${signal}: stopping; the VMs keep running\n`);
      done();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await daemon.close();
  return 0;
}
