// Reads the `.modinfo` section of a Linux kernel module (an ELF64 relocatable object):
// NUL-separated "key=value" strings such as name=, depends=, softdep=, alias=.

export interface ModInfo {
  /** Every key=value pair in file order (keys repeat, e.g. alias). */
  entries: Array<[key: string, value: string]>;
  /** The module's own name (name=), or null when the section has none. */
  name: string | null;
  /** Modules that must be loaded first (depends=, comma separated). */
  depends: string[];
  /** Modules or aliases the module asks to load before it (softdep= "pre:"). */
  softdepPre: string[];
  /** Modules or aliases to load after it (softdep= "post:"). */
  softdepPost: string[];
}

const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const SHT_NOBITS = 8;

/** Parses the .modinfo section out of a module's bytes; `what` names the file in error messages. */
export function readModinfo(bytes: Uint8Array, what = "module"): ModInfo {
  const section = findSection(bytes, ".modinfo", what);
  if (section === null) throw new Error(`Cannot read module info from ${what}: it has no .modinfo section.`);
  return parseModinfo(section);
}

export function parseModinfo(section: Uint8Array): ModInfo {
  const entries: Array<[string, string]> = [];
  const text = Buffer.from(section.buffer, section.byteOffset, section.byteLength).toString("utf8");
  for (const item of text.split("\0")) {
    if (item === "") continue; // alignment padding between strings
    const eq = item.indexOf("=");
    if (eq <= 0) continue;
    entries.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  const values = (key: string): string[] => entries.filter(([k]) => k === key).map(([, v]) => v);
  const depends = values("depends").flatMap((v) => v.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  const softdepPre: string[] = [];
  const softdepPost: string[] = [];
  for (const spec of values("softdep")) {
    // "pre: a b post: c" — words after "pre:" go before, after "post:" go after.
    let target: string[] | null = null;
    for (const word of spec.split(/\s+/)) {
      if (word === "pre:") target = softdepPre;
      else if (word === "post:") target = softdepPost;
      else if (word !== "" && target !== null) target.push(word);
    }
  }
  return { entries, name: values("name")[0] ?? null, depends, softdepPre, softdepPost };
}

/** Returns the bytes of the named section of an ELF64 file, or null when it has none. */
export function findSection(bytes: Uint8Array, wanted: string, what = "file"): Uint8Array | null {
  const fail = (why: string): never => {
    throw new Error(`Cannot read ${what} as an ELF64 file: ${why}.`);
  };
  if (bytes.length < 64) fail("it is shorter than an ELF64 header");
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) fail("it has no ELF magic");
  if (bytes[4] !== ELFCLASS64) fail(`its class is ${bytes[4]}, not ELFCLASS64`);
  const little = bytes[5] === ELFDATA2LSB;
  if (!little && bytes[5] !== ELFDATA2MSB) fail(`its data encoding ${bytes[5]} is unknown`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number): number => view.getUint16(o, little);
  const u32 = (o: number): number => view.getUint32(o, little);
  const u64 = (o: number): number => {
    const v = view.getBigUint64(o, little);
    if (v > BigInt(bytes.length)) fail(`an offset or size (${v}) points past its end`);
    return Number(v);
  };

  const shoff = u64(0x28);
  const shentsize = u16(0x3a);
  const shnum = u16(0x3c);
  const shstrndx = u16(0x3e);
  if (shoff === 0 || shnum === 0) return null;
  if (shentsize < 64) fail(`its section header size ${shentsize} is below 64`);
  if (shoff + shnum * shentsize > bytes.length) fail("its section header table runs past its end");
  if (shstrndx >= shnum) fail(`its section-name table index ${shstrndx} is out of range`);

  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: u32(o), type: u32(o + 4), offset: u64(o + 0x18), size: u64(o + 0x20) };
  };
  const slice = (h: { offset: number; size: number }): Uint8Array => {
    if (h.offset + h.size > bytes.length) fail("a section runs past its end");
    return bytes.subarray(h.offset, h.offset + h.size);
  };
  const names = slice(header(shstrndx));
  const nameAt = (off: number): string => {
    if (off >= names.length) fail(`a section name offset ${off} is out of range`);
    const end = names.indexOf(0, off);
    return Buffer.from(names.buffer, names.byteOffset + off, (end < 0 ? names.length : end) - off).toString("latin1");
  };
  for (let i = 1; i < shnum; i++) {
    const h = header(i);
    if (h.type !== SHT_NOBITS && nameAt(h.name) === wanted) return slice(h);
  }
  return null;
}
