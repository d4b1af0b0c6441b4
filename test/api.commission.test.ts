import { expect } from "chai";
import {
  packingOrder,
  planCommission,
  prefixCovers,
  readCsv,
  type PlanContext,
  type UploadLine,
} from "../backend/chain/commission-plan";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { parseCode } from "../backend/codes/parse";
import { totalCodes, type RunShape } from "../backend/codes/run";

const PRODUCT = "8612345";
const context = (overrides: Partial<PlanContext> = {}): PlanContext => ({
  productCode: PRODUCT,
  prefixes: ["CN:861", "GS1:690123"],
  maxRunCodes: 28_000,
  domain: "drugtrace:v1",
  ...overrides,
});
/** As a scanner prints them: no `CN:` or `X:` in front. */
const scanned = (normalised: string) => normalised.replace(/^(CN|X):/, "");

/** Upload lines of demo codes in packing order. */
function upload(shape: RunShape, serialBase = 1): UploadLine[] {
  const codes = demoRunCodes(PRODUCT, shape, serialBase).map(scanned);
  return packingOrder(codes, shape).map((l, i) => ({ line: i + 1, code: l.code, level: l.level }));
}
const csvOf = (lines: UploadLine[]) => lines.map((l) => `${l.code},${l.level}`).join("\n");

