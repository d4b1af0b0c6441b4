/**
 * Plans the commissioning of a batch's codes as a packing line reports them: one code per line with its level,
 * in packing order (a case's units, then its case code; a pallet's cases, then its pallet code). Every line is
 * read with the scan parser; every bad line is reported with its number, and nothing is planned while any is bad.
 * A good upload is split into runs of at most the ledger's `maxRunCodes` codes that keep positional aggregation
 * valid: runs break on pallet boundaries (case boundaries when nothing is palletised), so that each run's cases
 * and pallets hold exactly the units and cases the line packed into them.
 */
import { tryParseCode, type ParsedCode } from "../codes/parse";
import type { RunShape } from "../codes/run";
import { buildRun, type RunPayload } from "./runs";

export const PACK_LEVELS = ["unit", "case", "pallet"] as const;
export type PackLevel = (typeof PACK_LEVELS)[number];

/** One line of an upload as sent: its 1-based number (CSV line, or position in a JSON list), code and level. */
export interface UploadLine {
  line: number;
  code: string;
  level: string;
}

export type LineErrorReason =
  | "BAD_LINE"
  | "BAD_LEVEL"
  | "UNREADABLE_CODE"
  | "WRONG_PRODUCT"
  | "NOT_A_PACK_CODE"
  | "PREFIX_NOT_ASSIGNED"
  | "DUPLICATE_IN_UPLOAD"
  | "ALREADY_COMMISSIONED"
  | "EMPTY_CONTAINER"
  | "UNEVEN_CASE"
  | "UNEVEN_PALLET"
  | "NOT_IN_CASE"
  | "NOT_ON_PALLET";

export interface LineError {
  line: number;
  reason: LineErrorReason;
  detail: string;
  /** The parser's reason when the code cannot be read (see backend/codes/errors.ts). */
  codeReason?: string;
  /** The parser's hints (e.g. LENGTH_19_EXPECTED_20): what points to a mis-scan. */
  hints?: string[];
}

const CSV_HEADER = /^\s*"?code"?\s*,\s*"?level"?\s*$/i;

/** Unquotes an RFC 4180 field (`"a""b"` → `a"b`); anything else is taken as it is. */
function unquote(field: string): string {
  const trimmed = field.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
    ? trimmed.slice(1, -1).replace(/""/g, '"')
    : trimmed;
}

/**
 * One physical line of a `code,level` upload: its upload line, a BAD_LINE error, or null for a blank line (and the
 * header, on line 1). The level follows the last comma, so a code may itself hold commas.
 */
export function readCsvRow(row: string, line: number): UploadLine | LineError | null {
  if (row.trim() === "" || (line === 1 && CSV_HEADER.test(row))) return null;
  const comma = row.lastIndexOf(",");
  if (comma === -1) return { line, reason: "BAD_LINE", detail: "expected `code,level` (unit, case or pallet)" };
  return { line, code: unquote(row.slice(0, comma)), level: unquote(row.slice(comma + 1)) };
}

/** Reads `code,level` lines (see {@link readCsvRow}); line numbers count every physical line. */
export function readCsv(text: string): { lines: UploadLine[]; errors: LineError[] } {
  const lines: UploadLine[] = [];
  const errors: LineError[] = [];
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  rows.forEach((row, i) => {
    const read = readCsvRow(row, i + 1);
    if (read && "reason" in read) errors.push(read);
    else if (read) lines.push(read);
  });
  return { lines, errors };
}

/** What the plan checks codes against. */
export interface PlanContext {
  /** The batch's product code: 7-digit drug identification code or GTIN-14. */
  productCode: string;
  /** The manufacturer's code prefixes (`CN:<digits>`, `GS1:<digits>`), which case and pallet codes must fall under. */
  prefixes: readonly string[];
  /** The ledger's limit of codes per run. */
  maxRunCodes: number;
  /** Code hash domain of the consortium. */
  domain: string;
  /**
   * The packing of the whole file when only part of it is planned (a window of whole groups, see
   * scripts/lib/csv-stream.ts): the sizes and the groups a run, so that each window's runs are the ones a plan of
   * the whole file would make.
   */
  fixed?: RunLayout;
}

