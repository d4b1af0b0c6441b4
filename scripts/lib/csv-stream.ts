/**
 * An operator's CSV of codes read as a stream, so that a file of any length is commissioned in bounded memory:
 * - {@link checkCsvFile} (pass 1) reads every line with the API's parser and packing checks, reports each bad line
 *   as it is found, and keeps for the duplicate check only an 8-byte prefix of each code's hash in a typed array;
 *   after sorting, equal prefixes are confirmed or dismissed by a targeted pass that reads only the codes under
 *   them ({@link confirmDuplicates}), so that no false duplicate is ever reported;
 * - {@link planCsvWindows} (pass 2) reads the file again and plans one window of whole groups (pallets, else cases,
 *   else units) at a time with the API's commissioning plan, fixed to the layout pass 1 found, so that its runs are
 *   the ones a plan of the whole file would make.
 */
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import {
  checkEven,
  checkLine,
  groupsPerRun,
  PackingReader,
  planCommission,
  type ContainerSizes,
  type LevelledLine,
  type PlanContext,
  type PlannedRun,
  type RunLayout,
  type UploadLine,
} from "../../backend/chain/commission-plan";
import { hasParentColumn, ParentCheck, readCodesRow, type CsvLineError } from "./csv-upload";

/** One physical line of the file, numbered from 1. */
export interface Row {
  line: number;
  text: string;
  /** Set when the line is longer than {@link MAX_LINE_CHARS}: its length (`text` is then only its start). */
  tooLong?: number;
}

/**
 * Characters of a line held in memory: a line of codes is a few hundred at most, and a longer one is bad whatever
 * follows, so that a file with no newline in gigabytes is read in bounded memory and reported as one bad line.
 */
export const MAX_LINE_CHARS = 1 << 16;

/** Size and modification time: what tells, cheaply, that the file changed since it was checked. */
export interface FileStamp {
  bytes: number;
  mtimeMs: number;
}

export function stampOf(file: string): FileStamp {
  const s = statSync(file);
  return { bytes: s.size, mtimeMs: s.mtimeMs };
}

/**
 * The file's physical lines in order, with its SHA-256 computed on the way (read it from `digest` once the rows
 * are all read) and `onBytes` told how far the read has got. Lines end at LF, with a CR before it dropped: the
 * API's `split(/\r?\n/)`, so that line numbers are the API's (readline would also end a line at a stray CR).
 */
export function readRows(
  file: string,
  onBytes?: (bytes: number) => void,
): { rows: AsyncIterable<Row>; digest: () => string } {
  const hash = createHash("sha256");
  let digest: string | null = null;
  async function* rows(): AsyncIterable<Row> {
    // A chunk's text is decoded once (a UTF-8 character split between chunks waits for the next) and cut at LF.
    const decoder = new StringDecoder("utf8");
    let line = 0;
    let read = 0;
    let parts: string[] = [];
    let held = 0;
    let length = 0;
    const take = (part: string) => {
      length += part.length;
      if (held < MAX_LINE_CHARS && part.length > 0) {
        const kept = part.slice(0, MAX_LINE_CHARS - held);
        parts.push(kept);
        held += kept.length;
      }
    };
    const finish = (): Row => {
      let text = parts.length === 1 ? parts[0]! : parts.join("");
      if (text.endsWith("\r")) text = text.slice(0, -1);
      const row: Row = length > MAX_LINE_CHARS ? { line: ++line, text, tooLong: length } : { line: ++line, text };
      parts = [];
      held = 0;
      length = 0;
      return row;
    };
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      read += chunk.length;
      onBytes?.(read);
      const text = decoder.write(chunk);
      let start = 0;
      for (let lf = text.indexOf("\n"); lf !== -1; lf = text.indexOf("\n", start)) {
        take(text.slice(start, lf));
        yield finish();
        start = lf + 1;
      }
      take(text.slice(start));
    }
    take(decoder.end());
    if (length > 0) yield finish();
    digest = hash.digest("hex");
  }
  return {
    rows: rows(),
    digest: () => {
      if (digest === null) throw new Error("the file is not read to its end yet");
      return digest;
    },
  };
}

