import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandArgument, INIT_SCRIPT, MARKER_BEGIN, MARKER_EXIT, parseExitLine, parseSerialFallback, PROFILE_SCRIPT } from "./init_script.js";

// Sources /init in the host's sh (not PID 1, so it only defines functions) and runs `body` after it.
function withInit(body: string): { dir: string; out: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-init-"));
  const initPath = join(dir, "init");
  writeFileSync(initPath, INIT_SCRIPT);
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  const r = spawnSync("sh", ["-c", `. "${initPath}"\nD="${dir}"\n${body}`], { encoding: "utf8", cwd: dir });
  if (r.status !== 0) {
    cleanup();
    assert.fail(`sh failed: ${r.stderr}`);
  }
  return { dir, out: r.stdout, cleanup };
}

const b64 = (s: string): string => Buffer.from(s).toString("base64");

test("/init and the profile pass the host shell's syntax check", () => {
  for (const [name, text] of [["init", INIT_SCRIPT], ["profile", PROFILE_SCRIPT]] as const) {
    const r = spawnSync("sh", ["-n"], { input: text, encoding: "utf8" });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
  }
  assert.ok(INIT_SCRIPT.startsWith("#!/bin/sh\n"));
  assert.match(INIT_SCRIPT, /\[ "\$\$" = 1 \] && main/);
});

test("parse_cmdline finds the base64 command and the debug flag among other parameters", () => {
  const t = withInit(`parse_cmdline "console=ttyS0 quiet nodevisor.cmd=${b64("ls /*")} x=* nodevisor.debug=1"; echo "[$cmd64][$debug]"`);
  try {
    assert.equal(t.out.trim().split("\n").pop(), `[${b64("ls /*")}][1]`);
  } finally {
    t.cleanup();
  }
});

test("command mode writes stdout, stderr and the exit line to the three consoles", () => {
  const cmd = 'echo out; echo err >&2; printf "a\\nb\\n"; exit 7';
  const t = withInit(`HVC_OUT=$D/hvc0 HVC_ERR=$D/hvc1 HVC_EXIT=$D/hvc2; : >$D/hvc0; : >$D/hvc1; : >$D/hvc2
cmd64=${b64(cmd)}
run_command`);
  try {
    assert.equal(readFileSync(join(t.dir, "hvc0"), "utf8"), "out\na\nb\n");
    assert.equal(readFileSync(join(t.dir, "hvc1"), "utf8"), "err\n");
    assert.equal(readFileSync(join(t.dir, "hvc2"), "utf8"), "exit 7\n");
  } finally {
    t.cleanup();
  }
});

test("the command's stdin is /dev/null, and invalid base64 ends with status 125", () => {
  const t = withInit(`HVC_OUT=$D/o HVC_ERR=$D/e HVC_EXIT=$D/x; : >$D/o; : >$D/e; : >$D/x
cmd64=${b64("cat; echo done")}
run_command
cmd64='@@@'
HVC_EXIT=$D/x2; : >$D/x2
run_command`);
  try {
    assert.equal(readFileSync(join(t.dir, "o"), "utf8"), "done\n");
    assert.equal(readFileSync(join(t.dir, "x"), "utf8"), "exit 0\n");
    assert.equal(readFileSync(join(t.dir, "x2"), "utf8"), "exit 125\n");
    assert.match(readFileSync(join(t.dir, "e"), "utf8"), /not valid base64/);
  } finally {
    t.cleanup();
  }
});

test("without virtio consoles the output goes to the serial console between markers", () => {
  const t = withInit(`HVC_OUT=$D/hvc0 HVC_ERR=$D/hvc1 HVC_EXIT=$D/hvc2; SERIAL=$D/ttyS0; : >$D/ttyS0
cmd64=${b64("echo hello; echo oops >&2; exit 3")}
run_command`);
  try {
    assert.equal(readFileSync(join(t.dir, "ttyS0"), "utf8"), `${MARKER_BEGIN}\nhello\noops\n\n${MARKER_EXIT} 3\n`);
    assert.deepEqual(parseSerialFallback(readFileSync(join(t.dir, "ttyS0"), "utf8")), { output: "hello\noops\n", status: 3 });
    assert.match(t.out, /no virtio consoles/);
    // Probing for the consoles must not leave plain files where device nodes belong.
    assert.equal(existsSync(join(t.dir, "hvc0")), false);
  } finally {
    t.cleanup();
  }
});

test("host-side helpers: the command argument, the exit line and the serial fallback", () => {
  assert.equal(commandArgument("echo hi"), `nodevisor.cmd=${b64("echo hi")}`);
  assert.equal(parseExitLine("exit 0\n"), 0);
  assert.equal(parseExitLine("exit 255\n"), 255);
  assert.equal(parseExitLine("exit 1"), null, "incomplete line");
  assert.equal(parseExitLine("exit 3\r\n"), 3, "a cooked tty's line end");
  assert.equal(parseExitLine("exit 3\rx\n"), null);
  const serial = `[    1.0] boot noise\r\nnodevisor: init started\r\n${MARKER_BEGIN}\r\nhello\r\n\r\nworld\r\n\r\n${MARKER_EXIT} 3\r\n[ 2.0] reboot: Power down\r\n`;
  assert.deepEqual(parseSerialFallback(serial), { output: "hello\n\nworld\n", status: 3 });
  assert.deepEqual(parseSerialFallback(`${MARKER_BEGIN}\n\n${MARKER_EXIT} 0\n`), { output: "", status: 0 });
  assert.deepEqual(parseSerialFallback(`${MARKER_BEGIN}\nno newline\n${MARKER_EXIT} 1\n`), { output: "no newline", status: 1 });
  assert.equal(parseSerialFallback(`${MARKER_BEGIN}\nhello\n`), null);
});