/** How a checked file is cut into runs: its container sizes and how many groups (pallets, cases, units) a run. */
export interface RunLayout {
  unitsPerCase: number;
  casesPerPallet: number;
  groupsPerRun: number;
}

export interface PlannedRun {
  /** 0-based position of the run in the job. */
  index: number;
  shape: RunShape;
  /** Line numbers of the run's codes in contract order (units, then cases, then pallets). */
  lines: number[];
  payload: RunPayload;
}

export interface CommissionPlan {
  unitsPerCase: number;
  casesPerPallet: number;
  units: number;
  cases: number;
  pallets: number;
  codes: number;
  runs: PlannedRun[];
}

export type PlanOutcome =
  | { ok: true; plan: CommissionPlan }
  | {
      ok: false;
      errors: LineError[];
      detail: string;
      /** The lines whose codes read, so that a caller can check them further (e.g. against the index) at once. */
      readable: { line: number; normalised: string }[];
    };

/** A line whose level is known: its place in the packing counts even when its code is bad. */
export type LevelledLine = { line: number; level: PackLevel; code: ParsedCode | null };

/** Whether a manufacturer's prefix covers a container code that names a product or company (see Products.sol). */
export function prefixCovers(prefix: string, code: ParsedCode): boolean {
  if (prefix.startsWith("CN:")) return code.scheme === "cn20" && code.productCode!.startsWith(prefix.slice(3));
  if (!prefix.startsWith("GS1:") || code.scheme !== "gs1") return false;
  // A GTIN-14 from its second digit (after the indicator), an SSCC from its second (after the extension digit).
  const digits = code.productCode ?? code.sscc!;
  return digits.slice(1).startsWith(prefix.slice(4));
}

/** The checks of one line's code: readable, and a code of this product (units) or maker (cases, pallets). */
function codeProblem(line: number, level: PackLevel, raw: string, context: PlanContext): ParsedCode | LineError {
  const parsed = tryParseCode(raw);
  if (!parsed.ok) {
    const { message, reason, hints } = parsed.error;
    return { line, reason: "UNREADABLE_CODE", detail: message, codeReason: reason, hints: hints.map((h) => h.code) };
  }
  const code = parsed.code;
  if (level === "unit") {
    // A unit's code names its product: a code that names none would be commissioned but never found by a scan
    // of a real pack (and a short or mistyped 20-digit code reads as such a code).
    if (code.productCode === undefined)
      return {
        line,
        reason: "NOT_A_PACK_CODE",
        detail:
          code.scheme === "gs1"
            ? "an SSCC identifies a logistic unit, not a sales pack"
            : "a unit's code names its product (a 20-digit code or a GS1 GTIN with serial); this one names none",
        hints: code.hints.map((h) => h.code),
      };
    if (code.productCode !== context.productCode)
      return {
        line,
        reason: "WRONG_PRODUCT",
        detail: `the code names product ${code.productCode}, the batch is of ${context.productCode}`,
      };
  } else if (code.scheme !== "other" && !context.prefixes.some((p) => prefixCovers(p, code))) {
    const named = code.productCode ?? `SSCC ${code.sscc}`;
    return {
      line,
      reason: "PREFIX_NOT_ASSIGNED",
      detail: `${level} code names ${named}, under none of the manufacturer's code prefixes (${context.prefixes.join(", ") || "none"})`,
    };
  }
  return code;
}

/** The checks of one line alone (its level, and its code with the scan parser); null when its level is unknown. */
export function checkLine(input: UploadLine, context: PlanContext, errors: ErrorSink): LevelledLine | null {
  const { line } = input;
  const level = input.level.trim().toLowerCase();
  if (!(PACK_LEVELS as readonly string[]).includes(level)) {
    errors.push({
      line,
      reason: "BAD_LEVEL",
      detail: `level "${input.level.slice(0, 20)}" is not unit, case or pallet`,
    });
    return null;
  }
  const code = codeProblem(line, level as PackLevel, input.code, context);
  if ("reason" in code) errors.push(code);
  return { line, level: level as PackLevel, code: "reason" in code ? null : code };
}

