import { test } from "node:test";
import assert from "node:assert/strict";
import { admit, promised, type HostCapacity } from "./admission.js";

const GiB = 2 ** 30;
const host: HostCapacity = { cores: 2, memoryBytes: 4 * GiB, cpuOvercommit: 4, memoryOvercommit: 1.5 };

test("a start that fits under the overcommit ratios is admitted", () => {
  admit(host, promised([{ vcpus: 4, memoryBytes: 4 * GiB }]), { vcpus: 4, memoryBytes: 2 * GiB });
});

test("a start beyond the memory ratio is refused with what was asked and what is free", () => {
  const already = promised([{ vcpus: 1, memoryBytes: 4.8 * GiB }]);
  assert.throws(() => admit(host, already, { vcpus: 1, memoryBytes: 2 * GiB }), (e: Error & { statusCode?: number; code?: string }) => {
    assert.equal(e.statusCode, 409);
    assert.equal(e.code, "insufficient-capacity");
    assert.match(e.message, /^not enough memory: asked 2 GiB, 1\.2 GiB free under overcommit ratio 1\.5$/);
    return true;
  });
});

test("a start beyond the vCPU ratio is refused", () => {
  assert.throws(() => admit(host, promised([{ vcpus: 7, memoryBytes: 0 }]), { vcpus: 2, memoryBytes: GiB }), /not enough CPU: asked 2 vCPUs, 1 free under overcommit ratio 4/);
});
