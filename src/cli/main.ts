// The `nodevisor` command: dispatches subcommands, prints user errors as one sentence (exit 2).

import { parseRunArgs, runVm, RUN_HELP } from "./run.js";
import { asImageError, isUserError, UsageError } from "./errors.js";
import { runDiskCommand } from "./disk.js";
import { runSwitchCommand } from "./switch.js";
import { ensureDefaultImage } from "../image/index.js";
import { progressRenderer } from "./progress.js";

const HELP = `Usage: nodevisor <command> [options]

Commands:
  run [options] [-- CMD...]   boot a VM (interactive console, or run one command)
  image build [--rebuild]     build the default guest image from Debian packages
  disk <subcommand> ...       create, inspect, check, snapshot, convert virtual disks
  daemon [options]            run the host daemon (REST API, inventory, supervision)
  vm <subcommand> ...         manage VMs through the daemon (create, start, console, ...)
  switch <subcommand> ...     virtual switches for --net switch=NAME (create, delete, list, path)
  help                        show this help

Run \`nodevisor run --help\` for VM options.
`;

async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "run": {
      const req = await parseRunArgs(rest);
      if (req.start === "help") {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      return runVm(req);
    }
    case "image": {
      if (rest[0] !== "build") throw new UsageError("nodevisor image: the only subcommand is `build` (with optional --rebuild).");
      const progress = progressRenderer();
      const image = await asImageError(() =>
        ensureDefaultImage({ rebuild: rest.includes("--rebuild"), onProgress: progress.update, log: (l) => process.stderr.write(`${l}\n`) }),
      ).finally(() => progress.stop());
      process.stdout.write(`Image "${image.name}" (kernel ${image.kernelVersion}) is ready in ${image.dir}\n`);
      return 0;
    }
    case "disk":
      return runDiskCommand(rest);
    // Loaded on demand, so `run` (every VM process) does not load the daemon's web stack.
    case "daemon":
      return (await import("./daemon.js")).runDaemonCommand(rest);
    case "vm":
      return (await import("./vm.js")).runVmCommand(rest);
    case "switch":
      return runSwitchCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`nodevisor: unknown command "${sub}". Run \`nodevisor help\` for the list.`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let stdout drain, then leave even if a stray handle (stdin, timers) is still open.
    process.stdout.write("", () => process.exit(code));
  },
  (e: unknown) => {
    if (isUserError(e)) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`nodevisor: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  },
);