/** The upload lines of a CSV (header, blank and bad lines left out), with each one's parent column. */
async function* uploadLines(
  rows: AsyncIterable<Row>,
  errors: { push(e: CsvLineError): unknown },
): AsyncIterable<{ upload: UploadLine; parent: string; withParents: boolean }> {
  let withParents = false;
  for await (const row of rows) {
    if (row.tooLong !== undefined) {
      errors.push({
        line: row.line,
        reason: "BAD_LINE",
        detail: `${row.tooLong} characters: longer than any line of codes`,
      });
      continue;
    }
    if (row.line === 1) withParents = hasParentColumn(row.text);
    const { read, parent } = readCodesRow(row.text, row.line, withParents);
    if (read && "reason" in read) errors.push(read);
    else if (read) yield { upload: read, parent, withParents };
  }
}

/** 64-bit FNV-1a of a code: cheap, and only a candidate filter (every equal prefix is confirmed on the codes). */
export function fnv1a64(text: string): bigint {
  // Two 32-bit halves with Math.imul: BigInt arithmetic per character would be several times slower.
  let lo = 0x84222325;
  let hi = 0xcbf29ce4;
  for (let i = 0; i < text.length; i++) {
    lo = (lo ^ text.charCodeAt(i)) >>> 0;
    // Multiply by the 64-bit FNV prime 0x100000001b3: lo*0x1b3 plus the carry, hi*0x1b3 + lo<<8 (from 2^40).
    const loProduct = lo * 0x1b3;
    const carry = Math.floor(loProduct / 0x100000000);
    hi = (Math.imul(hi, 0x1b3) + (lo << 8) + carry) >>> 0;
    lo = loProduct >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * The duplicate check's compact half: one 64-bit prefix per code in a growing BigUint64Array (8 bytes a code),
 * sorted at the end; the prefixes seen more than once are the only candidates for a duplicate.
 */
export class PrefixSet {
  private prefixes: BigUint64Array;
  private count = 0;

  /** `expected` sizes the array at once (a file's bytes / 21: a 20-digit code and its newline), grown if short. */
  constructor(
    readonly prefixOf: (normalised: string) => bigint = fnv1a64,
    expected = 1 << 16,
  ) {
    this.prefixes = new BigUint64Array(Math.max(1024, expected));
  }

  add(normalised: string): void {
    if (this.count === this.prefixes.length) {
      const grown = new BigUint64Array(Math.ceil(this.prefixes.length * 1.25));
      grown.set(this.prefixes);
      this.prefixes = grown;
    }
    this.prefixes[this.count++] = this.prefixOf(normalised);
  }

  get size(): number {
    return this.count;
  }

  /** The prefixes held more than once (then frees the array). */
  repeated(): Set<bigint> {
    const sorted = this.prefixes.subarray(0, this.count).sort();
    const repeated = new Set<bigint>();
    for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) repeated.add(sorted[i]!);
    this.prefixes = new BigUint64Array(0);
    this.count = 0;
    return repeated;
  }
}

/** Line and size of a level's containers in two growing Uint32Arrays (8 bytes a container). */
class SizeList implements ContainerSizes {
  private lines = new Uint32Array(1024);
  private sizes = new Uint32Array(1024);
  length = 0;

  push(line: number, size: number): void {
    if (this.length === this.lines.length) {
      for (const key of ["lines", "sizes"] as const) {
        const grown = new Uint32Array(this.length * 2);
        grown.set(this[key]);
        this[key] = grown;
      }
    }
    this.lines[this.length] = line;
    this.sizes[this.length++] = size;
  }

  line(i: number): number {
    return this.lines[i]!;
  }

  size(i: number): number {
    return this.sizes[i]!;
  }
}

/** Reasons that belong to one line alone: with --skip-bad the line is left out and the rest checked again. */
export const LINE_LOCAL: ReadonlySet<string> = new Set([
  "BAD_LINE",
  "BAD_LEVEL",
  "UNREADABLE_CODE",
  "WRONG_PRODUCT",
  "NOT_A_PACK_CODE",
  "PREFIX_NOT_ASSIGNED",
  "DUPLICATE_IN_UPLOAD",
  "BAD_PARENT",
]);

export interface CheckOptions {
  /** Lines to leave out (the bad lines of an earlier check, with --skip-bad). */
  skip?: ReadonlySet<number>;
  /** Whether to check the parent column (not when checking again without the bad lines). */
  parents?: boolean;
  /** Each bad line, as found: line-local ones in file order, then the packing's, then duplicates. */
  onError(error: CsvLineError): void;
  onBytes?(bytes: number): void;
  /** The duplicate check's prefix (tests make it collide). */
  prefixOf?: (normalised: string) => bigint;
}

export interface CheckedFile {
  sha256: string;
  stamp: FileStamp;
  units: number;
  cases: number;
  pallets: number;
  codes: number;
  /** Every bad line's number, and how many lines break the packing (--skip-bad cannot leave those out). */
  badLines: Set<number>;
  structural: CsvLineError[];
  /** How the file is cut into runs, and how many runs that makes; null when it has bad lines or no codes. */
  layout: RunLayout | null;
  runs: number;
  /** Why the file cannot be planned at all (no codes; a pallet above the run limit). */
  unplannable?: string;
}

/** Pass 1: every line checked, in memory of 8 bytes a code and 8 a container (see the module's comment). */
export async function checkCsvFile(file: string, context: PlanContext, o: CheckOptions): Promise<CheckedFile> {
  const stamp = stampOf(file);
  const badLines = new Set<number>();
  const structural: CsvLineError[] = [];
  const report = (e: CsvLineError) => {
    badLines.add(e.line);
    o.onError(e);
  };
  // Packing errors wait for the end: a line of unknown level (BAD_LEVEL, or BAD_LINE: no level column) leaves the
  // packing unknown, and its consequences would only repeat that line's error (as in planCommission).
  let levelsKnown = true;
  const lineLocal = {
    push: (e: CsvLineError) => {
      if (o.skip?.has(e.line)) return;
      if (e.reason === "BAD_LINE") levelsKnown = false;
      report(e);
    },
  };
  const packingErrors = { push: (e: CsvLineError) => structural.push(e) };
  const prefixes = new PrefixSet(o.prefixOf, Math.ceil(stamp.bytes / 21));
  const sizes = { case: new SizeList(), pallet: new SizeList() };
  let units = 0;
  type Group = { cases: number; pallets: number; units: number };
  let firstGroup = null as Group | null;
  let unitsSinceCase = 0;
  let unitsSincePallet = 0;
  const packing = new PackingReader(packingErrors, {
    unit: () => {
      units++;
      unitsSinceCase++;
      unitsSincePallet++;
    },
    container: (level, l, contents) => {
      sizes[level].push(l.line, contents.length);
      if (level === "pallet" && !firstGroup?.pallets)
        firstGroup = { units: unitsSincePallet, cases: contents.length, pallets: 1 };
      if (level === "case" && !firstGroup) firstGroup = { units: unitsSinceCase, cases: 1, pallets: 0 };
      unitsSinceCase = 0;
      if (level === "pallet") unitsSincePallet = 0;
    },
  });
  const parents = new ParentCheck(lineLocal);
  const { rows, digest } = readRows(file, o.onBytes);
  let codes = 0;
  for await (const { upload, parent, withParents } of uploadLines(rows, lineLocal)) {
    if (o.skip?.has(upload.line)) continue;
    const read: LevelledLine | null = checkLine(upload, context, {
      push: (e) => {
        if (e.reason === "BAD_LEVEL") levelsKnown = false;
        report(e);
      },
    });
    if (withParents && o.parents !== false) parents.add(upload, parent);
    if (!read) continue;
    codes++;
    packing.add(read);
    if (read.code) prefixes.add(read.code.normalised);
  }
  packing.finish();
  parents.finish();
  const unitsPerCase = checkEven(sizes.case, "case", packingErrors);
  const casesPerPallet = checkEven(sizes.pallet, "pallet", packingErrors);
  if (!levelsKnown) structural.length = 0;
  structural.sort((a, b) => a.line - b.line);
  for (const e of structural) report(e);
  const repeated = prefixes.repeated();
  if (repeated.size > 0) await confirmDuplicates(file, context, repeated, o.prefixOf ?? fnv1a64, report, o.skip);

  const checked = { sha256: digest(), stamp, units, cases: sizes.case.length, pallets: sizes.pallet.length, codes };
  const result: CheckedFile = { ...checked, badLines, structural, layout: null, runs: 0 };
  if (codes === 0) return { ...result, unplannable: "no codes in the file" };
  if (badLines.size > 0) return result;
  const group: Group = firstGroup ?? { units: 1, cases: 0, pallets: 0 };
  const groupCount = result.pallets || result.cases || units;
  const what = result.pallets > 0 ? "pallet" : "case";
  try {
    const perRun = groupsPerRun(groupCount, group.units + group.cases + group.pallets, context.maxRunCodes, what);
    return {
      ...result,
      layout: { unitsPerCase, casesPerPallet, groupsPerRun: perRun },
      runs: Math.ceil(groupCount / perRun),
    };
  } catch (err) {
    if (err instanceof RangeError) return { ...result, unplannable: err.message };
    throw err;
  }
}

/**
 * The targeted pass of the duplicate check: reads the file again, keeps the codes whose prefix is among the
 * repeated ones (a handful) and reports a line only when its code, not just its prefix, was seen before.
 */
export async function confirmDuplicates(
  file: string,
  context: PlanContext,
  repeated: ReadonlySet<bigint>,
  prefixOf: (normalised: string) => bigint,
  report: (e: CsvLineError) => void,
  skip?: ReadonlySet<number>,
): Promise<void> {
  const first = new Map<string, number>();
  const ignore = { push: () => undefined };
  for await (const { upload } of uploadLines(readRows(file).rows, ignore)) {
    if (skip?.has(upload.line)) continue;
    const code = checkLine(upload, context, ignore)?.code;
    if (!code || !repeated.has(prefixOf(code.normalised))) continue;
    const seen = first.get(code.normalised);
    if (seen === undefined) first.set(code.normalised, upload.line);
    else report({ line: upload.line, reason: "DUPLICATE_IN_UPLOAD", detail: `same code as line ${seen}` });
  }
}

export interface WindowOptions {
  layout: RunLayout;
  /** Runs planned at a time. */
  windowRuns: number;
  skip?: ReadonlySet<number>;
  /** A run already done: a window whose runs are all done is read past, not planned. */
  isDone(runIndex: number): boolean;
  /** The stamp of the checked file: planning stops if the file changes under it. */
  stamp: FileStamp;
}

/**
 * Pass 2: the file's runs in order, planned one window of whole groups at a time with the API's plan (so that
 * memory holds one window, not the file). Each window is a whole number of runs, so the runs are the same
 * whatever the window.
 */
export async function* planCsvWindows(file: string, context: PlanContext, o: WindowOptions): AsyncIterable<PlannedRun> {
  const groupsPerWindow = o.layout.groupsPerRun * o.windowRuns;
  const closesGroup = (level: string) =>
    o.layout.casesPerPallet > 0 ? level === "pallet" : o.layout.unitsPerCase > 0 ? level === "case" : true;
  const fixed = { ...context, fixed: o.layout };
  const refuse = (detail: string) => {
    throw new Error(`${file} changed since it was checked (${detail}): nothing more is sent; run the command again`);
  };
  let window: UploadLine[] = [];
  let groups = 0;
  let firstRun = 0;
  function* plan(): Iterable<PlannedRun> {
    const runsInWindow = Math.ceil(groups / o.layout.groupsPerRun);
    let pending = false;
    for (let r = firstRun; r < firstRun + runsInWindow; r++) pending ||= !o.isDone(r);
    if (pending) {
      const now = stampOf(file);
      if (now.bytes !== o.stamp.bytes || now.mtimeMs !== o.stamp.mtimeMs) refuse("its size or time differs");
      const outcome = planCommission(window, fixed);
      if (!outcome.ok) refuse(outcome.errors[0] ? `line ${outcome.errors[0].line}` : outcome.detail);
      else for (const run of outcome.plan.runs) yield { ...run, index: firstRun + run.index };
    }
    firstRun += runsInWindow;
    window = [];
    groups = 0;
  }
  for await (const { upload } of uploadLines(readRows(file).rows, { push: () => undefined })) {
    if (o.skip?.has(upload.line)) continue;
    window.push(upload);
    if (closesGroup(upload.level.trim().toLowerCase()) && ++groups === groupsPerWindow) yield* plan();
  }
  if (window.length > 0) yield* plan();
}
