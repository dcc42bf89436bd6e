// Finds the applet names compiled into a busybox binary without running it (it is riscv64; the host is not).
// Busybox keeps them as one sorted, NUL-separated string table that begins "[\0[[\0".

/** Applets /init itself needs; a busybox without them cannot boot the guest. */
export const REQUIRED_APPLETS = [
  "sh", "mount", "insmod", "modprobe", "mkdir", "base64", "setsid", "cttyhack", "init", "poweroff", "stty", "usleep", "sync", "cat", "sort", "kill",
];

/** Used only when the table cannot be found, e.g. a differently built busybox. */
export const FALLBACK_APPLETS = [
  ...REQUIRED_APPLETS,
  "ash", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dmesg", "du", "echo", "env", "false", "find", "free",
  "grep", "gunzip", "gzip", "head", "hostname", "id", "ip", "ln", "ls", "lsmod", "mkfifo", "mknod", "more",
  "mv", "ping", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq", "sleep", "tail", "tar", "tee", "test",
  "time", "top", "touch", "tr", "true", "umount", "uname", "uniq", "uptime", "vi", "wc", "wget", "which", "xargs", "[",
];

const APPLET_NAME = /^[a-z0-9][a-z0-9_.-]*$|^\[\[?$/;

/** Returns the applet names in the binary, or null when no plausible table is found. */
export function findBusyboxApplets(binary: Uint8Array): string[] | null {
  const bytes = Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength);
  const start = bytes.indexOf("[\0[[\0", 0, "latin1");
  if (start < 0) return null;
  const names: string[] = [];
  let at = start;
  for (;;) {
    const end = bytes.indexOf(0, at);
    if (end <= at) break;
    const name = bytes.toString("latin1", at, end);
    if (!APPLET_NAME.test(name)) break;
    // The table is sorted; the first name out of order is data that follows it.
    if (names.length > 0 && name <= names[names.length - 1]!) break;
    names.push(name);
    at = end + 1;
  }
  if (!REQUIRED_APPLETS.every((a) => names.includes(a))) return null;
  return names;
}
