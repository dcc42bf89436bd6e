// The web console in a real browser (Debian's chromium, driven by playwright-core): open the
// page, start a VM, type `uname -m` into its console, see riscv64, stop it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ensureTestImage } from "./helpers.js";
import { startDaemon, testHost } from "../src/host/testing/daemon_fixture.js";

const CHROMIUM = "/usr/bin/chromium";

test("the web console starts a VM, shows its serial console in xterm.js and stops it", { timeout: 600_000, skip: !existsSync(CHROMIUM) && !process.env.CI && "Debian's chromium is not installed here (CI installs it, and there the test never skips)" }, async (t) => {
  await ensureTestImage();
  const host = testHost(t);
  const token = "web-console-test-token-0123456789";
  const { daemon, client } = await startDaemon(t, host, { tcp: { host: "127.0.0.1", port: 0, token }, stopTimeoutMs: 60_000 });
  await client.call("POST", "/v1/vms", { name: "web1", memoryMiB: 128 });

  const profile = mkdtempSync(join(tmpdir(), "nv-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // The profile goes only after the browser has closed (it writes there until then; removing it first failed with ENOTEMPTY).
  t.after(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(e.message));

  await page.goto(`http://127.0.0.1:${daemon.tcpPort}/?token=${token}`);
  const row = page.locator('tr[data-vm="web1"]');
  await row.waitFor();
  assert.equal(await row.locator("td").nth(1).textContent(), "stopped");
  await row.locator('button[data-action="start"]').click();
  await page.locator('tr[data-vm="web1"] td.state-running').waitFor({ timeout: 120_000 });

  await page.locator('tr[data-vm="web1"] button[data-action="console"]').click();
  const screen = page.locator("#terminal .xterm-rows");
  await screen.filter({ hasText: "root@nodevisor" }).waitFor({ timeout: 240_000 });
  await page.locator("#terminal").click();
  await page.keyboard.type("uname -m; stty size\n");
  await screen.filter({ hasText: /riscv64\s*\d+ \d+/ }).waitFor({ timeout: 60_000 });
  assert.match((await screen.textContent()) ?? "", /riscv64\s*30 100/, "the guest learned the browser terminal's size");

  await page.locator('tr[data-vm="web1"] button[data-action="stop"]').click();
  await page.locator('tr[data-vm="web1"] td.state-stopped').waitFor({ timeout: 120_000 });
  const events = (await client.call("GET", "/v1/events?vm=web1")).events as Array<{ type: string; message: string }>;
  assert.equal(events.at(-1)!.message, "VM web1 powered off.");
  assert.deepEqual(problems, [], "no script errors on the page");
});