/** Where line errors go: an array, or a streaming reporter. */
export interface ErrorSink {
  push(error: LineError): unknown;
}

interface Container {
  line: number;
  code: ParsedCode | null;
  /** Lines of what it holds (units of a case, cases of a pallet), in packing order. */
  contents: number[];
}

/** A level's containers in packing order as positional aggregation checks them: each one's line and size. */
export interface ContainerSizes {
  readonly length: number;
  line(i: number): number;
  size(i: number): number;
}

interface Packing {
  units: LevelledLine[];
  cases: Container[];
  pallets: Container[];
  unitsPerCase: number;
  casesPerPallet: number;
}

const sizesOf = (containers: Container[]): ContainerSizes => ({
  length: containers.length,
  line: (i) => containers[i]!.line,
  size: (i) => containers[i]!.contents.length,
});

/**
 * Aggregation is positional: every case (pallet) holds as many as the others, only the last fewer. The size is the
 * most common one (the larger on a tie), so that a short case is the one reported, wherever it is; or the size
 * given, when a window of a file already checked is planned.
 */
export function checkEven(
  containers: ContainerSizes,
  level: "case" | "pallet",
  errors: ErrorSink,
  fixed?: number,
): number {
  let size = fixed ?? 0;
  if (fixed === undefined) {
    const counts = new Map<number, number>();
    for (let i = 0; i < containers.length; i++)
      counts.set(containers.size(i), (counts.get(containers.size(i)) ?? 0) + 1);
    for (const [s, n] of counts) if (n > (counts.get(size) ?? 0) || (n === counts.get(size) && s > size)) size = s;
  }
  for (let i = 0; i < containers.length; i++) {
    const held = containers.size(i);
    const last = i === containers.length - 1;
    if (held === size || (last && held < size)) continue;
    const holds = level === "case" ? "units" : "cases";
    errors.push({
      line: containers.line(i),
      reason: level === "case" ? "UNEVEN_CASE" : "UNEVEN_PALLET",
      detail: `${level} holds ${held} ${holds}, the others ${size}: every ${level} but the last must hold the same`,
    });
  }
  return size;
}

/** What a {@link PackingReader} hands on: each unit, and each container when its line closes it. */
export interface PackingSink {
  unit?(line: LevelledLine): void;
  container(level: "case" | "pallet", line: LevelledLine, contents: readonly number[]): void;
}

/**
 * Rebuilds the packing from the lines' order one line at a time, reporting what positional aggregation cannot
 * express. It holds only the open case's units and the open pallet's cases, so that a file of any length is read
 * in bounded memory.
 */
export class PackingReader {
  private openUnits: number[] = [];
  private openCases: number[] = [];
  private cased = false;
  private palletised = false;

  constructor(
    private readonly errors: ErrorSink,
    private readonly sink: PackingSink,
  ) {}

  add(l: LevelledLine): void {
    if (l.level === "unit") {
      this.sink.unit?.(l);
      this.openUnits.push(l.line);
    } else if (l.level === "case") {
      if (this.openUnits.length === 0)
        this.errors.push({ line: l.line, reason: "EMPTY_CONTAINER", detail: "case line with no unit lines before it" });
      this.cased = true;
      this.sink.container("case", l, this.openUnits);
      this.openCases.push(l.line);
      this.openUnits = [];
    } else {
      if (this.openCases.length === 0)
        this.errors.push({
          line: l.line,
          reason: "EMPTY_CONTAINER",
          detail: "pallet line with no case lines before it",
        });
      if (this.openUnits.length > 0)
        this.errors.push({
          line: this.openUnits[0]!,
          reason: "NOT_IN_CASE",
          detail: `${this.openUnits.length} unit lines before the pallet at line ${l.line} end with no case line`,
        });
      this.palletised = true;
      this.sink.container("pallet", l, this.openCases);
      this.openCases = [];
      this.openUnits = [];
    }
  }

