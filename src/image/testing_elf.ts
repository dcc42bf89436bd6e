// Test helper: builds small ELF64 files, so the module tests need no real kernel.

/** Builds a minimal ELF64 relocatable file with the given sections (plus the null section and .shstrtab). */
export function makeElf(sections: Array<{ name: string; data: Uint8Array; type?: number }>, little = true): Uint8Array {
  const names = ["", ...sections.map((s) => s.name), ".shstrtab"];
  const nameOffsets: number[] = [];
  let strtab = "";
  for (const n of names) {
    nameOffsets.push(strtab.length);
    strtab += n + "\0";
  }
  const all = [...sections.map((s) => ({ ...s, type: s.type ?? 1 })), { name: ".shstrtab", data: Buffer.from(strtab, "latin1"), type: 3 }];
  let off = 64;
  const placed = all.map((s) => {
    const at = off;
    off += s.data.length;
    return at;
  });
  off = (off + 7) & ~7;
  const shoff = off;
  const shnum = all.length + 1;
  const buf = new Uint8Array(shoff + shnum * 64);
  const v = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, little ? 1 : 2, 1]);
  v.setUint16(0x10, 1, little); // ET_REL
  v.setUint16(0x12, 243, little); // EM_RISCV
  v.setBigUint64(0x28, BigInt(shoff), little);
  v.setUint16(0x34, 64, little);
  v.setUint16(0x3a, 64, little);
  v.setUint16(0x3c, shnum, little);
  v.setUint16(0x3e, shnum - 1, little);
  all.forEach((s, i) => {
    buf.set(s.data, placed[i]!);
    const h = shoff + (i + 1) * 64;
    v.setUint32(h, nameOffsets[i + 1]!, little);
    v.setUint32(h + 4, s.type, little);
    v.setBigUint64(h + 0x18, BigInt(placed[i]!), little);
    v.setBigUint64(h + 0x20, BigInt(s.data.length), little);
  });
  return buf;
}

/** A fake kernel module whose .modinfo carries the given name, depends and optional extra entries. */
export function makeModule(name: string, depends: string[], extra = ""): Uint8Array {
  return makeElf([{ name: ".modinfo", data: Buffer.from(`${extra}depends=${depends.join(",")}\0name=${name}\0`, "latin1") }]);
}