describe("commissioning plan: reading, checking and splitting an upload", function () {
  it("reads packing order back into the runs the contract expects, codes in contract order", function () {
    const shape = { unitCount: 250, unitsPerCase: 10, casesPerPallet: 4 };
    const outcome = planCommission(upload(shape), context());
    expect(outcome.ok).to.equal(true);
    const plan = outcome.ok ? outcome.plan : undefined!;
    expect(plan).to.include({ unitsPerCase: 10, casesPerPallet: 4, units: 250, cases: 25, pallets: 7 });
    expect(plan.runs).to.have.length(1);
    const expected = buildRun(demoRunCodes(PRODUCT, shape, 1), shape);
    expect(plan.runs[0]!.payload.root).to.equal(expected.root);
    expect(plan.runs[0]!.payload.codes.equals(expected.codes)).to.equal(true);
    expect(plan.runs[0]!.shape).to.deep.equal(shape);
  });

  it("splits on pallet boundaries under maxRunCodes, evenly, keeping every run's aggregation positional", function () {
    // 20 pallets of 10 cases of 100: 1,011 codes a pallet; a limit of 5,000 fits 4 pallets a run -> 5 runs of 4.
    const shape = { unitCount: 20_000, unitsPerCase: 100, casesPerPallet: 10 };
    const outcome = planCommission(upload(shape), context({ maxRunCodes: 5_000 }));
    expect(outcome.ok).to.equal(true);
    const runs = outcome.ok ? outcome.plan.runs : [];
    expect(runs.map((r) => r.shape.unitCount)).to.deep.equal([4000, 4000, 4000, 4000, 4000]);
    for (const r of runs) {
      expect(totalCodes(r.shape)).to.be.at.most(5_000);
      expect(r.payload.hashes).to.have.length(totalCodes(r.shape));
    }
    // Run 2's first unit is pallet 4's first unit: line 4 * 1011 + 1.
    expect(runs[1]!.lines[0]).to.equal(4 * 1011 + 1);
    const all = runs.flatMap((r) => r.lines);
    expect(new Set(all).size).to.equal(20_000 + 200 + 20);
  });

  it("splits on case boundaries when nothing is palletised, and anywhere when nothing is cased", function () {
    const cased = planCommission(
      upload({ unitCount: 1000, unitsPerCase: 30, casesPerPallet: 0 }),
      context({ maxRunCodes: 100 }),
    );
    expect(cased.ok).to.equal(true);
    const runs = cased.ok ? cased.plan.runs : [];
    expect(runs.every((r) => r.shape.unitCount % 30 === 0 || r === runs.at(-1))).to.equal(true);
    expect(runs.reduce((n, r) => n + r.shape.unitCount, 0)).to.equal(1000);
    const loose = planCommission(
      upload({ unitCount: 250, unitsPerCase: 0, casesPerPallet: 0 }),
      context({ maxRunCodes: 100 }),
    );
    expect(loose.ok && loose.plan.runs.map((r) => r.shape.unitCount)).to.deep.equal([84, 84, 82]);
  });

  it("the last case and pallet may be partial; one in the middle may not", function () {
    const ok = planCommission(upload({ unitCount: 95, unitsPerCase: 10, casesPerPallet: 3 }), context());
    expect(ok.ok).to.equal(true);
    const lines = upload({ unitCount: 40, unitsPerCase: 10, casesPerPallet: 0 });
    lines.splice(3, 1); // a unit of the first case missing
    const bad = planCommission(lines, context());
    expect(bad.ok).to.equal(false);
    expect(!bad.ok && bad.errors).to.deep.equal([
      {
        line: 11,
        reason: "UNEVEN_CASE",
        detail: "case holds 9 units, the others 10: every case but the last must hold the same",
      },
    ]);
  });

  it("reports every bad line with its number, and plans nothing", function () {
    const lines = upload({ unitCount: 20, unitsPerCase: 10, casesPerPallet: 2 });
    lines[0] = { ...lines[0]!, code: "8612345000000001123" }; // 19 digits: reads as no product's code
    lines[1] = { ...lines[1]!, level: "box" };
    lines[2] = { ...lines[2]!, code: "86999990000000010000" }; // another product
    lines[4] = { ...lines[4]!, code: lines[3]!.code }; // the same code twice
    const outcome = planCommission(lines, context());
    expect(outcome.ok).to.equal(false);
    const errors = outcome.ok ? [] : outcome.errors;
    expect(errors.map((e) => [e.line, e.reason])).to.deep.equal([
      [1, "NOT_A_PACK_CODE"],
      [2, "BAD_LEVEL"],
      [3, "WRONG_PRODUCT"],
      [5, "DUPLICATE_IN_UPLOAD"],
    ]);
    expect(errors[0]!.hints).to.include("LENGTH_19_EXPECTED_20");
    expect(errors[3]!.detail).to.equal("same code as line 4");
  });

  it("refuses case and pallet codes under a prefix the manufacturer does not hold", function () {
    const lines = upload({ unitCount: 4, unitsPerCase: 2, casesPerPallet: 0 });
    lines[2] = { ...lines[2]!, code: `(00)${withCheck("36999990000000001")}` };
    const outcome = planCommission(lines, context());
    expect(!outcome.ok && outcome.errors.map((e) => [e.line, e.reason])).to.deep.equal([[3, "PREFIX_NOT_ASSIGNED"]]);
    const covered = planCommission(lines, context({ prefixes: ["CN:861", "GS1:69999"] }));
    expect(covered.ok).to.equal(true);
  });

  it("reports units that end in no case, cases on no pallet, and empty containers", function () {
    const lines = upload({ unitCount: 20, unitsPerCase: 10, casesPerPallet: 2 });
    const trailing = [...lines.slice(0, -1), { line: 99, code: "86123459999999990001", level: "unit" }];
    const outcome = planCommission(trailing, context());
    expect(!outcome.ok && outcome.errors.map((e) => e.reason)).to.include.members(["NOT_IN_CASE"]);
    const empty = planCommission([{ line: 1, code: "CASE-1", level: "case" }], context());
    expect(!empty.ok && empty.errors[0]).to.include({ line: 1, reason: "EMPTY_CONTAINER" });
  });

  it("refuses a pallet that alone is above the run limit", function () {
    const outcome = planCommission(
      upload({ unitCount: 300, unitsPerCase: 100, casesPerPallet: 3 }),
      context({ maxRunCodes: 200 }),
    );
    expect(outcome.ok).to.equal(false);
    expect(!outcome.ok && outcome.detail).to.match(
      /one pallet with its contents is 304 codes, above the ledger's limit of 200/,
    );
  });

  it("reads CSV: header, blank lines, CRLF, quotes and line numbers as the file has them", function () {
    const { lines, errors } = readCsv(
      '\uFEFFcode,level\r\n86123450000000011234,unit\r\n\r\n"CASE-1",Case\r\nno comma here\r\n',
    );
    expect(lines).to.deep.equal([
      { line: 2, code: "86123450000000011234", level: "unit" },
      { line: 4, code: "CASE-1", level: "Case" },
    ]);
    expect(errors).to.deep.equal([
      { line: 5, reason: "BAD_LINE", detail: "expected `code,level` (unit, case or pallet)" },
    ]);
    const round = readCsv(csvOf(upload({ unitCount: 30, unitsPerCase: 10, casesPerPallet: 0 })));
    expect(planCommission(round.lines, context()).ok).to.equal(true);
  });

  it("matches prefixes as the ledger does: CN by the drug code's start, GS1 after the indicator digit", function () {
    expect(prefixCovers("CN:861", parseCode("86123450000000011234"))).to.equal(true);
    expect(prefixCovers("CN:862", parseCode("86123450000000011234"))).to.equal(false);
    expect(prefixCovers("GS1:690123", parseCode(`(01)${withCheck("1690123400001")}(21)A1`))).to.equal(true);
    expect(prefixCovers("GS1:690123", parseCode(`(01)${withCheck("0691234000001")}(21)A1`))).to.equal(false);
  });
});

/** A GS1 key (GTIN-14 or SSCC body) with its mod-10 check digit appended. */
function withCheck(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum += Number(body[body.length - 1 - i]) * (i % 2 === 0 ? 3 : 1);
  return body + String((10 - (sum % 10)) % 10);
}