  /** The end of the file: what is still open must be loose. */
  finish(): void {
    if (this.cased && this.openUnits.length > 0)
      this.errors.push({
        line: this.openUnits[0]!,
        reason: "NOT_IN_CASE",
        detail: `the last ${this.openUnits.length} unit lines end with no case line, while the batch is cased`,
      });
    if (this.palletised && this.openCases.length > 0)
      this.errors.push({
        line: this.openCases[0]!,
        reason: "NOT_ON_PALLET",
        detail: `the last ${this.openCases.length} cases end with no pallet line, while the batch is palletised`,
      });
  }
}

function pack(lines: LevelledLine[], errors: LineError[], fixed?: RunLayout): Packing {
  const units: LevelledLine[] = [];
  const cases: Container[] = [];
  const pallets: Container[] = [];
  const reader = new PackingReader(errors, {
    unit: (l) => units.push(l),
    container: (level, l, contents) =>
      (level === "case" ? cases : pallets).push({ line: l.line, code: l.code, contents: [...contents] }),
  });
  for (const l of lines) reader.add(l);
  reader.finish();
  return {
    units,
    cases,
    pallets,
    unitsPerCase: checkEven(sizesOf(cases), "case", errors, fixed?.unitsPerCase),
    casesPerPallet: checkEven(sizesOf(pallets), "pallet", errors, fixed?.casesPerPallet),
  };
}

function duplicates(lines: LevelledLine[], errors: LineError[]): void {
  const first = new Map<string, number>();
  for (const l of lines) {
    if (!l.code) continue;
    const seen = first.get(l.code.normalised);
    if (seen === undefined) first.set(l.code.normalised, l.line);
    else errors.push({ line: l.line, reason: "DUPLICATE_IN_UPLOAD", detail: `same code as line ${seen}` });
  }
}

/**
 * Groups of what must stay together in a run (a pallet with its cases and units, else a case with its units, else
 * a unit), as their codes in contract order.
 */
function groups(p: Packing): { units: LevelledLine[]; cases: Container[]; pallets: Container[] }[] {
  const unitsByLine = new Map(p.units.map((u) => [u.line, u]));
  const caseByLine = new Map(p.cases.map((c) => [c.line, c]));
  const unitsOf = (c: Container) => c.contents.map((line) => unitsByLine.get(line)!);
  if (p.pallets.length > 0)
    return p.pallets.map((pallet) => {
      const cases = pallet.contents.map((line) => caseByLine.get(line)!);
      return { units: cases.flatMap(unitsOf), cases, pallets: [pallet] };
    });
  if (p.cases.length > 0) return p.cases.map((c) => ({ units: unitsOf(c), cases: [c], pallets: [] }));
  return p.units.map((u) => ({ units: [u], cases: [], pallets: [] }));
}

/**
 * Cuts `groupCount` groups of `perGroup` codes into as few runs as the limit allows, spread evenly so that no run
 * is a small remainder. Throws a RangeError when one group alone is above the limit.
 */
export function groupsPerRun(groupCount: number, perGroup: number, maxRunCodes: number, what: string): number {
  const fit = Math.floor(maxRunCodes / perGroup);
  if (fit === 0)
    throw new RangeError(
      `one ${what} with its contents is ${perGroup} codes, above the ledger's limit of ${maxRunCodes} codes a run`,
    );
  return Math.ceil(groupCount / Math.ceil(groupCount / fit));
}

