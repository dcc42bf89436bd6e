import { test } from "node:test";
import assert from "node:assert/strict";
import { StatusConsoleReader } from "./status_console.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test("the status console reader takes the exit line and the listening line, in pieces, once each", () => {
  let heard = 0;
  const r = new StatusConsoleReader(() => heard++);
  r.read(bytes("liste"));
  r.read(bytes("ning\r\nlistening\n"));
  assert.equal(r.guestListening, true);
  assert.equal(heard, 1, "a second listening line is not news");
  r.read(bytes("exit 4"));
  assert.equal(r.commandStatus, null, "half a line decides nothing");
  r.read(bytes("2\nexit 7\n"));
  assert.equal(r.commandStatus, 42, "the first status counts");
});

test("a flooded status console keeps no more than one short line and skips overlong ones whole", () => {
  const r = new StatusConsoleReader(() => {});
  r.read(bytes(`exit 3${"9".repeat(10_000)}\n`)); // one overlong line that starts like an exit line
  assert.equal(r.commandStatus, null);
  r.read(bytes("exit 5\n"));
  assert.equal(r.commandStatus, 5);
});
