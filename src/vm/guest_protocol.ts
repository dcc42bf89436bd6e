// How the host and the default image's /init talk (see src/image/README.md): the command
// travels on the kernel command line; its stdout, stderr and exit status come back over
// three virtio consoles, so kernel log noise on the serial line never mixes with them.

/** Kernel command-line key carrying the base64 of the shell command to run. */
export const CMDLINE_COMMAND_KEY = "nodevisor.cmd";
/** The serial-console line /init prints first, used to time boot. */
export const INIT_STARTED_MARKER = "nodevisor: init started";
/** Line the status console carries when the command ends: `exit <status>`. */
export const EXIT_LINE = /^exit (\d+)$/m;

/** The virtio consoles in slot order after the disks: hvc0 stdout, hvc1 stderr, hvc2 status/control. */
export const CONSOLE_ROLES = ["stdout", "stderr", "status"] as const;

/** Quotes argv as one POSIX shell command line. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** The kernel command-line argument that asks /init to run argv. */
export function commandArgument(argv: readonly string[]): string {
  return `${CMDLINE_COMMAND_KEY}=${Buffer.from(shellQuote(argv)).toString("base64")}`;
}
