/**
 * Reads an operator's CSV of codes into the API's upload lines (backend/chain/commission-plan.ts `readCsv`), in
 * any of three layouts, line numbers always counting every physical line of the file:
 * - one code per line: loose units;
 * - `code,level` (unit, case or pallet), in packing order, as the API takes it;
 * - `code,level,parent` with that header line: the parent column names the case of a unit or the pallet of a
 *   case (empty when loose), and is checked against the packing order the ledger records.
 */
import { readCsv, type LineError, type UploadLine } from "../../backend/chain/commission-plan";
import { tryParseCode } from "../../backend/codes/parse";

/** A bad line: the plan's reasons, and BAD_PARENT for a parent column that contradicts the packing order. */
export type CsvLineError = Omit<LineError, "reason"> & { reason: LineError["reason"] | "BAD_PARENT" };

const PARENT_HEADER = /^\s*"?code"?\s*,\s*"?level"?\s*,\s*"?parent"?\s*$/i;

export function readCodesCsv(text: string): {
  lines: UploadLine[];
  errors: CsvLineError[];
  parents: Map<number, string> | null;
} {
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const parents = PARENT_HEADER.test(rows[0] ?? "") ? new Map<number, string>() : null;
  const asApiRows = rows.map((row, i) => {
    if (i === 0 && parents) return "code,level";
    if (row.trim() === "") return row;
    if (parents) {
      const comma = row.lastIndexOf(",");
      if (comma === -1) return row; // readCsv reports it
      parents.set(
        i + 1,
        row
          .slice(comma + 1)
          .trim()
          .replace(/^"(.*)"$/, "$1"),
      );
      return row.slice(0, comma);
    }
    return row.includes(",") ? row : `${row},unit`;
  });
  const { lines, errors } = readCsv(asApiRows.join("\n"));
  return { lines, errors, parents };
}

/** Normalised form of a code as written, for comparing a parent column with a container's own line. */
function normalisedOrRaw(code: string): string {
  const parsed = tryParseCode(code);
  return parsed.ok ? parsed.code.normalised : code.trim();
}

/**
 * Checks each parent column against the container that follows in packing order: a unit's case is the next case
 * line, a case's pallet the next pallet line (a unit's parent may also be a pallet when cases are not listed).
 */
export function checkParents(lines: readonly UploadLine[], parents: Map<number, string>): CsvLineError[] {
  const errors: CsvLineError[] = [];
  const pending: { line: number; level: string; parent: string }[] = [];
  const close = (level: "case" | "pallet", code: string | null, at: number | null) => {
    const own = code === null ? "" : normalisedOrRaw(code);
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i]!;
      const waits = level === "case" ? p.level === "unit" : p.level === "case";
      if (!waits) continue;
      const named = p.parent === "" ? "" : normalisedOrRaw(p.parent);
      if (named !== own)
        errors.push({
          line: p.line,
          reason: "BAD_PARENT",
          detail:
            at === null
              ? `parent ${p.parent} is not a ${level} line after it: the file ends with no ${level}`
              : `parent ${p.parent || "(none)"}, but the ${level} packed after it is line ${at} (${code})`,
        });
      pending.splice(i, 1);
    }
  };
  for (const l of lines) {
    const level = l.level.trim().toLowerCase();
    if (level === "case") close("case", l.code, l.line);
    if (level === "pallet") close("pallet", l.code, l.line);
    pending.push({ line: l.line, level, parent: parents.get(l.line) ?? "" });
  }
  // What is still open is loose: its parent column must be empty.
  for (const p of pending)
    if (p.parent !== "")
      errors.push({ line: p.line, reason: "BAD_PARENT", detail: `parent ${p.parent}, but no container follows it` });
  return errors.sort((a, b) => a.line - b.line);
}
