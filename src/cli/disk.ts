// `nodevisor disk …`: create, info, check, snapshot, convert, resize and clone images (mirrors qemu-img).

import { stat, truncate } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { loadCliProgress } from "./progress.js";
import type { BlockBackend } from "../storage/block_backend.js";
import { DISK_FORMATS, openDisk, probeFormat, type DiskFormat } from "../storage/open.js";
import { checkImage } from "../storage/qcow2/check.js";
import { createQcow2, DEFAULT_CLUSTER_SIZE } from "../storage/qcow2/create.js";
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY } from "../storage/qcow2/header.js";
import { Qcow2Image } from "../storage/qcow2/image.js";
import { applySnapshot, createSnapshot, deleteSnapshot, listSnapshots, type SnapshotInfo } from "../storage/qcow2/snapshots.js";
import { RawFileBackend } from "../storage/raw.js";
import { formatSize, parseSize } from "../storage/sizes.js";
import { diskInfo, type DiskInfo } from "../storage/disk_info.js";

export { diskInfo, type DiskInfo };

export interface DiskCliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const EXIT_OK = 0;
const EXIT_CORRUPT = 1;
const EXIT_USAGE = 2;

/** Bad command-line input: reported with the usage hint and exit status 2. */
class UsageError extends Error {}

const USAGE = `usage: nodevisor disk <command> …
  create [-f qcow2|raw] [-b BACKING [-F FMT]] [-o cluster_size=64K] FILE [SIZE]
  info [--json] FILE
  check [--repair] FILE
  snapshot -c NAME | -l | -a NAME | -d NAME FILE
  convert [-f FMT] -O qcow2|raw [-o cluster_size=64K] SRC DST
  resize FILE [+]SIZE
  clone TEMPLATE NEW`;

/** Runs one `disk` subcommand; returns the exit status (0 ok, 1 check found corruption, 2 bad input or failure). */
export async function runDiskCommand(
  argv: string[],
  io: DiskCliIo = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) },
): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "create":
        return await cmdCreate(rest, io);
      case "info":
        return await cmdInfo(rest, io);
      case "check":
        return await cmdCheck(rest, io);
      case "snapshot":
        return await cmdSnapshot(rest, io);
      case "convert":
        return await cmdConvert(rest, io);
      case "resize":
        return await cmdResize(rest, io);
      case "clone":
        return await cmdClone(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.stdout(USAGE + "\n");
        return cmd === undefined ? EXIT_USAGE : EXIT_OK;
      default:
        throw new UsageError(`unknown disk command "${cmd}"`);
    }
  } catch (e) {
    const msg = (e as Error).message;
    io.stderr(`nodevisor disk: ${msg}\n`);
    if (e instanceof UsageError) io.stderr(USAGE + "\n");
    return EXIT_USAGE;
  }
}

/** Splits flags (with their values) from positional arguments. */
function parseArgs(args: string[], withValue: string[], bare: string[]): { flags: Map<string, string>; pos: string[] } {
  const flags = new Map<string, string>();
  const pos: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (withValue.includes(a)) {
      if (i + 1 >= args.length) throw new UsageError(`option ${a} needs a value`);
      flags.set(a, args[++i]);
    } else if (bare.includes(a)) {
      flags.set(a, "");
    } else if (a.startsWith("-") && a !== "-" && !/^\+?\d/.test(a)) {
      throw new UsageError(`unknown option ${a}`);
    } else {
      pos.push(a);
    }
  }
  return { flags, pos };
}

function formatArg(name: string | undefined, allowed: readonly DiskFormat[]): DiskFormat | undefined {
  if (name === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(name)) throw new UsageError(`unsupported format "${name}" (use ${allowed.join(" or ")})`);
  return name as DiskFormat;
}

