import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAptSession, parseAptCacheDepends, parseAptCacheShow } from "./apt_fetch.js";

test("apt-cache depends output gives the real kernel package behind the metapackage", () => {
  const text = `linux-image-riscv64
  Depends: linux-image-6.12.107+deb13-riscv64
 |Depends: <virtual-thing>
  Recommends: firmware-linux-free
`;
  assert.deepEqual(parseAptCacheDepends(text), ["linux-image-6.12.107+deb13-riscv64", "virtual-thing"]);
});

test("apt-cache show output gives version, size, hash and pool file name", () => {
  const text = `Package: busybox-static
Version: 1:1.37.0-6+b9
Architecture: riscv64
Filename: pool/main/b/busybox/busybox-static_1.37.0-6+b9_riscv64.deb
Size: 941532
SHA256: 0123abcd

Package: opensbi
Version: 1.6-1
Filename: pool/main/o/opensbi/opensbi_1.6-1_all.deb
Size: 204072
SHA256: ffee
`;
  assert.deepEqual(parseAptCacheShow(text), [
    { name: "busybox-static", version: "1:1.37.0-6+b9", size: 941532, sha256: "0123abcd", fileName: "busybox-static_1.37.0-6+b9_riscv64.deb" },
    { name: "opensbi", version: "1.6-1", size: 204072, sha256: "ffee", fileName: "opensbi_1.6-1_all.deb" },
  ]);
});

test("the apt session keeps every apt path private to its directory", () => {
  const root = mkdtempSync(join(tmpdir(), "nodevisor-apt-"));
  try {
    const s = createAptSession(root, "http://mirror.example/debian", "trixie", "riscv64");
    assert.equal(readFileSync(join(root, "sources.list"), "utf8"), "deb [arch=riscv64 trusted=yes] http://mirror.example/debian trixie main\n");
    const opts = s.options.filter((o) => o !== "-o");
    for (const key of ["Dir::State", "Dir::State::Lists", "Dir::State::status", "Dir::Cache", "Dir::Cache::Archives", "Dir::Etc::SourceList"]) {
      const value = opts.find((o) => o.startsWith(`${key}=`))?.slice(key.length + 1);
      assert.ok(value !== undefined && value.startsWith(root), `${key} points into the private directory`);
    }
    assert.ok(opts.includes("Dir::Etc::SourceParts=/dev/null"), "the host's sources.list.d is not read");
    assert.ok(opts.includes("APT::Architectures=riscv64"));
    assert.ok(existsSync(join(root, "state", "status")));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
