/**
 * The streamed passes of `commission:csv` (scripts/lib/csv-stream.ts) on files written to disk, no chain: the
 * duplicate check reports only real duplicates even when every prefix collides, bad lines are reported by number
 * across a file of hundreds of thousands of lines, and the windows' runs are those of a plan of the whole file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import fc from "fast-check";
import { packingOrder, planCommission, type PlanContext } from "../backend/chain/commission-plan";
import { demoRunCodes } from "../backend/chain/runs";
import { DEFAULT_CODE_HASH_DOMAIN } from "../backend/codes/parse";
import type { RunShape } from "../backend/codes/run";
import { checkCsvFile, fnv1a64, planCsvWindows, type CheckedFile } from "../scripts/lib/csv-stream";
import { readCodesCsv, type CsvLineError } from "../scripts/lib/csv-upload";

const PRODUCT = "8612345";
const context: PlanContext = {
  productCode: PRODUCT,
  prefixes: ["CN:861234"],
  maxRunCodes: 50,
  domain: DEFAULT_CODE_HASH_DOMAIN,
};
const unitCodes = (n: number, base: number) =>
  demoRunCodes(PRODUCT, { unitCount: n, unitsPerCase: 0, casesPerPallet: 0 }, base).map((c) => c.slice(3));

describe("operators: the CSV read as a stream", function () {
  this.timeout(120_000);
  let dir: string;
  const write = (name: string, rows: string[]) => {
    const file = path.join(dir, name);
    writeFileSync(file, rows.join("\n") + "\n");
    return file;
  };
  const check = async (file: string, o: { prefixOf?: (s: string) => bigint; ctx?: PlanContext } = {}) => {
    const errors: CsvLineError[] = [];
    const checked = await checkCsvFile(file, o.ctx ?? context, {
      onError: (e) => errors.push(e),
      prefixOf: o.prefixOf,
    });
    return { checked, errors };
  };
  const runsOf = async (file: string, checked: CheckedFile, windowRuns: number, ctx = context) => {
    const runs = [];
    for await (const run of planCsvWindows(file, ctx, {
      layout: checked.layout!,
      windowRuns,
      stamp: checked.stamp,
      isDone: () => false,
    }))
      runs.push(run);
    return runs;
  };

  before(() => (dir = mkdtempSync(path.join(tmpdir(), "csv-stream-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("computes 64-bit FNV-1a exactly (checked against BigInt arithmetic)", function () {
    const reference = (s: string) => {
      let h = 0xcbf29ce484222325n;
      for (let i = 0; i < s.length; i++) h = ((h ^ BigInt(s.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
      return h;
    };
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => fnv1a64(s) === reference(s)));
    expect(fnv1a64("")).to.equal(0xcbf29ce484222325n);
  });

  it("reports no false duplicate when every code's prefix collides, and each real one with its first line", async function () {
    const codes = unitCodes(5_000, 1);
    const distinct = write("distinct.csv", codes);
    const allCollide = () => 42n;
    const clean = await check(distinct, { prefixOf: allCollide });
    expect(clean.errors).to.deep.equal([]);
    expect(clean.checked).to.include({ codes: 5_000, runs: 100 });

    // Two prefixes only (by the code's last digit's parity), and two real duplicates among them.
    const rows = [...codes];
    rows[3_999] = codes[10]!; // line 4000 repeats line 11
    rows[4_999] = codes[2_000]!; // line 5000 repeats line 2001
    const twice = write("twice.csv", rows);
    const byParity = (s: string) => BigInt(s.charCodeAt(s.length - 1) % 2);
    for (const prefixOf of [allCollide, byParity, fnv1a64]) {
      const { checked, errors } = await check(twice, { prefixOf });
      expect(errors.map((e) => [e.line, e.reason, e.detail])).to.deep.equal([
        [4000, "DUPLICATE_IN_UPLOAD", "same code as line 11"],
        [5000, "DUPLICATE_IN_UPLOAD", "same code as line 2001"],
      ]);
      expect(checked.layout).to.equal(null);
    }
  });

  it("reports every bad line of a 300,000-line file by its number, as the API's plan does", async function () {
    const rows = unitCodes(300_000, 1);
    const bad = new Map<number, string>([
      [2, "86999990000000011111"], // another product
      [65_537, "86123"], // unreadable
      [131_073, ""], // blank: skipped, not an error
      [200_000, rows[0]!], // duplicate of line 1
      [299_999, "8612345000000001x234"],
      [300_000, "not a code at all"],
    ]);
    for (const [line, code] of bad) rows[line - 1] = code;
    const file = write("large.csv", rows);
    const { checked, errors } = await check(file, { ctx: { ...context, maxRunCodes: 28_000 } });
    expect(errors.map((e) => e.line)).to.deep.equal([2, 65_537, 299_999, 300_000, 200_000]);
    expect(errors[0]!.reason).to.equal("WRONG_PRODUCT");
    expect(errors[4]!.reason).to.equal("DUPLICATE_IN_UPLOAD");
    expect([...checked.badLines].sort((a, b) => a - b)).to.deep.equal([2, 65_537, 200_000, 299_999, 300_000]);
    // The same lines and reasons as the API's plan of the whole text.
    const whole = readCodesCsv(rows.join("\n"));
    const outcome = planCommission(whole.lines, { ...context, maxRunCodes: 28_000 }, whole.errors as never);
    expect(outcome.ok).to.equal(false);
    const api = (outcome as { errors: CsvLineError[] }).errors.map((e) => `${e.line}:${e.reason}`);
    expect(errors.map((e) => `${e.line}:${e.reason}`).sort()).to.deep.equal(api.sort());
  });

  it("reports a broken packing order with line numbers, after the line-local errors", async function () {
    const shape: RunShape = { unitCount: 60, unitsPerCase: 10, casesPerPallet: 2 };
    const packed = packingOrder(
      demoRunCodes(PRODUCT, shape, 7).map((c) => c.replace(/^(CN|X):/, "")),
      shape,
    );
    const rows = ["code,level", ...packed.map((l) => `${l.code},${l.level}`)];
    rows.splice(15, 1); // line 16, a unit of the second case: that case (now line 22) holds 9
    rows[30] = "86123,unit"; // line 31: no pack code, its place in the packing kept
    const file = write("uneven.csv", rows);
    const { errors } = await check(file);
    expect(errors.map((e) => [e.line, e.reason])).to.deep.equal([
      [31, "NOT_A_PACK_CODE"],
      [22, "UNEVEN_CASE"],
    ]);
  });

  it("plans, one window at a time, the very runs a plan of the whole file makes", async function () {
    const shapes: RunShape[] = [
      { unitCount: 470, unitsPerCase: 10, casesPerPallet: 2 }, // pallets of 23 codes: 2 a run, the last short
      { unitCount: 333, unitsPerCase: 7, casesPerPallet: 0 }, // cases of 8 codes, the last of 4 units
      { unitCount: 123, unitsPerCase: 0, casesPerPallet: 0 }, // loose units
    ];
    for (const shape of shapes) {
      const packed = packingOrder(
        demoRunCodes(PRODUCT, shape, 11).map((c) => c.replace(/^(CN|X):/, "")),
        shape,
      );
      const rows = ["code,level", ...packed.map((l) => `${l.code},${l.level}`)];
      const file = write("windows.csv", rows);
      const whole = readCodesCsv(rows.join("\n"));
      const outcome = planCommission(whole.lines, context);
      if (!outcome.ok) throw new Error(outcome.detail);
      const { checked, errors } = await check(file);
      expect(errors).to.deep.equal([]);
      expect(checked.runs).to.equal(outcome.plan.runs.length);
      for (const windowRuns of [1, 3, 1000]) {
        const runs = await runsOf(file, checked, windowRuns);
        expect(runs.map((r) => [r.index, r.payload.root, r.shape])).to.deep.equal(
          outcome.plan.runs.map((r) => [r.index, r.payload.root, r.shape]),
        );
      }
    }
  });

  it("numbers lines as the API does: CRLF, a BOM, blank lines, a stray CR inside a line, no final newline", async function () {
    const rows = unitCodes(12, 1);
    rows[4] = "86123"; // line 5 (line 6 below, after the blank first line)
    rows[7] = rows[7]!.slice(0, 9) + "\r" + rows[7]!.slice(9); // a stray CR: one bad line, not two
    const texts = {
      crlf: "\uFEFF" + ["", ...rows, "", ""].join("\r\n") + "\r\n",
      lf: ["", ...rows].join("\n"),
      mixed: ["", ...rows].map((r, i) => (i % 2 ? `${r}\r\n` : `${r}\n`)).join(""),
    };
    for (const [name, text] of Object.entries(texts)) {
      const file = path.join(dir, `${name}.csv`);
      writeFileSync(file, text);
      const { checked, errors } = await check(file);
      const whole = readCodesCsv(text);
      const outcome = planCommission(whole.lines, context, whole.errors as never);
      const api = outcome.ok ? [] : outcome.errors.map((e) => `${e.line}:${e.reason}`);
      expect(
        errors.map((e) => `${e.line}:${e.reason}`),
        name,
      ).to.deep.equal(api);
      expect(
        errors.map((e) => e.line),
        name,
      ).to.deep.equal([6, 9]);
      expect(checked.codes, name).to.equal(12);
    }
  });

  it("reports a line of megabytes by its number, held only in part, and numbers the next lines right", async function () {
    const rows = unitCodes(10, 1);
    rows[2] = "9".repeat(3_000_000) + ",unit,,,";
    const file = write("long-line.csv", rows);
    const { checked, errors } = await check(file);
    expect(errors.map((e) => [e.line, e.reason])).to.deep.equal([[3, "BAD_LINE"]]);
    expect(errors[0]!.detail).to.match(/^3000008 characters/);
    expect(checked.codes).to.equal(9);
  });

  it("reports a line of unknown level alone, not the packing errors it causes, as the API's plan does", async function () {
    const shape: RunShape = { unitCount: 30, unitsPerCase: 10, casesPerPallet: 0 };
    const packed = packingOrder(
      demoRunCodes(PRODUCT, shape, 9).map((c) => c.replace(/^(CN|X):/, "")),
      shape,
    );
    const caseAfter = (i: number) => packed.slice(i).find((l) => l.level === "case")!.code;
    const rows = [
      "code,level,parent",
      ...packed.map((l, i) => `${l.code},${l.level},${l.level === "unit" ? caseAfter(i) : ""}`),
    ];
    rows[3] = rows[3]!.split(",")[0]!; // line 4: a unit with no level column, so its case seems to hold 9
    const file = write("no-level.csv", rows);
    const { errors } = await check(file);
    const whole = readCodesCsv(rows.join("\n"));
    const outcome = planCommission(whole.lines, context, whole.errors as never);
    const api = outcome.ok ? [] : outcome.errors.map((e) => `${e.line}:${e.reason}`);
    expect(api).to.deep.equal(["4:BAD_LINE"]);
    expect(errors.map((e) => `${e.line}:${e.reason}`)).to.deep.equal(api);
  });

  it("refuses to go on planning a file changed after it was checked", async function () {
    const file = write("changing.csv", unitCodes(200, 1));
    const { checked } = await check(file);
    writeFileSync(file, unitCodes(201, 1).join("\n") + "\n");
    let refused: Error | null = null;
    try {
      await runsOf(file, checked, 1);
    } catch (err) {
      refused = err as Error;
    }
    expect(refused?.message).to.match(/changed since it was checked/);
  });
});
