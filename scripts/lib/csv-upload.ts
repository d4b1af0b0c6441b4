/**
 * Reads an operator's CSV of codes into the API's upload lines (backend/chain/commission-plan.ts `readCsv`), in
 * any of three layouts, line numbers always counting every physical line of the file:
 * - one code per line: loose units;
 * - `code,level` (unit, case or pallet), in packing order, as the API takes it;
 * - `code,level,parent` with that header line: the parent column names the case of a unit or the pallet of a
 *   case (empty when loose), and is checked against the packing order the ledger records.
 */
import { readCsvRow, type LineError, type UploadLine } from "../../backend/chain/commission-plan";
import { tryParseCode } from "../../backend/codes/parse";

/** A bad line: the plan's reasons, and BAD_PARENT for a parent column that contradicts the packing order. */
export type CsvLineError = Omit<LineError, "reason"> & { reason: LineError["reason"] | "BAD_PARENT" };

const PARENT_HEADER = /^\s*"?code"?\s*,\s*"?level"?\s*,\s*"?parent"?\s*$/i;

/** Whether the file's first line is the `code,level,parent` header (a BOM before it allowed). */
export function hasParentColumn(firstRow: string): boolean {
  return PARENT_HEADER.test(firstRow.replace(/^\uFEFF/, ""));
}

/** One physical line of an operator's CSV, read as the API reads an upload line (see {@link readCodesCsv}). */
export function readCodesRow(
  row: string,
  line: number,
  withParents: boolean,
): { read: UploadLine | CsvLineError | null; parent: string } {
  if (line === 1) row = row.replace(/^\uFEFF/, "");
  if (line === 1 && withParents) return { read: null, parent: "" };
  if (row.trim() === "") return { read: null, parent: "" };
  if (withParents) {
    const comma = row.lastIndexOf(",");
    if (comma === -1) return { read: readCsvRow(row, line), parent: "" };
    const parent = row
      .slice(comma + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    return { read: readCsvRow(row.slice(0, comma), line), parent };
  }
  return { read: readCsvRow(row.includes(",") ? row : `${row},unit`, line), parent: "" };
}

export function readCodesCsv(text: string): {
  lines: UploadLine[];
  errors: CsvLineError[];
  parents: Map<number, string> | null;
} {
  const rows = text.split(/\r?\n/);
  const parents = hasParentColumn(rows[0] ?? "") ? new Map<number, string>() : null;
  const lines: UploadLine[] = [];
  const errors: CsvLineError[] = [];
  rows.forEach((row, i) => {
    const { read, parent } = readCodesRow(row, i + 1, parents !== null);
    if (read && "reason" in read) errors.push(read);
    else if (read) {
      lines.push(read);
      parents?.set(read.line, parent);
    }
  });
  return { lines, errors, parents };
}

/** Normalised form of a code as written, for comparing a parent column with a container's own line. */
function normalisedOrRaw(code: string): string {
  const parsed = tryParseCode(code);
  return parsed.ok ? parsed.code.normalised : code.trim();
}

/**
 * Checks each parent column against the container that follows in packing order, one line at a time: a unit's case
 * is the next case line, a case's pallet the next pallet line (a unit's parent may also be a pallet when cases are
 * not listed). It holds only the lines still waiting for their container.
 */
export class ParentCheck {
  private pending: { line: number; level: string; parent: string }[] = [];

  constructor(private readonly errors: { push(e: CsvLineError): unknown }) {}

  add(l: UploadLine, parent: string): void {
    const level = l.level.trim().toLowerCase();
    if (level === "case") this.close("case", l.code, l.line);
    if (level === "pallet") this.close("pallet", l.code, l.line);
    this.pending.push({ line: l.line, level, parent });
  }

  /** What is still open at the end is loose: its parent column must be empty. */
  finish(): void {
    for (const p of this.pending)
      if (p.parent !== "")
        this.errors.push({
          line: p.line,
          reason: "BAD_PARENT",
          detail: `parent ${p.parent}, but no container follows it`,
        });
    this.pending = [];
  }

  private close(level: "case" | "pallet", code: string, at: number): void {
    const own = normalisedOrRaw(code);
    const still: typeof this.pending = [];
    const closed: CsvLineError[] = [];
    for (const p of this.pending) {
      const waits = level === "case" ? p.level === "unit" : p.level === "case";
      if (!waits) {
        still.push(p);
        continue;
      }
      const named = p.parent === "" ? "" : normalisedOrRaw(p.parent);
      if (named !== own)
        closed.push({
          line: p.line,
          reason: "BAD_PARENT",
          detail: `parent ${p.parent || "(none)"}, but the ${level} packed after it is line ${at} (${code})`,
        });
    }
    this.pending = still;
    for (const e of closed) this.errors.push(e);
  }
}

/** Checks a whole file's parent columns (see {@link ParentCheck}); the errors in line order. */
export function checkParents(lines: readonly UploadLine[], parents: Map<number, string>): CsvLineError[] {
  const errors: CsvLineError[] = [];
  const check = new ParentCheck(errors);
  for (const l of lines) check.add(l, parents.get(l.line) ?? "");
  check.finish();
  return errors.sort((a, b) => a.line - b.line);
}
