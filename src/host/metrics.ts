// Prometheus metrics (prom-client): per VM from the poller's latest sample, and for the host.
// Values are read at scrape time, so a scrape never waits on a VM process.

import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricType, type MetricValueWithName } from "prom-client";
import type { VmManager } from "./vm_manager.js";
import type { LatencySnapshot } from "../devices/virtio/block/latency.js";

type DiskLabel = "vm" | "disk";

/**
 * A histogram whose buckets the VM processes keep (they time the requests); at scrape time it
 * reports their latest snapshots in Prometheus' histogram form instead of observing anything.
 */
class SnapshotHistogram extends Histogram<DiskLabel> {
  private readonly metricName: string;
  private readonly metricHelp: string;

  constructor(
    o: { name: string; help: string; registers: Registry[] },
    private readonly read: () => Array<{ labels: Record<DiskLabel, string>; snapshot: LatencySnapshot }>,
  ) {
    super({ ...o, labelNames: ["vm", "disk"] });
    this.metricName = o.name;
    this.metricHelp = o.help;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<DiskLabel>>> {
    return this.getForPromString();
  }

  /** What the registry's text output reads (prom-client calls it instead of get() when present). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<DiskLabel>>> {
    const values: MetricValueWithName<DiskLabel>[] = [];
    const bucket = `${this.metricName}_bucket`;
    for (const { labels, snapshot: h } of this.read()) {
      h.boundsSeconds.forEach((le, i) => values.push({ metricName: bucket, labels: { ...labels, le } as never, value: h.cumulativeCounts[i]! }));
      values.push({ metricName: bucket, labels: { ...labels, le: "+Inf" } as never, value: h.count });
      values.push({ metricName: `${this.metricName}_sum`, labels, value: h.sumSeconds });
      values.push({ metricName: `${this.metricName}_count`, labels, value: h.count });
    }
    // prom-client's typings call the type an enum; at run time it is the exposition word.
    const type = "histogram" as unknown as MetricType;
    return { name: this.metricName, help: this.metricHelp, type, values, aggregator: "sum", collect: () => {} };
  }
}

export function createMetrics(manager: VmManager): Registry {
  const registry = new Registry();
  const perVm = (name: string, help: string, read: (m: VmManager, vm: string) => number | null | undefined, kind: "gauge" | "counter" = "gauge"): void => {
    const collect = function (this: Gauge | Counter): void {
      this.reset();
      for (const v of manager.list()) {
        const value = read(manager, v.name);
        if (value === null || value === undefined || !Number.isFinite(value)) continue;
        if (this instanceof Counter) this.inc({ vm: v.name }, value);
        else (this as Gauge).set({ vm: v.name }, value);
      }
    };
    if (kind === "counter") new Counter({ name, help, labelNames: ["vm"], registers: [registry], collect });
    else new Gauge({ name, help, labelNames: ["vm"], registers: [registry], collect });
  };
  const stat = (m: VmManager, vm: string) => m.sample(vm)?.stats;
  perVm("nodevisor_vm_up", "1 while the VM runs (or is paused), else 0.", (m, vm) => (m.processOf(vm) !== null ? 1 : 0));
  perVm("nodevisor_vm_vcpus", "vCPUs of the VM.", (m, vm) => m.get(vm).spec.vcpus);
  perVm("nodevisor_vm_cpu_seconds_total", "Host CPU time used by the VM process.", (m, vm) => (stat(m, vm)?.cpuMs ?? NaN) / 1000, "counter");
  perVm("nodevisor_vm_steal_seconds_total", "Time the vCPUs wanted to run but were held back by their cap or by host contention.", (m, vm) => (stat(m, vm)?.stealMs ?? NaN) / 1000, "counter");
  perVm("nodevisor_vm_throttled_seconds_total", "The part of steal due to the CPU cap.", (m, vm) => (stat(m, vm)?.throttledMs ?? NaN) / 1000, "counter");
  perVm("nodevisor_vm_instructions_retired_total", "Guest instructions retired.", (m, vm) => stat(m, vm)?.instructionsRetired, "counter");
  perVm("nodevisor_vm_mips", "Guest instructions per second over the last sampling window, in millions.", (m, vm) => stat(m, vm)?.mips);
  perVm("nodevisor_vm_wfi_idle_seconds_total", "Time the vCPUs spent parked in WFI.", (m, vm) => (stat(m, vm)?.idleMs ?? NaN) / 1000, "counter");
  perVm("nodevisor_vm_cpu_cap_percent", "CPU cap applied now, per cent of a core per vCPU (absent: none).", (m, vm) => (m.processOf(vm) ? m.get(vm).effectiveCpuCap : null));
  perVm("nodevisor_vm_memory_bytes", "Guest RAM size (the VM's ceiling).", (m, vm) => m.get(vm).spec.memoryMiB * 2 ** 20);
  perVm("nodevisor_vm_memory_touched_bytes", "Guest RAM the host has backed with pages.", (m, vm) => stat(m, vm)?.memoryTouchedBytes);
  perVm("nodevisor_vm_memory_actual_bytes", "The guest's memory size now: RAM minus its balloon.", (m, vm) => stat(m, vm)?.balloon?.actual);
  perVm("nodevisor_vm_memory_target_bytes", "The guest memory size asked for (balloon target).", (m, vm) => stat(m, vm)?.balloon?.target);
  perVm("nodevisor_vm_memory_available_bytes", "What the guest says it has available for new work (its MemAvailable).", (m, vm) => stat(m, vm)?.balloon?.guestStats.values.available);
  perVm("nodevisor_vm_memory_returned_pages_total", "4 KiB pages the balloon gave back to the host (inflated or reported free).", (m, vm) => stat(m, vm)?.balloon?.pagesReturned, "counter");
  perVm("nodevisor_vm_restarts_total", "Restarts by the daemon under the restart policy.", (m, vm) => m.get(vm).restarts, "counter");

  const traps = new Counter({
    name: "nodevisor_vm_traps_total",
    help: "Traps the guest took, by cause.",
    labelNames: ["vm", "cause"],
    registers: [registry],
    collect() {
      this.reset();
      for (const v of manager.list()) {
        for (const [cause, n] of Object.entries(manager.sample(v.name)?.stats.trapsByCause ?? {})) this.inc({ vm: v.name, cause }, n);
      }
    },
  });
  void traps;
  const device = (name: string, help: string, field: "requests" | "bytesRead" | "bytesWritten" | "errors"): void => {
    new Counter({
      name,
      help,
      labelNames: ["vm", "device", "kind"],
      registers: [registry],
      collect() {
        this.reset();
        for (const v of manager.list()) {
          for (const d of manager.sample(v.name)?.stats.devices ?? []) this.inc({ vm: v.name, device: d.name, kind: d.kind }, d[field]);
        }
      },
    });
  };
  device("nodevisor_vm_device_requests_total", "Requests served by each virtio device.", "requests");
  device("nodevisor_vm_device_read_bytes_total", "Bytes read by each virtio device.", "bytesRead");
  device("nodevisor_vm_device_written_bytes_total", "Bytes written by each virtio device.", "bytesWritten");
  device("nodevisor_vm_device_errors_total", "Failed requests of each virtio device.", "errors");

  const disks = () =>
    manager.list().flatMap((v) =>
      (manager.sample(v.name)?.stats.devices ?? []).filter((d) => d.kind === "virtio-blk").map((d) => ({ vm: v.name, device: d })),
    );
  const diskGauge = (name: string, help: string, read: (q: { current: number; max: number }) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ["vm", "disk"],
      registers: [registry],
      collect() {
        this.reset();
        for (const { vm, device } of disks()) if (device.queueDepth) this.set({ vm, disk: device.name }, read(device.queueDepth));
      },
    });
  };
  diskGauge("nodevisor_vm_disk_queue_depth", "Requests of each disk on its backend now (in flight).", (q) => q.current);
  diskGauge("nodevisor_vm_disk_queue_depth_max", "The most requests each disk has had on its backend at once.", (q) => q.max);
  new SnapshotHistogram(
    { name: "nodevisor_vm_disk_request_duration_seconds", help: "Latency of each disk's requests, from leaving the virtqueue to completing (rate-limit waits included).", registers: [registry] },
    () => disks().flatMap(({ vm, device }) => (device.latency ? [{ labels: { vm, disk: device.name }, snapshot: device.latency }] : [])),
  );

  const host = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  const c = manager.capacity;
  host("nodevisor_host_cores", "Host cores the daemon gives to VMs.", () => c.cores);
  host("nodevisor_host_memory_bytes", "Host memory the daemon gives to VMs.", () => c.memoryBytes);
  host("nodevisor_host_cpu_overcommit_ratio", "vCPUs promised per host core at most.", () => c.cpuOvercommit);
  host("nodevisor_host_memory_overcommit_ratio", "Guest RAM promised per byte of host memory at most.", () => c.memoryOvercommit);
  host("nodevisor_host_promised_vcpus", "vCPUs promised to running VMs.", () => manager.promised().vcpus);
  host("nodevisor_host_promised_memory_bytes", "Guest RAM promised to running VMs.", () => manager.promised().memoryBytes);
  host("nodevisor_host_used_cpu_cores", "Host cores the VMs used over the last second.", () => manager.list().reduce((s, v) => s + (manager.sample(v.name)?.cpuCores ?? 0), 0));
  host("nodevisor_host_used_memory_bytes", "Guest RAM the VMs have touched.", () =>
    manager.list().reduce((s, v) => s + (manager.sample(v.name)?.stats.memoryTouchedBytes ?? 0), 0),
  );
  return registry;
}