/** Splits the groups into runs (see {@link groupsPerRun}), or as many a run as the context fixes. */
function splitRuns(p: Packing, context: PlanContext): PlannedRun[] {
  const all = groups(p);
  const perGroup = all[0]!.units.length + all[0]!.cases.length + all[0]!.pallets.length;
  const what = p.pallets.length > 0 ? "pallet" : "case";
  const perRun = context.fixed?.groupsPerRun ?? groupsPerRun(all.length, perGroup, context.maxRunCodes, what);
  const runs: PlannedRun[] = [];
  for (let start = 0; start < all.length; start += perRun) {
    const slice = all.slice(start, start + perRun);
    const units = slice.flatMap((g) => g.units);
    const containers = [...slice.flatMap((g) => g.cases), ...slice.flatMap((g) => g.pallets)];
    const shape: RunShape = { unitCount: units.length, unitsPerCase: p.unitsPerCase, casesPerPallet: p.casesPerPallet };
    // Planned only when every line was read: every code is there.
    const normalised = [...units.map((u) => u.code!.normalised), ...containers.map((c) => c.code!.normalised)];
    runs.push({
      index: runs.length,
      shape,
      lines: [...units.map((u) => u.line), ...containers.map((c) => c.line)],
      payload: buildRun(normalised, shape, context.domain),
    });
  }
  return runs;
}

/** Checks every line and, when all are good, plans the runs. */
export function planCommission(input: UploadLine[], context: PlanContext, earlier: LineError[] = []): PlanOutcome {
  const errors = [...earlier];
  const lines: LevelledLine[] = [];
  for (const l of input) {
    const read = checkLine(l, context, errors);
    if (read) lines.push(read);
  }
  duplicates(lines, errors);
  // A line of unknown level leaves the packing unknown: its consequences would only repeat that line's error.
  const levelsKnown = !errors.some((e) => e.reason === "BAD_LEVEL" || e.reason === "BAD_LINE");
  const packing = pack(lines, levelsKnown ? errors : [], context.fixed);
  if (lines.length === 0 && errors.length === 0) errors.push({ line: 0, reason: "BAD_LINE", detail: "no codes sent" });
  if (errors.length > 0) {
    errors.sort((a, b) => a.line - b.line);
    return {
      ok: false,
      errors,
      detail: `${errors.length} of ${input.length + earlier.length} lines are not valid`,
      readable: lines.flatMap((l) => (l.code ? [{ line: l.line, normalised: l.code.normalised }] : [])),
    };
  }
  let runs: PlannedRun[];
  try {
    runs = splitRuns(packing, context);
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, errors: [], detail: err.message, readable: [] };
    throw err;
  }
  return {
    ok: true,
    plan: {
      unitsPerCase: packing.unitsPerCase,
      casesPerPallet: packing.casesPerPallet,
      units: packing.units.length,
      cases: packing.cases.length,
      pallets: packing.pallets.length,
      codes: lines.length,
      runs,
    },
  };
}

/**
 * A run's codes (contract order: units, then cases, then pallets) as a packing line lists them: each case's units
 * then the case, each pallet's cases then the pallet. The inverse of what {@link planCommission} reads.
 */
export function packingOrder<T>(codes: readonly T[], shape: RunShape): { code: T; level: PackLevel }[] {
  const { unitCount, unitsPerCase, casesPerPallet } = shape;
  const out: { code: T; level: PackLevel }[] = [];
  const units = (from: number, to: number) => {
    for (let u = from; u < Math.min(to, unitCount); u++) out.push({ code: codes[u]!, level: "unit" });
  };
  if (unitsPerCase === 0) {
    units(0, unitCount);
    return out;
  }
  const cases = Math.ceil(unitCount / unitsPerCase);
  const pallets = casesPerPallet === 0 ? 0 : Math.ceil(cases / casesPerPallet);
  const caseWithUnits = (c: number) => {
    units(c * unitsPerCase, (c + 1) * unitsPerCase);
    out.push({ code: codes[unitCount + c]!, level: "case" });
  };
  if (pallets === 0) for (let c = 0; c < cases; c++) caseWithUnits(c);
  for (let p = 0; p < pallets; p++) {
    for (let c = p * casesPerPallet; c < Math.min((p + 1) * casesPerPallet, cases); c++) caseWithUnits(c);
    out.push({ code: codes[unitCount + cases + p]!, level: "pallet" });
  }
  return out;
}
