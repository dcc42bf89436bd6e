// The web console's script: plain browser JavaScript, no build step. Talks to the same REST API
// and console WebSocket as `nodevisor vm`. A token (TCP listeners) comes from the page's #token=.
"use strict";
(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const headers = token ? { authorization: "Bearer " + token } : {};
  const $ = (sel) => document.querySelector(sel);
  const mib = (b) => (b / 1048576).toFixed(0) + " MiB";
  let term = null;
  let socket = null;

  async function api(method, path, body) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    const data = text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
    if (!res.ok) throw new Error(data && data.message ? data.message : res.status + " " + res.statusText);
    return data;
  }

  function button(label, onClick) {
    const b = document.createElement("button");
    b.textContent = label;
    b.dataset.action = label;
    b.addEventListener("click", onClick);
    return b;
  }

  async function act(name, action) {
    $("#message").textContent = "";
    try {
      await api("POST", "/v1/vms/" + name + "/actions", { action, timeoutSec: 20 });
    } catch (e) {
      $("#message").textContent = e.message;
    }
    refresh();
  }

  let refreshes = 0;
  async function refresh() {
    const generation = ++refreshes;
    let vms;
    try {
      vms = (await api("GET", "/v1/vms")).vms;
      const host = await api("GET", "/v1/host");
      $("#host").textContent = "host: " + host.capacity.cores + " cores, " + mib(host.capacity.memoryBytes) +
        "; promised " + host.promised.vcpus + " vCPUs, " + mib(host.promised.memoryBytes) + "; used " + host.used.cpuCores.toFixed(2) + " cores";
    } catch (e) {
      $("#message").textContent = e.message;
      return;
    }
    const rows = [];
    for (const vm of vms) {
      const tr = document.createElement("tr");
      tr.dataset.vm = vm.name;
      let stats = null;
      if (vm.state === "running" || vm.state === "paused") stats = await api("GET", "/v1/vms/" + vm.name + "/stats").catch(() => null);
      const cells = [vm.name, vm.state, vm.spec.vcpus, vm.spec.memoryMiB + " MiB",
        stats ? (stats.cpuCores * 100).toFixed(0) + "%" : "", stats ? ((stats.stealMs || 0) / 1000).toFixed(1) + " s" : "",
        stats ? stats.mips : "", stats && stats.memoryTouchedBytes != null ? mib(stats.memoryTouchedBytes) : ""];
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = String(c);
        if (i === 1) td.className = "state-" + vm.state;
        tr.appendChild(td);
      });
      const actions = document.createElement("td");
      for (const a of ["start", "stop", "pause", "resume"]) actions.appendChild(button(a, () => act(vm.name, a)));
      actions.appendChild(button("console", () => openConsole(vm.name)));
      tr.appendChild(actions);
      rows.push(tr);
    }
    // Swapped in at once, and only by the newest refresh, so overlapping ones never mix or go back in time.
    if (generation === refreshes) $("#vms tbody").replaceChildren(...rows);
  }

  function closeConsole() {
    if (socket) socket.close();
    socket = null;
    if (term) term.dispose();
    term = null;
    $("#console-box").classList.remove("open");
  }

  function openConsole(name) {
    closeConsole();
    $("#console-box").classList.add("open");
    $("#console-name").textContent = name;
    term = new Terminal({ convertEol: false, fontSize: 14, rows: 30, cols: 100 });
    term.open($("#terminal"));
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/v1/vms/" + name + "/console?write=1" + (token ? "&token=" + encodeURIComponent(token) : ""));
    ws.binaryType = "arraybuffer";
    socket = ws;
    const sendSize = () => ws.readyState === 1 && ws.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
    ws.onopen = sendSize;
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const m = JSON.parse(ev.data);
        if (m.type === "error" || m.type === "closed") $("#message").textContent = m.message;
        return;
      }
      term.write(new Uint8Array(ev.data));
    };
    term.onData((d) => ws.readyState === 1 && ws.send(new TextEncoder().encode(d)));
    term.onResize(sendSize);
    term.focus();
  }

  $("#console-close").addEventListener("click", closeConsole);
  refresh();
  setInterval(refresh, 2000);
})();
