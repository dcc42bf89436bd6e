// A hostile guest is the normal case: random instruction streams in every privilege mode and
// random accesses to every device register must never throw out of the VMM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Board } from "./board.js";
import { VIRTIO_BASE, VIRTIO_STRIDE } from "./layout.js";
import { EXIT_MMIO } from "../cpu/exit.js";
import { VirtioBlk } from "../devices/virtio/block/device.js";
import { VirtioRng } from "../devices/virtio/rng/device.js";
import { VirtioConsole } from "../devices/virtio/console/device.js";
import { VirtioBalloon } from "../devices/virtio/balloon/device.js";
import type { BlockBackend } from "../storage/block_backend.js";
import { emptyBlockStats } from "../storage/block_backend.js";
import { dispatchExit } from "./exit_dispatch.js";

/** Deterministic xorshift so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function memoryDisk(size: number): BlockBackend {
  const data = new Uint8Array(size);
  return {
    size, readOnly: false, id: "fuzz", queueDepth: 4, supportsDiscard: false,
    read: async (off, buf) => buf.set(data.subarray(off, off + buf.length)),
    write: async (off, buf) => data.set(buf, off),
    flush: async () => {}, discard: async () => {}, writeZeroes: async () => {},
    stats: emptyBlockStats, close: async () => {},
  };
}

function board(): { b: Board; events: string[] } {
  const events: string[] = [];
  let ticks = 0;
  const b = new Board({
    memoryBytes: 16 << 20,
    cpus: 2,
    time: { frequency: 10_000_000, now: () => (ticks += 7) },
    virtio: [new VirtioBlk({ backend: memoryDisk(1 << 20) }), new VirtioRng(), new VirtioConsole({ onOutput: () => {} }), new VirtioBalloon({ ramBase: 0x8000_0000, ramBytes: 16 << 20, reporting: true })],
    onSerialByte: () => {},
    onPowerOff: (c) => events.push(`poweroff ${c}`),
    onReset: () => events.push("reset"),
    log: () => {},
  });
  return { b, events };
}

test("random instruction words in M, S and U mode raise architectural traps, never host exceptions", () => {
  for (const [seed, mode] of [[1, 3], [2, 1], [3, 0], [4, 3]] as const) {
    const { b } = board();
    const next = rng(seed);
    const ram = b.ram;
    for (let i = 0; i < 64 * 1024; i += 4) ram.view.setUint32(i, next(), true);
    const h = b.harts[0]!;
    for (let r = 1; r < 32; r++) h.setX(r, BigInt(next()) << 32n | BigInt(next()));
    // Traps land back in the random code, so the stream keeps going through every mode it reaches.
    h.writeCsr(0x305, BigInt(ram.base + (next() & 0xfffc)));
    h.writeCsr(0x105, BigInt(ram.base + (next() & 0xfffc)));
    h.privilege = mode;
    h.setPc(ram.base + (next() & 0xfffc));
    let retired = 0;
    let exits = 0;
    assert.doesNotThrow(() => {
      for (let n = 0; n < 200; n++) {
        // As the vCPU loop does: complete each MMIO exit on the bus and run on with the rest of the budget.
        for (let budget = 1000; budget > 0; ) {
          const done = h.run(budget);
          retired += done;
          budget -= done;
          if (h.exit.reason !== EXIT_MMIO) break;
          dispatchExit(h, { bus: b.bus });
          exits++;
          budget--;
        }
        h.waiting = false;
        h.stopped = false;
      }
    }, `seed ${seed}`);
    // A trap handler that itself faults loops forever, as on hardware; the hart still makes progress.
    const traps = [...h.stats.trapsByCause.values()].reduce((a, n) => a + n, 0);
    assert.ok(traps > 0, `seed ${seed}: the random stream took traps`);
    assert.ok(retired + traps + exits >= 200 * 1000, `seed ${seed}: every run() used its budget (retired ${retired}, traps ${traps}, MMIO exits ${exits})`);
  }
});

test("random reads and writes of every device register never throw", () => {
  const { b } = board();
  const next = rng(42);
  const sizes = [1, 2, 4, 8] as const;
  for (const m of b.bus.mappings()) {
    for (let i = 0; i < 20_000; i++) {
      const size = sizes[next() & 3]!;
      const addr = m.base + (next() % Math.min(m.size, 0x10000));
      assert.doesNotThrow(() => {
        if (next() & 1) b.bus.write(addr, size, next(), next());
        else b.bus.read(addr, size);
      }, `${m.device.name} at 0x${addr.toString(16)} size ${size}`);
    }
  }
  // After the abuse, a virtio slot still answers its magic value.
  assert.equal(b.bus.read(VIRTIO_BASE, 4), 0x74726976);
  assert.equal(b.bus.read(VIRTIO_BASE + VIRTIO_STRIDE, 4), 0x74726976);
});
