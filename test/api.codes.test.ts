import { expect } from "chai";
import { call, codePath, startApi, type ApiHarness } from "./helpers/api";
import { expectMatchesSchema } from "./helpers/api-schemas";

type Scan = {
  verdict: string;
  known: boolean;
  status: string;
  statusReason?: string;
  alerts: string[];
  hints: string[];
  level: string | null;
  holder: { name: string } | null;
  custody: { event: string; via: string }[] | null;
  dispensing: { pharmacy: { name: string } | null; prescriptionHash: string | null; split: unknown } | null;
  settlement: { insurer: { name: string } | null; claimId: string | null } | null;
  product: { name: string; productCode: string } | null;
  batch: { lot: string; recalled: boolean } | null;
  contents: { units: number; byStatus: Record<string, number> } | null;
  inTransit: { to: { name: string } | null } | null;
  duplicates: number;
  alertIds: string[];
};

describe("API: scan-to-verify", function () {
  let h: ApiHarness;
  const scan = async (code: string, who: keyof ApiHarness["keys"] = "regulator") => {
    const reply = await call<Scan>(h, codePath(code), { key: h.keys[who] });
    expect(reply.status, reply.text).to.equal(200);
    expectMatchesSchema("get", "/v1/codes/{code}", reply);
    return reply.body;
  };

  before(async function () {
    h = await startApi();
  });
  after(async function () {
    await h?.close();
  });

  it("answers a unit in stock at its pharmacy: OK, active, with its custody trail", async function () {
    const r = await scan(h.s.codes.inPharmacyStock, "pharmacy");
    expect(r).to.deep.include({ verdict: "OK", known: true, status: "active", level: "unit", alerts: [], hints: [] });
    expect(r.holder!.name).to.equal("Pharmacy");
    expect(r.product!.name).to.equal("Amoxicillin 250mg");
    expect(r.batch!.lot).to.equal("LOT-A1");
    expect(r.custody!.map((c) => `${c.event}/${c.via}`)).to.deep.equal([
      "shipped/pallet",
      "received/pallet",
      "shipped/case",
      "received/case",
      "opened/case",
    ]);
  });

  it("names every problem: dispensed, settled, duplicate; the settling insurer sees the claim", async function () {
    const r = await scan(h.s.codes.dispensedAndSettled, "insurer");
    expect(r.verdict).to.equal("ALERT");
    expect(r.status).to.equal("dispensed");
    expect(r.alerts).to.include.members(["ALREADY_DISPENSED", "ALREADY_SETTLED", "DUPLICATE_CODE"]);
    expect(r.settlement!.claimId).to.equal(h.s.claimId);
    // The maker's own second run and the rival's copy in a run of its product (the every-event scenario).
    expect(r.duplicates).to.equal(2);
    expect(r.alertIds.length).to.equal(r.alerts.length);
    const other = await scan(h.s.codes.dispensedAndSettled, "otherInsurer");
    expect(other.settlement).to.deep.include({ insurer: null, claimId: null });
  });

  it("tells partially dispensed split packs, decommissioned units with their reason, recalls and expiry", async function () {
    const split = await scan(h.s.codes.partiallyDispensed, "pharmacy");
    expect(split.status).to.equal("partially_dispensed");
    expect(split.alerts).to.not.include("ALREADY_DISPENSED");
    expect(split.dispensing!.split).to.deep.equal({ dispensed: 6, packQuantity: 24 });
    const gone = await scan(h.s.codes.decommissioned);
    expect(gone).to.deep.include({ status: "damaged", statusReason: "damaged" });
    expect(gone.alerts).to.include("DECOMMISSIONED");
    const recalled = await scan(h.s.codes.recalled);
    expect(recalled).to.deep.include({ status: "recalled", verdict: "ALERT" });
    expect(recalled.alerts).to.deep.equal(["RECALLED"]);
    const expired = await scan(h.s.codes.expired);
    expect(expired).to.deep.include({ status: "expired" });
    expect(expired.alerts).to.deep.equal(["EXPIRED"]);
  });

  it("in transit: an alert for others, none for the recipient scanning it at goods receipt", async function () {
    const atReceipt = await scan(h.s.codes.inTransit, "distributor");
    expect(atReceipt).to.deep.include({ status: "in_transit", verdict: "OK", alerts: [] });
    expect(atReceipt.inTransit!.to!.name).to.equal("Distributor");
    const elsewhere = await scan(h.s.codes.inTransit, "pharmacy");
    expect(elsewhere.alerts).to.deep.equal(["IN_TRANSIT", "NOT_IN_YOUR_CUSTODY"]);
  });

  it("shows a pharmacy custody only of what it holds or held", async function () {
    const mine = await scan(h.s.codes.dispensedNotSettled, "pharmacy");
    expect(mine.holder!.name).to.equal("Pharmacy");
    expect(mine.dispensing!.pharmacy!.name).to.equal("Pharmacy");
    const theirs = await scan(h.s.codes.dispensedNotSettled, "otherPharmacy");
    // The other pharmacy held the first pallet later, but never this unit's case.
    expect(theirs.alerts).to.include.members(["ALREADY_DISPENSED", "NOT_IN_YOUR_CUSTODY"]);
    expect(theirs).to.deep.include({ holder: null, custody: null, inTransit: null });
    expect(theirs.dispensing).to.deep.include({ pharmacy: null, prescriptionHash: null });
    const atDistributor = await scan(h.s.codes.atDistributor, "pharmacy");
    expect(atDistributor.alerts).to.deep.equal(["NOT_IN_YOUR_CUSTODY"]);
    expect(atDistributor.custody).to.equal(null);
    const regulator = await scan(h.s.codes.atDistributor, "regulator");
    expect(regulator.holder!.name).to.equal("Distributor");
  });

  it("answers an unknown code with 200 UNKNOWN and raises an alert", async function () {
    const r = await scan(h.s.codes.unknown, "pharmacy");
    expect(r).to.deep.include({ verdict: "UNKNOWN", known: false, status: "unknown", product: null, alerts: [] });
    expect(r.alertIds).to.have.length(1);
    const alert = await h.ctx.alerts.get(r.alertIds[0]!);
    expect(alert).to.deep.include({ reason: "UNKNOWN_CODE", source: "scan" });
  });

  it("resolves a code only to runs of the product it names; a copy elsewhere is a DUPLICATE_CODE", async function () {
    const only = await scan(h.s.codes.onlyInOtherProduct);
    expect(only).to.deep.include({ verdict: "UNKNOWN", known: false, alerts: ["DUPLICATE_CODE"], duplicates: 1 });
    const first = await scan(h.s.codes.otherProductFirst);
    expect(first).to.deep.include({ known: true, verdict: "ALERT", alerts: ["DUPLICATE_CODE"], duplicates: 1 });
    expect(first.product!.productCode).to.equal("8612345");
  });

  it("answers a case or a pallet with its contents' counts by status", async function () {
    const c = await scan(h.s.codes.case0);
    expect(c.level).to.equal("case");
    expect(c.contents!.units).to.equal(10);
    expect(c.contents!.byStatus).to.deep.equal({ dispensed: 2, partially_dispensed: 1, active: 7 });
    const p = await scan(h.s.codes.pallet0);
    expect(p.contents!.units).to.equal(20);
    expect(p.contents!.byStatus).to.deep.equal({ dispensed: 3, partially_dispensed: 1, decommissioned: 1, active: 15 });
    const moving = await scan(h.s.codes.pallet1);
    expect(moving.contents!.byStatus).to.deep.equal({ in_transit: 20 });
  });

  it("reads GS1 codes and hints at a CAPS-LOCK case swap without matching it", async function () {
    const gs1 = await scan(h.s.codes.gs1);
    expect(gs1).to.deep.include({ verdict: "OK", known: true });
    const swapped = await scan(h.s.codes.gs1CaseSwapped);
    expect(swapped).to.deep.include({ verdict: "UNKNOWN", known: false });
    expect(swapped.hints).to.include("CASE_SWAPPED_CODE_KNOWN");
  });

  it("hints at Chinese mis-scans: a 19-digit code, a letter in a 20-character code", async function () {
    const short = await scan(h.s.codes.inPharmacyStock.slice(0, 19));
    expect(short).to.deep.include({ verdict: "UNKNOWN", hints: ["LENGTH_19_EXPECTED_20"] });
    const letter = await scan(h.s.codes.inPharmacyStock.slice(0, 10) + "O" + h.s.codes.inPharmacyStock.slice(11));
    expect(letter.hints).to.deep.equal(["LETTER_IN_NUMERIC_CODE"]);
    const notEight = await scan("71234567890123456789");
    expect(notEight).to.deep.include({ verdict: "UNKNOWN", hints: ["CHINESE_CODE_PREFIX_NOT_8"] });
    const fullWidth = await scan(
      h.s.codes.inPharmacyStock.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d))),
    );
    expect(fullWidth).to.deep.include({ verdict: "OK", known: true });
  });

  it("refuses what it cannot read with a 400 problem naming what is wrong", async function () {
    for (const [code, says] of [
      ["01" + "04012345678902" + "21X", "check digit"],
      ["01" + "04012345678901" + "21" + "x".repeat(21), "longer than"],
      ["]d20104012345678901" + "99abc", "AI"],
    ] as const) {
      const r = await call<{ type: string; detail: string; field: string }>(h, codePath(code), {
        key: h.keys.pharmacy,
      });
      expect(r.status, code).to.equal(400);
      expect(r.headers.get("content-type")).to.match(/^application\/problem\+json/);
      expect(r.body.type).to.equal("urn:drugtrace:problem:invalid-code");
      expect(r.body.detail).to.include(says);
      expect(r.body.field).to.equal("code");
    }
  });

  it("verifies a carton: one result per code, in order, bad codes as results with their error", async function () {
    const codes = [h.s.codes.inPharmacyStock, "not a code\u0001", h.s.codes.unknown, h.s.codes.recalled];
    const r = await call<{ results: (Scan & { code: string; error?: { type: string } })[] }>(h, "/v1/codes/verify", {
      key: h.keys.pharmacy,
      body: { codes },
    });
    expect(r.status, r.text).to.equal(200);
    expectMatchesSchema("post", "/v1/codes/verify", r);
    expect(r.body.results).to.have.length(4);
    expect(r.body.results[0]!.verdict).to.equal("OK");
    expect(r.body.results[1]!.error!.type).to.equal("urn:drugtrace:problem:invalid-code");
    expect(r.body.results[2]!.verdict).to.equal("UNKNOWN");
    expect(r.body.results[3]!.alerts).to.include("RECALLED");
  });

  it("gives the patient a public check with no commercial field and an NHSA-style sale count", async function () {
    const keys = ["code", "genuine", "product", "batch", "expired", "recalled", "sales", "hints"].sort();
    const sold = await call<Record<string, unknown>>(h, codePath(h.s.codes.dispensedNotSettled, "/v1/public/codes/"));
    expect(sold.status).to.equal(200);
    expectMatchesSchema("get", "/v1/public/codes/{code}", sold);
    expect(Object.keys(sold.body).sort()).to.deep.equal(keys);
    expect(Object.keys(sold.body.product as object).sort()).to.deep.equal([
      "approvalNumber",
      "manufacturer",
      "name",
      "packageSpec",
    ]);
    expect(Object.keys(sold.body.batch as object).sort()).to.deep.equal(["expiry", "lot"]);
    // Two runs hold this code: the copy makes it not genuine.
    expect(sold.body).to.deep.include({ genuine: false, sales: "one sale" });
    const stock = await call(h, codePath(h.s.codes.inPharmacyStock, "/v1/public/codes/"));
    expect(stock.body).to.deep.include({ genuine: true, sales: "no sale", recalled: false, expired: false });
    const unknown = await call(h, codePath(h.s.codes.unknown, "/v1/public/codes/"));
    expect(unknown.body).to.deep.include({ genuine: false, product: null, sales: "no sale" });
    for (const field of ["holder", "custody", "dispensing", "settlement", "claimId", "alertIds", "contents"])
      expect(sold.text).to.not.include(`"${field}"`);
  });

  it("counts verdicts in /metrics", async function () {
    const r = await call(h, "/metrics");
    expect(r.status).to.equal(200);
    expect(r.text).to.match(/scan_verdicts_total\{route="\/v1\/codes\/\{code\}",verdict="OK"\} \d+/);
    expect(r.text).to.match(/http_request_duration_seconds_bucket\{.*route="\/v1\/codes\/\{code\}"/);
  });
});
