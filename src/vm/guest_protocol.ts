// The host side of the guest protocol. The protocol itself (command-line key, console roles,
// exit line, powerdown request) belongs to the image's /init and is defined in
// src/image/init_script.ts; this module only turns an argv into that command line.

import { commandArgument as commandLineArgument } from "../image/init_script.js";

/** Quotes argv as one POSIX shell command line. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** The kernel command-line argument that asks /init to run argv. */
export function commandArgument(argv: readonly string[]): string {
  return commandLineArgument(shellQuote(argv));
}
