import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTerminalSpec, terminalOfStdout, writePidFile } from "./run_daemon_options.js";

test("--terminal takes a type and an optional ROWSxCOLS, and refuses anything else with a sentence", () => {
  assert.deepEqual(parseTerminalSpec("xterm-256color"), { term: "xterm-256color", rows: 24, cols: 80 });
  assert.deepEqual(parseTerminalSpec("xterm,40x132"), { term: "xterm", rows: 40, cols: 132 });
  assert.throws(() => parseTerminalSpec("x;reboot"), /terminal type such as xterm-256color/);
  assert.throws(() => parseTerminalSpec("xterm,40by132"), /must be ROWSxCOLUMNS/);
  assert.throws(() => parseTerminalSpec("xterm,0x10"), /must be ROWSxCOLUMNS/);
});

test("the terminal of stdout is used only when stdout is a terminal", () => {
  const tty = { isTTY: true, rows: 30, columns: 100 } as NodeJS.WriteStream;
  assert.deepEqual(terminalOfStdout(tty, { TERM: "screen" }), { term: "screen", rows: 30, cols: 100 });
  assert.deepEqual(terminalOfStdout(tty, {}), { term: "vt100", rows: 30, cols: 100 });
  assert.equal(terminalOfStdout({ isTTY: false } as NodeJS.WriteStream, {}), null);
});

test("the pid file holds our pid and is removed only while it is still ours", () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-pid-"));
  try {
    const path = join(dir, "vm.pid");
    const remove = writePidFile(path);
    assert.equal(readFileSync(path, "utf8"), `${process.pid}\n`);
    remove();
    assert.equal(existsSync(path), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
