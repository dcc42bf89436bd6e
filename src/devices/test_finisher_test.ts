import { test } from "node:test";
import assert from "node:assert/strict";
import { TestFinisher } from "./test_finisher.js";

function setup() {
  const events: string[] = [];
  const dev = new TestFinisher({ onPowerOff: (code) => events.push(`off ${code}`), onReset: () => events.push("reset") });
  return { dev, events };
}

test("0x5555 powers off cleanly, 0x3333 with a code fails, 0x7777 resets", () => {
  const { dev, events } = setup();
  dev.write(0, 4, 0x5555);
  dev.write(0, 4, 0x3333 | (42 << 16));
  dev.write(0, 4, 0x3333);
  dev.write(0, 4, 0xffff3333);
  dev.write(0, 4, 0x7777);
  assert.deepEqual(events, ["off 0", "off 42", "off 1", "off 65535", "reset"]);
});

test("16-bit writes carry the command without a code", () => {
  const { dev, events } = setup();
  dev.write(0, 2, 0x5555);
  dev.write(0, 2, 0x3333);
  dev.write(0, 2, 0x7777);
  assert.deepEqual(events, ["off 0", "off 1", "reset"]);
});

test("other values, offsets and sizes do nothing and reads return 0", () => {
  const { dev, events } = setup();
  for (const off of [0, 1, 2, 4, 0xffc, -4, 0.5]) {
    for (const size of [1, 2, 4] as const) {
      if (off !== 0 || size === 1) dev.write(off, size, 0x5555);
      assert.equal(dev.read(off, size), 0);
    }
  }
  dev.write(0, 4, 0x5556);
  dev.write(0, 4, 0x55550000);
  dev.write(0, 4, 0);
  assert.deepEqual(events, []);
});
