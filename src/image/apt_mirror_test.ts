import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findHostDebianMirror, parseDeb822Sources, parseOneLineSources, pickDebianMirror } from "./apt_mirror.js";

const deb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`;

test("deb822: the main archive is chosen over the security archive", () => {
  const sources = parseDeb822Sources(deb822);
  assert.equal(sources.length, 2);
  assert.deepEqual(sources[0]!.suites, ["bookworm", "bookworm-updates"]);
  assert.equal(pickDebianMirror(sources), "http://deb.debian.org/debian");
});

test("deb822: disabled stanzas and continuation lines are honoured", () => {
  const text = `Types: deb
URIs: http://disabled.example/debian
Suites: trixie
Enabled: no

Types: deb deb-src
URIs:
 http://ftp.fr.debian.org/debian/
Suites: trixie
`;
  const sources = parseDeb822Sources(text);
  assert.equal(sources.length, 1);
  assert.equal(pickDebianMirror(sources), "http://ftp.fr.debian.org/debian");
});

test("one-line: options in brackets, comments and deb-src lines are handled", () => {
  const text = `# deb http://commented.example/debian bookworm main
deb-src http://src-only.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example.net/debian/ bookworm main contrib
deb http://security.debian.org/debian-security bookworm-security main
`;
  const sources = parseOneLineSources(text);
  assert.equal(sources.length, 3);
  assert.deepEqual(sources[1]!.components, ["main", "contrib"]);
  assert.equal(pickDebianMirror(sources), "http://mirror.example.net/debian");
});

test("an Ubuntu-only host has no Debian mirror", () => {
  const sources = parseOneLineSources("deb http://archive.ubuntu.com/ubuntu noble main\n");
  assert.equal(pickDebianMirror(sources), null);
});

test("findHostDebianMirror reads sources.list.d and explains what to do when nothing fits", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-apt-"));
  try {
    mkdirSync(join(dir, "sources.list.d"));
    writeFileSync(join(dir, "sources.list"), "deb http://archive.ubuntu.com/ubuntu noble main\n");
    assert.throws(
      () => findHostDebianMirror({ etcApt: dir, override: "" }),
      /no Debian mirror was found .*it lists only http:\/\/archive\.ubuntu\.com\/ubuntu\)\. Set NODEVISOR_DEBIAN_MIRROR/,
    );
    writeFileSync(join(dir, "sources.list.d", "debian.sources"), deb822);
    assert.equal(findHostDebianMirror({ etcApt: dir, override: "" }), "http://deb.debian.org/debian");
    assert.equal(findHostDebianMirror({ etcApt: dir, override: "http://local.example/debian/" }), "http://local.example/debian");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
