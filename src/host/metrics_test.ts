// /metrics text for disks: the queue-depth gauges and the latency histogram in Prometheus form,
// from the VM's latest stats sample.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMetrics } from "./metrics.js";
import type { VmManager, VmSample } from "./vm_manager.js";
import type { DeviceStats } from "../vm/controller.js";
import { LatencyHistogram } from "../devices/virtio/block/latency.js";

function fakeManager(devices: DeviceStats[]): VmManager {
  const sample: VmSample = { at: 0, cpuCores: 0, wantedCores: 0, stats: { instructionsRetired: 0, mips: 0, idleMs: 0, trapsByCause: {}, devices } };
  const view = { name: "web1", spec: { vcpus: 1, memoryMiB: 64 }, restarts: 0, effectiveCpuCap: null };
  return {
    list: () => [view],
    get: () => view,
    sample: () => sample,
    processOf: () => ({}),
    promised: () => ({ vcpus: 1, memoryBytes: 64 * 2 ** 20 }),
    capacity: { cores: 2, memoryBytes: 2 ** 30, cpuOvercommit: 4, memoryOvercommit: 1.5 },
  } as unknown as VmManager;
}

test("each disk's queue depth and latency histogram are exported per VM and disk", async () => {
  const h = new LatencyHistogram();
  h.observe(0.0002);
  h.observe(0.003);
  h.observe(9);
  const vda: DeviceStats = { name: "vda", kind: "virtio-blk", requests: 3, bytesRead: 4096, bytesWritten: 0, errors: 0, queueDepth: { current: 2, max: 7 }, latency: h.snapshot() };
  const rng: DeviceStats = { name: "virtio1", kind: "virtio-rng", requests: 5, bytesRead: 64, bytesWritten: 0, errors: 0 };
  const text = await createMetrics(fakeManager([vda, rng])).metrics();
  assert.match(text, /^# TYPE nodevisor_vm_disk_request_duration_seconds histogram$/m);
  const line = (s: string): void => assert.ok(text.split("\n").includes(s), `missing "${s}" in:\n${text}`);
  line('nodevisor_vm_disk_queue_depth{vm="web1",disk="vda"} 2');
  line('nodevisor_vm_disk_queue_depth_max{vm="web1",disk="vda"} 7');
  line('nodevisor_vm_disk_request_duration_seconds_bucket{vm="web1",disk="vda",le="0.0001"} 0');
  line('nodevisor_vm_disk_request_duration_seconds_bucket{vm="web1",disk="vda",le="0.00025"} 1');
  line('nodevisor_vm_disk_request_duration_seconds_bucket{vm="web1",disk="vda",le="0.005"} 2');
  line('nodevisor_vm_disk_request_duration_seconds_bucket{vm="web1",disk="vda",le="5"} 2');
  line('nodevisor_vm_disk_request_duration_seconds_bucket{vm="web1",disk="vda",le="+Inf"} 3');
  line('nodevisor_vm_disk_request_duration_seconds_count{vm="web1",disk="vda"} 3');
  assert.match(text, /^nodevisor_vm_disk_request_duration_seconds_sum\{vm="web1",disk="vda"\} 9\.0032\d*$/m);
  assert.ok(!/disk="virtio1"/.test(text), "only disks get disk metrics");
});