function sizeArg(s: string): number {
  try {
    return parseSize(s);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** -o key=value,key=value for qcow2 creation. */
function createOptions(o: string | undefined): { clusterSize: number; version: 2 | 3; refcountBits: 1 | 2 | 4 | 8 | 16 | 32 | 64 } {
  const out = { clusterSize: DEFAULT_CLUSTER_SIZE, version: 3 as 2 | 3, refcountBits: 16 as 1 | 2 | 4 | 8 | 16 | 32 | 64 };
  if (!o) return out;
  for (const kv of o.split(",")) {
    const [k, v] = kv.split("=");
    if (k === "cluster_size" && v) out.clusterSize = sizeArg(v);
    else if (k === "compat" && (v === "0.10" || v === "v2")) out.version = 2;
    else if (k === "compat" && (v === "1.1" || v === "v3")) out.version = 3;
    else if (k === "refcount_bits" && v && [1, 2, 4, 8, 16, 32, 64].includes(Number(v))) out.refcountBits = Number(v) as 16;
    else throw new UsageError(`unknown or invalid option "${kv}" (supported: cluster_size, compat, refcount_bits)`);
  }
  return out;
}

async function cmdCreate(args: string[], io: DiskCliIo): Promise<number> {
  const { flags, pos } = parseArgs(args, ["-f", "-b", "-F", "-o"], []);
  const fmt = formatArg(flags.get("-f"), ["qcow2", "raw"]) ?? "qcow2";
  if (pos.length < 1 || pos.length > 2) throw new UsageError("create needs FILE and SIZE");
  const [file, sizeText] = pos;
  const backing = flags.get("-b");
  if (fmt === "raw") {
    if (backing) throw new UsageError("raw images cannot have a backing file");
    if (flags.has("-o")) throw new UsageError("raw images take no -o options");
    if (!sizeText) throw new UsageError("create needs a SIZE");
    const size = Math.ceil(sizeArg(sizeText) / 512) * 512;
    await RawFileBackend.create(file, size);
    io.stdout(`Formatting '${file}', fmt=raw size=${size}\n`);
    return EXIT_OK;
  }
  const o = createOptions(flags.get("-o"));
  let size = sizeText ? sizeArg(sizeText) : -1;
  let backingFormat = flags.get("-F");
  if (backing) {
    // Relative backing names are relative to the new image's directory, as in qemu-img.
    const backingPath = isAbsolute(backing) ? backing : resolve(dirname(file), backing);
    backingFormat = formatArg(backingFormat, DISK_FORMATS) ?? (await probeFormat(backingPath));
    const b = await openDisk(backingPath, { format: backingFormat as DiskFormat, readOnly: true });
    if (size < 0) size = b.size;
    await b.close();
  } else if (flags.has("-F")) {
    throw new UsageError("-F needs -b");
  }
  if (size < 0) throw new UsageError("create needs a SIZE (or a backing file to take it from)");
  await createQcow2(file, { size, clusterSize: o.clusterSize, version: o.version, refcountBits: o.refcountBits, backingFile: backing, backingFormat });
  io.stdout(`Formatting '${file}', fmt=qcow2 cluster_size=${o.clusterSize} size=${size}${backing ? ` backing_file=${backing} backing_fmt=${backingFormat}` : ""}\n`);
  return EXIT_OK;
}

async function cmdInfo(args: string[], io: DiskCliIo): Promise<number> {
  const { flags, pos } = parseArgs(args, [], ["--json"]);
  if (pos.length !== 1) throw new UsageError("info needs one FILE");
  const info = await diskInfo(pos[0]);
  if (flags.has("--json")) {
    const order: Array<keyof DiskInfo> = ["filename", "format", "virtualSize", "diskSize", "clusterSize", "qcow2Version", "refcountBits", "dirty", "corrupt", "backingFile", "backingFormat", "backingChain", "snapshots"];
    const ordered: Record<string, unknown> = {};
    for (const k of order) if (info[k] !== undefined) ordered[k] = info[k];
    io.stdout(JSON.stringify(ordered, null, 2) + "\n");
    return EXIT_OK;
  }
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${formatSize(info.virtualSize)} (${info.virtualSize} bytes)`,
    `disk size: ${formatSize(info.diskSize)}`,
  ];
  if (info.clusterSize) lines.push(`cluster_size: ${info.clusterSize}`);
  if (info.backingFile) lines.push(`backing file: ${info.backingFile}`);
  if (info.backingFormat) lines.push(`backing file format: ${info.backingFormat}`);
  for (const [i, b] of info.backingChain.entries()) lines.push(`backing chain ${i + 1}: ${b.filename} (${b.format}, ${formatSize(b.virtualSize)})`);
  if (info.snapshots && info.snapshots.length > 0) lines.push("Snapshot list:", ...snapshotTable(info.snapshots));
  if (info.qcow2Version !== undefined) {
    lines.push(`Format specific information:`, `    compat: ${info.qcow2Version === 3 ? "1.1" : "0.10"}`, `    refcount bits: ${info.refcountBits}`);
    if (info.dirty) lines.push("    dirty: true");
    if (info.corrupt) lines.push("    corrupt: true");
  }
  io.stdout(lines.join("\n") + "\n");
  return EXIT_OK;
}

function snapshotTable(list: SnapshotInfo[]): string[] {
  const rows = [`${"ID".padEnd(10)}${"TAG".padEnd(18)}${"VM SIZE".padStart(10)}  DATE`];
  for (const s of list) {
    const date = new Date(s.dateSec * 1000).toISOString().replace("T", " ").slice(0, 19);
    rows.push(`${s.id.padEnd(10)}${s.name.padEnd(18)}${formatSize(s.vmStateSize).padStart(10)}  ${date}`);
  }
  return rows;
}

async function openQcow2ForCommand(path: string, readOnly: boolean, noBacking = true): Promise<Qcow2Image> {
  const format = await probeFormat(path);
  if (format !== "qcow2") throw new Error(`Disk "${path}" is a ${format} image; this command needs qcow2`);
  return Qcow2Image.open(path, { readOnly, noBacking });
}

async function cmdCheck(args: string[], io: DiskCliIo): Promise<number> {
  const { flags, pos } = parseArgs(args, [], ["--repair", "-r"]);
  if (pos.length !== 1) throw new UsageError("check needs one FILE");
  const repair = flags.has("--repair") || flags.has("-r");
  const img = await openQcow2ForCommand(pos[0], !repair);
  let r;
  try {
    r = await checkImage(img, { repair });
  } finally {
    await img.close();
  }
  for (const m of r.messages) io.stdout(m + "\n");
  const remainingCorrupt = r.corruptions - r.repairedCorruptions;
  const remainingLeaks = r.leaks - r.repairedLeaks;
  if (repair && (r.repairedLeaks || r.repairedCorruptions)) {
    io.stdout(`The following inconsistencies were found and repaired:\n\n    ${r.repairedLeaks} leaked clusters\n    ${r.repairedCorruptions} corruptions\n\n`);
  }
  if (remainingCorrupt > 0) {
    io.stdout(`\n${remainingCorrupt} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`);
  }
  if (remainingLeaks > 0) {
    io.stdout(`\n${remainingLeaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`);
  }
  if (remainingCorrupt === 0 && remainingLeaks === 0) io.stdout("No errors were found on the image.\n");
  io.stdout(`${r.allocatedClusters} clusters in use; image end offset: ${r.imageEndOffset}\n`);
  return remainingCorrupt > 0 ? EXIT_CORRUPT : EXIT_OK;
}

async function cmdSnapshot(args: string[], io: DiskCliIo): Promise<number> {
  const { flags, pos } = parseArgs(args, ["-c", "-a", "-d"], ["-l"]);
  const ops = ["-c", "-a", "-d", "-l"].filter((f) => flags.has(f));
  if (ops.length !== 1 || pos.length !== 1) throw new UsageError("snapshot needs exactly one of -c NAME, -l, -a NAME, -d NAME, and FILE");
  const op = ops[0];
  const img = await openQcow2ForCommand(pos[0], op === "-l");
  try {
    if (op === "-l") {
      io.stdout(["Snapshot list:", ...snapshotTable(listSnapshots(img))].join("\n") + "\n");
    } else if (op === "-c") {
      await createSnapshot(img, flags.get("-c") ?? "");
    } else if (op === "-a") {
      await applySnapshot(img, flags.get("-a") ?? "");
    } else {
      await deleteSnapshot(img, flags.get("-d") ?? "");
    }
  } finally {
    await img.close();
  }
  return EXIT_OK;
}

const CONVERT_CHUNK = 1 << 20;

async function cmdConvert(args: string[], io: DiskCliIo): Promise<number> {
  const { flags, pos } = parseArgs(args, ["-f", "-O", "-o"], ["-p"]);
  if (pos.length !== 2) throw new UsageError("convert needs SRC and DST");
  const out = formatArg(flags.get("-O"), ["qcow2", "raw"]);
  if (!out) throw new UsageError("convert needs -O qcow2 or -O raw");
  const [srcPath, dstPath] = pos;
  const src = await openDisk(srcPath, { format: formatArg(flags.get("-f"), DISK_FORMATS), readOnly: true });
  let dst: BlockBackend | null = null;
  try {
    if (out === "qcow2") {
      const o = createOptions(flags.get("-o"));
      await createQcow2(dstPath, { size: src.size, clusterSize: o.clusterSize, version: o.version, refcountBits: o.refcountBits });
      dst = await Qcow2Image.open(dstPath);
    } else {
      if (flags.has("-o")) throw new UsageError("raw output takes no -o options");
      await RawFileBackend.create(dstPath, src.size);
      dst = await RawFileBackend.open(dstPath);
    }
    const bar = process.stderr.isTTY || flags.has("-p")
      ? new (loadCliProgress().SingleBar)({ stream: process.stderr, noTTYOutput: flags.has("-p"), format: "converting [{bar}] {percentage}% | {value}/{total} MiB" }, loadCliProgress().Presets.shades_classic)
      : null;
    bar?.start(Math.ceil(src.size / CONVERT_CHUNK), 0);
    // A few chunks in flight keep both files busy; all-zero chunks stay unallocated.
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      const buf = new Uint8Array(CONVERT_CHUNK);
      while (next < src.size) {
        const off = next;
        next += CONVERT_CHUNK;
        const part = buf.subarray(0, Math.min(CONVERT_CHUNK, src.size - off));
        await src.read(off, part);
        if (!isZero(part)) await dst!.write(off, part);
        bar?.update(++done);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    await dst.flush();
    bar?.stop();
  } finally {
    await src.close();
    if (dst) await dst.close();
  }
  return EXIT_OK;
}

function isZero(b: Uint8Array): boolean {
  const words = new BigUint64Array(b.buffer, b.byteOffset, Math.floor(b.length / 8));
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  for (let i = words.length * 8; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

async function cmdResize(args: string[], io: DiskCliIo): Promise<number> {
  const { pos } = parseArgs(args, [], []);
  if (pos.length !== 2) throw new UsageError("resize needs FILE and SIZE");
  const [file, sizeText] = pos;
  const format = await probeFormat(file);
  const relative_ = sizeText.startsWith("+");
  const amount = sizeArg(relative_ ? sizeText.slice(1) : sizeText);
  if (format === "qcow2") {
    const img = await Qcow2Image.open(file, { noBacking: true });
    try {
      const size = Math.ceil((relative_ ? img.size + amount : amount) / 512) * 512;
      await img.resize(size);
    } finally {
      await img.close();
    }
  } else if (format === "raw") {
    const cur = (await stat(file)).size;
    const size = Math.ceil((relative_ ? cur + amount : amount) / 512) * 512;
    if (size < cur) throw new Error(`Cannot resize disk "${file}": shrinking is not supported`);
    await truncate(file, size);
  } else {
    throw new Error(`Cannot resize disk "${file}": ${format} images are read-only here`);
  }
  io.stdout("Image resized.\n");
  return EXIT_OK;
}

async function cmdClone(args: string[], io: DiskCliIo): Promise<number> {
  const { pos } = parseArgs(args, [], []);
  if (pos.length !== 2) throw new UsageError("clone needs TEMPLATE and NEW");
  const [template, target] = pos;
  const format = await probeFormat(template);
  const t = await openDisk(template, { format, readOnly: true });
  const size = t.size;
  await t.close();
  // Store the template relative to the clone, so the pair can move together.
  const name = relative(dirname(resolve(target)), resolve(template));
  await createQcow2(target, { size, backingFile: name, backingFormat: format });
  // Make sure the clone opens through its chain before reporting success.
  const check = await openDisk(target, { readOnly: true });
  await check.close();
  io.stdout(`Created linked clone '${target}' of '${template}'\n`);
  return EXIT_OK;
}
