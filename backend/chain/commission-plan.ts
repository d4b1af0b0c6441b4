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
 * Reads `code,level` lines (a header line `code,level` and blank lines are skipped; line numbers count every
 * physical line). The level follows the last comma, so a code may itself hold commas.
 */
export function readCsv(text: string): { lines: UploadLine[]; errors: LineError[] } {
  const lines: UploadLine[] = [];
  const errors: LineError[] = [];
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  rows.forEach((row, i) => {
    const line = i + 1;
    if (row.trim() === "" || (line === 1 && CSV_HEADER.test(row))) return;
    const comma = row.lastIndexOf(",");
    if (comma === -1) {
      errors.push({ line, reason: "BAD_LINE", detail: "expected `code,level` (unit, case or pallet)" });
      return;
    }
    lines.push({ line, code: unquote(row.slice(0, comma)), level: unquote(row.slice(comma + 1)) });
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
type LevelledLine = { line: number; level: PackLevel; code: ParsedCode | null };

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

function readLine(input: UploadLine, context: PlanContext, errors: LineError[]): LevelledLine | null {
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

interface Container {
  line: number;
  code: ParsedCode | null;
  /** Lines of what it holds (units of a case, cases of a pallet), in packing order. */
  contents: number[];
}

interface Packing {
  units: LevelledLine[];
  cases: Container[];
  pallets: Container[];
  unitsPerCase: number;
  casesPerPallet: number;
}

/**
 * Aggregation is positional: every case (pallet) holds as many as the others, only the last fewer. The size is the
 * most common one (the larger on a tie), so that a short case is the one reported, wherever it is.
 */
function checkEven(containers: Container[], level: "case" | "pallet", errors: LineError[]): number {
  const counts = new Map<number, number>();
  for (const c of containers) counts.set(c.contents.length, (counts.get(c.contents.length) ?? 0) + 1);
  let size = 0;
  for (const [s, n] of counts) if (n > (counts.get(size) ?? 0) || (n === counts.get(size) && s > size)) size = s;
  containers.forEach((c, i) => {
    const last = i === containers.length - 1;
    if (c.contents.length === size || (last && c.contents.length < size)) return;
    const holds = level === "case" ? "units" : "cases";
    errors.push({
      line: c.line,
      reason: level === "case" ? "UNEVEN_CASE" : "UNEVEN_PALLET",
      detail: `${level} holds ${c.contents.length} ${holds}, the others ${size}: every ${level} but the last must hold the same`,
    });
  });
  return size;
}

/** Rebuilds the packing from the lines' order, reporting what positional aggregation cannot express. */
function pack(lines: LevelledLine[], errors: LineError[]): Packing {
  const units: LevelledLine[] = [];
  const cases: Container[] = [];
  const pallets: Container[] = [];
  let openUnits: number[] = [];
  let openCases: number[] = [];
  for (const l of lines) {
    if (l.level === "unit") {
      units.push(l);
      openUnits.push(l.line);
    } else if (l.level === "case") {
      if (openUnits.length === 0)
        errors.push({ line: l.line, reason: "EMPTY_CONTAINER", detail: "case line with no unit lines before it" });
      cases.push({ line: l.line, code: l.code, contents: openUnits });
      openCases.push(cases.length - 1);
      openUnits = [];
    } else {
      if (openCases.length === 0)
        errors.push({ line: l.line, reason: "EMPTY_CONTAINER", detail: "pallet line with no case lines before it" });
      if (openUnits.length > 0)
        errors.push({
          line: openUnits[0]!,
          reason: "NOT_IN_CASE",
          detail: `${openUnits.length} unit lines before the pallet at line ${l.line} end with no case line`,
        });
      pallets.push({ line: l.line, code: l.code, contents: openCases.map((c) => cases[c]!.line) });
      openCases = [];
      openUnits = [];
    }
  }
  if (cases.length > 0 && openUnits.length > 0)
    errors.push({
      line: openUnits[0]!,
      reason: "NOT_IN_CASE",
      detail: `the last ${openUnits.length} unit lines end with no case line, while the batch is cased`,
    });
  if (pallets.length > 0 && openCases.length > 0)
    errors.push({
      line: cases[openCases[0]!]!.line,
      reason: "NOT_ON_PALLET",
      detail: `the last ${openCases.length} cases end with no pallet line, while the batch is palletised`,
    });
  return {
    units,
    cases,
    pallets,
    unitsPerCase: checkEven(cases, "case", errors),
    casesPerPallet: checkEven(pallets, "pallet", errors),
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
 * Splits the groups into as few runs as the limit allows, spread evenly so that no run is a small remainder.
 * Throws when one group alone is above the limit.
 */
function splitRuns(p: Packing, context: PlanContext): PlannedRun[] {
  const all = groups(p);
  const perGroup = all[0]!.units.length + all[0]!.cases.length + all[0]!.pallets.length;
  const fit = Math.floor(context.maxRunCodes / perGroup);
  if (fit === 0) {
    const what = p.pallets.length > 0 ? "pallet" : "case";
    throw new RangeError(
      `one ${what} with its contents is ${perGroup} codes, above the ledger's limit of ${context.maxRunCodes} codes a run`,
    );
  }
  const runCount = Math.ceil(all.length / fit);
  const perRun = Math.ceil(all.length / runCount);
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
    const read = readLine(l, context, errors);
    if (read) lines.push(read);
  }
  duplicates(lines, errors);
  // A line of unknown level leaves the packing unknown: its consequences would only repeat that line's error.
  const levelsKnown = !errors.some((e) => e.reason === "BAD_LEVEL" || e.reason === "BAD_LINE");
  const packing = pack(lines, levelsKnown ? errors : []);
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