test("load_modules loads virtio_mmio, then one modprobe for the modaliases of the virtio devices present", () => {
  const t = withInit(`mkdir -p $D/bin $D/sys/virtio0 $D/sys/virtio1 $D/sys/virtio2
printf '#!/bin/sh\\necho "$*" >>%s/modprobe.log\\n' "$D" >$D/bin/modprobe; chmod +x $D/bin/modprobe
echo virtio:d00000003v554D4551 >$D/sys/virtio0/modalias
echo virtio:d00000002v554D4551 >$D/sys/virtio1/modalias
echo virtio:d00000002v554D4551 >$D/sys/virtio2/modalias
PATH=$D/bin:$PATH VIRTIO_DEVICES=$D/sys MODPROBE_SYSCTL=$D/sysctl
load_modules`);
  try {
    assert.equal(readFileSync(join(t.dir, "modprobe.log"), "utf8"), "virtio_mmio\n-q -a virtio:d00000002v554D4551 virtio:d00000003v554D4551\n");
    assert.equal(readFileSync(join(t.dir, "sysctl"), "utf8"), "/sbin/modprobe\n");
  } finally {
    t.cleanup();
  }
});

test("the listener on the status console runs the power-down action on a powerdown line, and only then", () => {
  // A FIFO opened read-write stands in for the tty: opening it for reading then does not block.
  const t = withInit(`mkfifo $D/hvc2; exec 9<>$D/hvc2; HVC_EXIT=$D/hvc2
listen_for_host 'echo "powered down" >$D/done'
printf 'exit 0\\nhello\\npowerdown\\n' >&9
wait "$listener"
echo "status $?"`);
  try {
    assert.equal(readFileSync(join(t.dir, "done"), "utf8"), "powered down\n");
    assert.match(t.out, /the host asked for a power-down/);
    assert.match(t.out, /status 0/);
  } finally {
    t.cleanup();
  }
  const s = withInit(`mkfifo $D/hvc2; exec 9<>$D/hvc2; HVC_EXIT=$D/hvc2
listen_for_host 'echo "powered down" >$D/done'
printf 'exit 0\\n' >&9
echo "had [$listener]"
stop_listener
sleep 0.2
[ -e $D/done ] && echo "ran" || echo "did not run"`);
  try {
    assert.match(s.out, /had \[\d+\]/);
    assert.match(s.out, /did not run/);
  } finally {
    s.cleanup();
  }
});

test("command mode listens on hvc2 while the command runs, then stops listening before the exit line", () => {
  const t = withInit(`mkfifo $D/hvc2; exec 9<>$D/hvc2; HVC_OUT=$D/o HVC_ERR=$D/e HVC_EXIT=$D/hvc2; : >$D/o; : >$D/e
power_off() { echo "power_off ran" >$D/p; }
stop_listener() { echo "stopping [$listener]"; kill "$listener" 2>/dev/null; listener=; }
(sleep 0.5; echo powerdown >&9) &
cmd64=${b64("sleep 2; echo ran")}
run_command
read -r line <&9; echo "status line [$line]"
HVC_EXIT=$D/none; listen_for_host 'echo x'; echo "none [$listener]"`);
  try {
    assert.equal(readFileSync(join(t.dir, "o"), "utf8"), "ran\n");
    assert.equal(readFileSync(join(t.dir, "p"), "utf8"), "power_off ran\n", "the request reached power_off during the command");
    assert.match(t.out, /stopping \[\d+\]/);
    assert.match(t.out, /status line \[exit 0\]/);
    assert.match(t.out, /none \[\]/);
  } finally {
    t.cleanup();
  }
});

test("the terminal type and size come from the command line, and resize lines on the status console set the size", () => {
  const t = withInit(`parse_cmdline "console=ttyS0 nodevisor.term=xterm-256color nodevisor.size=40x132"; echo "[$term][$size]"
stty() { echo "stty $*" >>$D/stty; }
SERIAL=/dev/ttyS9
mkfifo $D/hvc2; exec 9<>$D/hvc2; HVC_EXIT=$D/hvc2
listen_for_host 'echo "powered down" >$D/done'
printf 'resize 50 200\\r\\nresize 1; reboot\\nresize 24 80\\npowerdown\\n' >&9
wait "$listener"`);
  try {
    assert.match(t.out, /\[xterm-256color\]\[40x132\]/);
    const calls = readFileSync(join(t.dir, "stty"), "utf8").split("\n").filter((l) => l.includes("rows"));
    assert.deepEqual(calls, ["stty -F /dev/ttyS9 rows 50 cols 200", "stty -F /dev/ttyS9 rows 24 cols 80"]);
  } finally {
    t.cleanup();
  }
});
