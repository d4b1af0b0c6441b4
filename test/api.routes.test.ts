import { expect } from "chai";
import { ethers } from "hardhat";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import fixture3505 from "./fixtures/nhsa-3505.json";
import { call, GTIN, startApi, type ApiHarness, type KeyHolder, type Reply } from "./helpers/api";
import { expectMatchesSchema } from "./helpers/api-schemas";
import { DAY, idOf, newId, packRefs, settlePartialWithConsent, settleWithConsent, unitRef } from "./helpers/ledger";

/** What the routes answer, as far as these tests read it. */
type Problem = { type: string; status: number; detail: string; field?: string };
type Reason = {
  reason: string;
  detail: string;
  pattern?: {
    pattern: string;
    secondsBetween: number;
    earlier: { event: string; pharmacy: { name: string } | null; insurer?: { name: string } | null; claimRef?: string };
  };
  quantities?: Record<string, unknown>;
};
type Line = {
  line: number;
  code: string;
  ok: boolean;
  reasons: Reason[];
  pack: {
    lot: string | null;
    expiresOn: string | null;
    dispensed: { pharmacy: { name: string } | null } | null;
  } | null;
  alertId?: string;
};
type ClaimAnswer = { decision: string; claimId: string | null; pharmacy: { name: string }; lines: Line[] };
type Answer3505 = {
  infcode: number;
  inf_refmsgid: string;
  err_msg: string;
  output: {
    result: { retRslt: string; msgRslt: string };
    decision: string;
    claimId: string | null;
    selinfo: {
      fixmedins_bchno: string | null;
      ok: boolean;
      drugtracinfo: { drug_trac_codg: string; ok: boolean; reasons: Reason[] }[];
    }[];
  } | null;
};
type HistoryEntry = {
  at: string;
  by: { keyId: string; participantId: number | null; role: string };
  action: string;
  from?: string;
  to?: string;
  reason?: string;
  note?: string;
};
type Alert = {
  id: string;
  status: string;
  source: string;
  reason: string;
  participants: number[];
  manufacturerId: number | null;
  code: { raw: string; normalised: string | null };
  count: number;
  closeReason: string | null;
  history: HistoryEntry[];
};
type AlertPage = { alerts: Alert[]; next: string | null };
type Lms = {
  verificationTimestamp: string;
  responderGLN: string;
  data: { verified: boolean; verificationFailureReason?: string; additionalInfo?: string };
  corrUUID: string;
};

const PROBLEM = /^application\/problem\+json/;
const CORR_UUID = "5d0c9d64-2f6e-4bb3-9f1c-b3a1b0f3c001";
const REQ_GLN = "0614141000005";
/** Lots and serials of the GS1 packs commissioned for the verification tests; the second needs percent-encoding. */
const LMS_LOT = "LOT-V1";
const LMS_SERIAL = "SERV0001";
const ODD_LOT = "LOT/V%2";
const ODD_SERIAL = "Ab12/x%";

const yymmdd = (seconds: number) => new Date(seconds * 1000).toISOString().slice(2, 10).replace(/-/g, "");

describe("API: claim check, NHSA 3505, alerts and GS1 LMS over HTTP", function () {
  let h: ApiHarness;
  /** Unit codes of the scenario's first run by index, as scanners send them. */
  let u: (i: number) => string;
  let ids: Record<"pharmacy" | "otherPharmacy" | "maker" | "insurer" | "otherInsurer", number>;
  let lmsExpiresOn: number;

  const expectProblem = (r: Reply, status: number, slug: string) => {
    expect(r.status, r.text).to.equal(status);
    expect(r.headers.get("content-type")).to.match(PROBLEM);
    expect((r.body as Problem).type).to.equal(`urn:drugtrace:problem:${slug}`);
  };

  before(async function () {
    h = await startApi();
    const { ledger, maker, pharmacy, insurer, otherInsurer, runId } = h.s;
    const first = demoRunCodes("8612345", { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, h.s.serialBase);
    u = (i) => first[i]!.replace(/^CN:/, "");
    // The scenario's first four codes are commissioned twice (DUPLICATE_CODE on every claim of them): dispense
    // and settle fresh units of the pharmacy's case for claim lines with one reason each.
    const rx = ethers.id("rx-routes");
    await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 6), unitRef(runId, 7)]), rx);
    await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 8), 10, rx);
    await settleWithConsent(ledger, otherInsurer, pharmacy, ethers.id("OI-9"), packRefs([unitRef(runId, 7)]));
    await settlePartialWithConsent(ledger, insurer, pharmacy, ethers.id("C-9"), unitRef(runId, 8), 4);

    // GS1 packs for the verification routes, one with a lot and serial that travel percent-encoded.
    const now = (await ethers.provider.getBlock("latest"))!.timestamp;
    lmsExpiresOn = now + 400 * DAY;
    const productId = await ledger.productIdByCode(GTIN);
    for (const [lot, serial] of [
      [LMS_LOT, LMS_SERIAL],
      [ODD_LOT, ODD_SERIAL],
    ]) {
      const batchId = await newId(
        ledger.connect(maker).registerBatch(productId, lot!, now - DAY, lmsExpiresOn),
        "BatchRegistered",
        "batchId",
      );
      const shape = { unitCount: 1, unitsPerCase: 0, casesPerPallet: 0 };
      const run = buildRun([`GS1:01${GTIN}21${serial}`], shape);
      await ledger.connect(maker).commission(batchId, 1, 0, 0, run.codes, run.witness);
    }
    await h.reindex();
    ids = {
      pharmacy: Number(await idOf(ledger, h.s.pharmacy)),
      otherPharmacy: Number(await idOf(ledger, h.s.otherPharmacy)),
      maker: Number(await idOf(ledger, maker)),
      insurer: Number(await idOf(ledger, insurer)),
      otherInsurer: Number(await idOf(ledger, otherInsurer)),
    };
  });
  after(async function () {
    await h?.close();
  });

  describe("POST /v1/claims/check", function () {
    const ROUTE = "/v1/claims/check";
    const check = async (
      lines: { code: string; quantity?: number }[],
      options: { who?: KeyHolder; pharmacy?: string | number; claimRef?: string } = {},
    ) => {
      const reply = await call<ClaimAnswer>(h, ROUTE, {
        key: h.keys[options.who ?? "insurer"],
        body: { claimRef: options.claimRef ?? "C-300", pharmacy: options.pharmacy ?? h.s.pharmacy.address, lines },
      });
      expect(reply.status, reply.text).to.equal(200);
      expectMatchesSchema("post", ROUTE, reply);
      return reply.body;
    };
    const reasonsOf = (line: Line) => line.reasons.map((r) => r.reason);

    it("approves packs the pharmacy dispensed and nobody paid for, whole and split", async function () {
      const r = await check([{ code: u(15) }, { code: u(6) }, { code: u(8), quantity: 6 }]);
      expect(r.decision).to.equal("APPROVE");
      expect(r.pharmacy.name).to.equal("Pharmacy");
      expect(r.claimId).to.match(/^0x[0-9a-f]{64}$/);
      expect(r.lines.map((l) => [l.line, l.ok, l.reasons.length, l.alertId])).to.deep.equal([
        [0, true, 0, undefined],
        [1, true, 0, undefined],
        [2, true, 0, undefined],
      ]);
      expect(r.lines[0]!.pack!.dispensed!.pharmacy!.name).to.equal("Pharmacy");
      expect(r.lines[0]!.pack!.lot).to.equal("LOT-A1");
      // A regulator checks on nobody's behalf (no claim id); the pharmacy may be named by its participant id.
      const byRegulator = await check([{ code: u(15) }], { who: "regulator", pharmacy: ids.pharmacy });
      expect(byRegulator).to.deep.include({ decision: "APPROVE", claimId: null });
    });

    it("refuses each bad line with its reason, in a 200: unknown, invalid, undispensed, settled, repeated, split", async function () {
      const r = await check([
        { code: h.s.codes.unknown },
        { code: "0109506000134353" }, // a GTIN whose check digit is wrong
        { code: "not a code at all" },
        { code: h.s.codes.atDistributor },
        { code: u(7) },
        { code: u(6) },
        { code: ` ${u(6)} ` },
        { code: u(8), quantity: 7 },
      ]);
      expect(r.decision).to.equal("REJECT");
      expect(r.lines.map(reasonsOf)).to.deep.equal([
        ["UNKNOWN_CODE"],
        ["INVALID_CODE"],
        ["INVALID_CODE"],
        ["NOT_DISPENSED"],
        ["ALREADY_SETTLED"],
        [],
        ["REPEATED_IN_CLAIM"],
        ["SPLIT_QUANTITY_EXCEEDED"],
      ]);
      expect(r.lines[1]!.reasons[0]!.detail).to.contain("check digit");
      expect(r.lines[6]!.reasons[0]!.detail).to.contain("line 5");
      const settled = r.lines[4]!.reasons[0]!;
      expect(settled.detail).to.contain("OtherInsurer");
      expect(settled.pattern!.pattern).to.equal("SAME_INSTITUTION");
      expect(settled.pattern!.earlier).to.deep.include({ event: "settled", claimRef: ethers.id("OI-9") });
      expect(settled.pattern!.earlier.insurer!.name).to.equal("OtherInsurer");
      expect(settled.pattern!.earlier.pharmacy!.name).to.equal("Pharmacy");
      expect(settled.pattern!.secondsBetween).to.be.at.least(0);
      expect(r.lines[7]!.reasons[0]!.quantities).to.deep.include({
        requested: 7,
        dispensed: 10,
        settled: 4,
        available: 6,
        packQuantity: 24,
      });
    });

    it("names the dispensing pharmacy and the copied-code pattern when another pharmacy claims a pack", async function () {
      const r = await check([{ code: u(15) }], { pharmacy: h.s.otherPharmacy.address });
      const [reason] = r.lines[0]!.reasons;
      expect(reasonsOf(r.lines[0]!)).to.deep.equal(["DISPENSED_BY_OTHER_PHARMACY"]);
      expect(reason!.detail).to.contain("Pharmacy");
      expect(reason!.pattern!.pattern).to.equal("COPIED_CODE");
      expect(reason!.pattern!.earlier).to.deep.include({ event: "dispensed" });
      expect(reason!.pattern!.earlier.pharmacy!.name).to.equal("Pharmacy");
    });

    it("raises one alert per refused line, which the regulator can read", async function () {
      const r = await check([
        { code: h.s.codes.unknown },
        { code: "0109506000134353" },
        { code: h.s.codes.recalled },
        { code: u(7) },
        { code: u(15) },
        { code: u(15) },
      ]);
      const refused = r.lines.filter((l) => !l.ok);
      expect(refused).to.have.length(5);
      expect(r.lines[4]!.alertId).to.equal(undefined);
      for (const line of refused) {
        expect(line.alertId, JSON.stringify(line)).to.be.a("string");
        const alert = await call<Alert>(h, `/v1/alerts/${line.alertId}`, { key: h.keys.regulator });
        expect(alert.status, alert.text).to.equal(200);
        expectMatchesSchema("get", "/v1/alerts/{id}", alert);
        expect(alert.body).to.deep.include({ source: "claim", reason: line.reasons[0]!.reason, status: "new" });
        expect(alert.body.participants).to.include.members([ids.insurer, ids.pharmacy]);
      }
    });

    it("refuses callers other than insurers and regulators (403), and no key (401)", async function () {
      const body = { claimRef: "C-1", pharmacy: h.s.pharmacy.address, lines: [{ code: u(15) }] };
      for (const who of ["pharmacy", "maker", "distributor", "outsider"] as const)
        expectProblem(await call(h, ROUTE, { key: h.keys[who], body }), 403, "forbidden");
      const none = await call(h, ROUTE, { body });
      expectProblem(none, 401, "unauthorized");
      expect(none.headers.get("www-authenticate")).to.match(/^Bearer/);
      // A body the schema refuses (parsed early, for the prefetch) is still answered after the caller: 401, 403.
      const bad = { claimRef: "", pharmacy: "nobody", lines: [] };
      expectProblem(await call(h, ROUTE, { body: bad }), 401, "unauthorized");
      expectProblem(await call(h, ROUTE, { key: h.keys.pharmacy, body: bad }), 403, "forbidden");
      expectProblem(await call(h, ROUTE, { key: h.keys.insurer, body: bad }), 400, "validation");
    });

    it("refuses bad JSON, too many lines, an oversized body and a claim for a non-pharmacy (400, 413)", async function () {
      const key = h.keys.insurer;
      expectProblem(
        await call(h, ROUTE, { key, rawBody: '{"lines": [', headers: { "content-type": "application/json" } }),
        400,
        "invalid-json",
      );
      const lines = (n: number) => Array.from({ length: n }, () => ({ code: u(15) }));
      const tooMany = await call<Problem>(h, ROUTE, {
        key,
        body: { claimRef: "C-1", pharmacy: h.s.pharmacy.address, lines: lines(501) },
      });
      expectProblem(tooMany, 400, "validation");
      expect(tooMany.body.field).to.equal("lines");
      // Past API_BODY_LIMIT (256 kB): refused before it is parsed, whatever it holds.
      const huge = { claimRef: "C-1", pharmacy: h.s.pharmacy.address, lines: lines(1), memo: "x".repeat(300_000) };
      expectProblem(await call(h, ROUTE, { key, body: huge }), 413, "payload-too-large");
      const empty = await call<Problem>(h, ROUTE, {
        key,
        body: { claimRef: "C-1", pharmacy: ids.pharmacy, lines: [] },
      });
      expectProblem(empty, 400, "validation");
      const maker = await call<Problem>(h, ROUTE, {
        key,
        body: { claimRef: "C-1", pharmacy: h.s.maker.address, lines: lines(1) },
      });
      expectProblem(maker, 400, "validation");
      expect(maker.body).to.deep.include({ field: "pharmacy" });
      expect(maker.body.detail).to.contain("not a pharmacy");
      const nobody = await call<Problem>(h, ROUTE, { key, body: { claimRef: "C-1", pharmacy: 9999, lines: lines(1) } });
      expectProblem(nobody, 400, "validation");
    });
  });

  describe("POST /v1/nhsa/3505", function () {
    const ROUTE = "/v1/nhsa/3505";
    let expiry: string;

    before(async function () {
      const reply = await call<ClaimAnswer>(h, "/v1/claims/check", {
        key: h.keys.regulator,
        body: { claimRef: "probe", pharmacy: ids.pharmacy, lines: [{ code: u(15) }] },
      });
      expiry = reply.body.lines[0]!.pack!.expiresOn!.slice(0, 10);
    });

    type Row = Record<string, unknown>;
    const row = (codes: string[], overrides: Row = {}): Row => ({
      ...structuredClone(fixture3505.input.selinfo),
      manu_lotnum: "LOT-A1",
      expy_end: expiry,
      drugtracinfo: codes.map((c) => ({ drug_trac_codg: c })),
      ...overrides,
    });
    const envelope = (selinfo: Row | Row[], overrides: Row = {}) => ({
      ...structuredClone(fixture3505),
      input: { selinfo },
      ...overrides,
    });
    const sale = async (body: unknown, who: KeyHolder = "pharmacy", query = "") => {
      const reply = await call<Answer3505>(h, ROUTE + query, { key: h.keys[who], body });
      expect(reply.status, reply.text).to.equal(200);
      expectMatchesSchema("post", ROUTE, reply);
      return reply.body;
    };

    it("answers a pharmacy's sale record in the platform's envelope: infcode 0, a result per line and code", async function () {
      const answer = await sale(envelope(row([u(15), u(7)])));
      expect(answer).to.deep.include({ infcode: 0, inf_refmsgid: fixture3505.msgid, err_msg: "" });
      const output = answer.output!;
      expect(output).to.deep.include({ decision: "REJECT", claimId: null });
      expect(output.result.retRslt).to.equal("0");
      expect(output.result.msgRslt).to.equal(`${u(7)}: ALREADY_SETTLED`);
      expect(output.selinfo).to.have.length(1);
      expect(output.selinfo[0]).to.deep.include({ fixmedins_bchno: "PC20250701001", ok: false });
      expect(output.selinfo[0]!.drugtracinfo.map((d) => [d.drug_trac_codg, d.ok])).to.deep.equal([
        [u(15), true],
        [u(7), false],
      ]);

      // Sale lines sent as a list: one result per line, codes in order.
      const two = await sale(
        envelope([row([u(15)], { fixmedins_bchno: "B1" }), row([u(6)], { fixmedins_bchno: "B2" })]),
      );
      expect(two.output!.decision).to.equal("APPROVE");
      expect(two.output!.result).to.deep.equal({ retRslt: "1", msgRslt: "all pack codes may be settled" });
      expect(
        two.output!.selinfo.map((s) => [s.fixmedins_bchno, s.drugtracinfo.map((d) => d.drug_trac_codg)]),
      ).to.deep.equal([
        ["B1", [u(15)]],
        ["B2", [u(6)]],
      ]);
    });

    it("checks a split sale's doses and the record's lot and expiry", async function () {
      const answer = await sale(
        envelope(row([u(8)], { trdn_flag: "1", sel_retn_cnt: 7, manu_lotnum: "LOT-X", expy_end: "2020-01-01" })),
      );
      expect(answer.output!.selinfo[0]!.drugtracinfo[0]!.reasons.map((r) => r.reason)).to.deep.equal([
        "SPLIT_QUANTITY_EXCEEDED",
        "LOT_MISMATCH",
        "EXPIRY_MISMATCH",
      ]);
      const fits = await sale(envelope(row([u(8)], { trdn_flag: "1", sel_retn_cnt: 6 })));
      expect(fits.output!.decision).to.equal("APPROVE");
    });

    it("answers a malformed envelope with HTTP 200, infcode -1 and err_msg", async function () {
      const cases: [unknown, string][] = [
        [envelope(row([u(15)]), { infno: "3506" }), "infno"],
        [{ ...structuredClone(fixture3505), input: {} }, "input.selinfo"],
        [envelope(row([])), "drugtracinfo"],
        [envelope(row([u(15), u(6)], { trdn_flag: "1" })), "exactly one pack code"],
        [{}, "infno"],
        [[envelope(row([u(15)]))], "message"],
      ];
      for (const [body, mentions] of cases) {
        const answer = await sale(body);
        expect(answer.infcode, mentions).to.equal(-1);
        expect(answer.output, mentions).to.equal(null);
        expect(answer.err_msg, mentions).to.contain(mentions);
      }
      expect((await sale(envelope(row([]), { infno: "3506" }))).inf_refmsgid).to.equal(fixture3505.msgid);
      // The envelope takes a numeric msgid as text (text(30)); a failure names it the same way.
      const numeric = await sale(envelope(row([]), { msgid: 20250701001 }));
      expect(numeric).to.deep.include({ infcode: -1, inf_refmsgid: "20250701001" });
    });

    it("lets an insurer or a regulator name the pharmacy; a pharmacy checks only its own sales", async function () {
      const body = envelope(row([u(15)]));
      const insurer = await sale(body, "insurer", `?pharmacy=${h.s.pharmacy.address}`);
      expect(insurer.output!.decision).to.equal("APPROVE");
      expect(insurer.output!.claimId).to.match(/^0x[0-9a-f]{64}$/);
      const regulator = await sale(body, "regulator", `?pharmacy=${ids.otherPharmacy}`);
      expect(regulator.output!.selinfo[0]!.drugtracinfo[0]!.reasons.map((r) => r.reason)).to.deep.equal([
        "DISPENSED_BY_OTHER_PHARMACY",
      ]);
      const unnamed = await call<Problem>(h, ROUTE, { key: h.keys.insurer, body });
      expectProblem(unnamed, 400, "validation");
      expect(unnamed.body.field).to.equal("pharmacy");
      expectProblem(
        await call(h, `${ROUTE}?pharmacy=${ids.pharmacy}`, { key: h.keys.pharmacy, body }),
        403,
        "forbidden",
      );
      for (const who of ["maker", "distributor", "outsider"] as const)
        expectProblem(await call(h, ROUTE, { key: h.keys[who], body }), 403, "forbidden");
      expectProblem(await call(h, ROUTE, { body }), 401, "unauthorized");
    });
  });

  describe("alerts", function () {
    /** Alert ids raised for this block: about the pharmacy only, and about the other pharmacy's claim of a maker's pack. */
    let aboutPharmacy: string;
    let aboutOther: string;

    const raise = async (code: string, pharmacy: string) => {
      const r = await call<ClaimAnswer>(h, "/v1/claims/check", {
        key: h.keys.insurer,
        body: { claimRef: "C-ALERTS", pharmacy, lines: [{ code }] },
      });
      expect(r.status, r.text).to.equal(200);
      return r.body.lines[0]!.alertId!;
    };
    const list = async (who: KeyHolder, query = "") => {
      const r = await call<AlertPage>(h, `/v1/alerts${query}`, { key: h.keys[who] });
      expect(r.status, r.text).to.equal(200);
      expectMatchesSchema("get", "/v1/alerts", r);
      return r.body;
    };
    const get = (id: string, who: KeyHolder) => call<Alert>(h, `/v1/alerts/${id}`, { key: h.keys[who] });
    const transition = (id: string, who: KeyHolder, body: Record<string, unknown>) =>
      call<Alert>(h, `/v1/alerts/${id}/transitions`, { key: h.keys[who], body });

    before(async function () {
      aboutPharmacy = await raise("86123459999999990001", h.s.pharmacy.address);
      aboutOther = await raise(h.s.codes.atDistributor, h.s.otherPharmacy.address);
    });

    it("raises one alert per pharmacy concerned when an insurer checks the same code for two pharmacies", async function () {
      const code = "86123459999999990003";
      const forPharmacy = await raise(code, h.s.pharmacy.address);
      const forOther = await raise(code, h.s.otherPharmacy.address);
      expect(forOther).to.not.equal(forPharmacy);
      expect((await get(forOther, "otherPharmacy")).status).to.equal(200);
      expectProblem(await get(forOther, "pharmacy"), 404, "not-found");
      expectProblem(await get(forPharmacy, "otherPharmacy"), 404, "not-found");
      // The same check again for the same pharmacy is counted on its open alert.
      expect(await raise(code, h.s.pharmacy.address)).to.equal(forPharmacy);
      expect((await get(forPharmacy, "pharmacy")).body.count).to.equal(2);
    });

    it("lists every alert for the regulator, an organisation's own for others, a maker's products' for the maker", async function () {
      const all = (await list("regulator", "?limit=200")).alerts.map((a) => a.id);
      expect(all).to.include.members([aboutPharmacy, aboutOther]);
      const pharmacy = (await list("pharmacy", "?limit=200")).alerts;
      expect(pharmacy.map((a) => a.id))
        .to.include(aboutPharmacy)
        .and.not.include(aboutOther);
      for (const a of pharmacy) expect(a.participants).to.include(ids.pharmacy);
      const other = (await list("otherPharmacy", "?limit=200")).alerts.map((a) => a.id);
      expect(other).to.include(aboutOther).and.not.include(aboutPharmacy);
      const maker = (await list("maker", "?limit=200")).alerts;
      expect(maker.map((a) => a.id))
        .to.include(aboutOther)
        .and.not.include(aboutPharmacy);
      for (const a of maker) expect(a.participants).to.include(ids.maker);
      expect((await get(aboutOther, "maker")).body.manufacturerId).to.equal(ids.maker);
      const otherMaker = (await list("otherMaker", "?limit=200")).alerts.map((a) => a.id);
      expect(otherMaker).to.not.include(aboutOther);
    });

    it("filters by reason, code and organisation, newest first, a page at a time", async function () {
      const byReason = (await list("regulator", "?reason=NOT_DISPENSED&limit=200")).alerts;
      expect(byReason.map((a) => a.id)).to.include(aboutOther);
      for (const a of byReason) expect(a.reason).to.equal("NOT_DISPENSED");
      const byCode = await list("regulator", `?code=${h.s.codes.atDistributor}`);
      expect(byCode.alerts.map((a) => a.id)).to.include(aboutOther);
      for (const a of byCode.alerts) expect(a.code.normalised).to.equal(`CN:${h.s.codes.atDistributor}`);
      const byOrg = (await list("regulator", `?org=${ids.otherPharmacy}&limit=200`)).alerts.map((a) => a.id);
      expect(byOrg).to.include(aboutOther).and.not.include(aboutPharmacy);
      const ids1 = (await list("regulator", "?limit=200")).alerts.map((a) => a.id);
      expect(ids1).to.deep.equal([...ids1].sort().reverse());
      const page = await list("regulator", "?limit=1");
      expect(page.alerts).to.have.length(1);
      const next = await list("regulator", `?limit=1&cursor=${page.next}`);
      expect(next.alerts[0]!.id < page.alerts[0]!.id).to.equal(true);
      expectProblem(await call(h, `/v1/alerts?org=${ids.pharmacy}`, { key: h.keys.pharmacy }), 403, "forbidden");
      expectProblem(await call(h, "/v1/alerts?limit=0", { key: h.keys.regulator }), 400, "validation");
      expectProblem(await call(h, "/v1/alerts"), 401, "unauthorized");
    });

    it("reads one alert with its history; an alert the caller may not see is a 404", async function () {
      const r = await get(aboutOther, "otherPharmacy");
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.include({ id: aboutOther, status: "new", reason: "NOT_DISPENSED", closeReason: null });
      expect(r.body.history).to.have.length(1);
      expect(r.body.history[0]).to.deep.include({ action: "raised", to: "new" });
      expect(r.body.history[0]!.by).to.deep.include({ role: "insurer", participantId: ids.insurer });
      expectProblem(await get(aboutOther, "pharmacy"), 404, "not-found");
      expectProblem(await get(aboutOther, "otherMaker"), 404, "not-found");
      expectProblem(await get("al_000000000000000000000", "regulator"), 404, "not-found");
      expectProblem(await get("al_0000000000000000000", "regulator"), 404, "not-found");
    });

    it("moves an alert new → investigating → closed with a reason, recording who and when", async function () {
      const started = Date.now();
      const investigating = await transition(aboutOther, "otherPharmacy", { to: "investigating", note: "looking" });
      expect(investigating.status, investigating.text).to.equal(200);
      expectMatchesSchema("post", "/v1/alerts/{id}/transitions", investigating);
      expect(investigating.body.status).to.equal("investigating");
      const closed = await transition(aboutOther, "regulator", { to: "closed", reason: "process_error", note: "ok" });
      expect(closed.status, closed.text).to.equal(200);
      expect(closed.body).to.deep.include({ status: "closed", closeReason: "process_error" });
      const [raised, first, second] = closed.body.history;
      expect(raised!.action).to.equal("raised");
      expect(first).to.deep.include({ action: "transition", from: "new", to: "investigating", note: "looking" });
      expect(first!.by).to.deep.include({ role: "pharmacy", participantId: ids.otherPharmacy });
      expect(second).to.deep.include({ action: "transition", from: "investigating", to: "closed" });
      expect(second).to.deep.include({ reason: "process_error", note: "ok" });
      expect(second!.by.role).to.equal("regulator");
      for (const entry of [first!, second!]) {
        expect(entry.by.keyId).to.match(/^\w+$/);
        expect(Date.parse(entry.at)).to.be.within(started - 1000, Date.now() + 1000);
      }
      // The same failure again, once its alert is closed, opens a new one.
      const again = await raise(h.s.codes.atDistributor, h.s.otherPharmacy.address);
      expect(again).to.not.equal(aboutOther);
      expect((await get(again, "regulator")).body.status).to.equal("new");
    });

    it("refuses invalid transitions (409), closing without a reason (400) and a non-regulator closing (403)", async function () {
      const id = await raise("86123459999999990002", h.s.pharmacy.address);
      const same = await transition(id, "regulator", { to: "new" });
      expectProblem(same, 409, "conflict");
      expect(same.body).to.deep.include({ status: 409, alertStatus: "new" });
      expectProblem(await transition(id, "regulator", { to: "closed" }), 400, "validation");
      expectProblem(await transition(id, "regulator", { to: "investigating", reason: "other" }), 400, "validation");
      expectProblem(await transition(id, "regulator", { to: "done" }), 400, "validation");
      expectProblem(await transition(id, "pharmacy", { to: "closed", reason: "scanner_error" }), 403, "forbidden");
      expectProblem(await transition(id, "otherPharmacy", { to: "investigating" }), 404, "not-found");
      expect((await transition(id, "pharmacy", { to: "investigating" })).status).to.equal(200);
      expectProblem(await transition(id, "regulator", { to: "investigating" }), 409, "conflict");
      expectProblem(await transition(id, "pharmacy", { to: "closed", reason: "scanner_error" }), 403, "forbidden");
      expect((await transition(id, "regulator", { to: "closed", reason: "scanner_error" })).status).to.equal(200);
      const twice = await transition(id, "regulator", { to: "closed", reason: "scanner_error" });
      expectProblem(twice, 409, "conflict");
      expect(twice.body).to.deep.include({ status: 409, alertStatus: "closed" });
      // Only a regulator reopens a closed alert.
      expectProblem(await transition(id, "pharmacy", { to: "investigating" }), 403, "forbidden");
      const reopened = await transition(id, "regulator", { to: "investigating" });
      expect(reopened.body).to.deep.include({ status: "investigating", closeReason: null });
      expectProblem(await transition(id, "regulator", { to: "closed", reason: "guess" }), 400, "validation");
    });

    it("adds notes to the history of an alert the caller may see", async function () {
      const noted = await call<Alert>(h, `/v1/alerts/${aboutPharmacy}/notes`, {
        key: h.keys.pharmacy,
        body: { note: "the pack was never in our stock" },
      });
      expect(noted.status, noted.text).to.equal(200);
      expectMatchesSchema("post", "/v1/alerts/{id}/notes", noted);
      expect(noted.body.status).to.equal("new");
      const last = noted.body.history.at(-1)!;
      expect(last).to.deep.include({ action: "note", note: "the pack was never in our stock" });
      expect(last.by).to.deep.include({ role: "pharmacy", participantId: ids.pharmacy });
      const path = `/v1/alerts/${aboutPharmacy}/notes`;
      expectProblem(await call(h, path, { key: h.keys.pharmacy, body: { note: "" } }), 400, "validation");
      expectProblem(await call(h, path, { key: h.keys.otherPharmacy, body: { note: "x" } }), 404, "not-found");
      expectProblem(await call(h, path, { body: { note: "x" } }), 401, "unauthorized");
    });
  });

  describe("GS1 Lightweight Verification", function () {
    const verifyPath = (lot: string, serial: string, query: string, gtin = GTIN, prefix = "/v1/lms") =>
      `${prefix}/gtin/${gtin}/lot/${encodeURIComponent(lot)}/ser/${encodeURIComponent(serial)}${query}`;
    const fullQuery = (extra = `&corrUUID=${CORR_UUID}`) =>
      `?exp=${yymmdd(lmsExpiresOn)}&linkType=verificationService&context=dscsaSaleableReturn&reqGLN=${REQ_GLN}${extra}`;
    const basic = (key: string) => ({ authorization: `Basic ${Buffer.from(`pharmacy-7:${key}`).toString("base64")}` });
    const verify = async (path: string, options: { key?: string; headers?: Record<string, string> }) => {
      const r = await call<Lms>(h, path, options);
      expect(r.status, r.text).to.equal(200);
      expectMatchesSchema("get", "/v1/lms/gtin/{gtin}/lot/{lot}/ser/{serial}", r);
      return r;
    };

    it("verifies a matching pack with a Bearer key and with HTTP Basic, echoing corrUUID", async function () {
      const bearer = await verify(verifyPath(LMS_LOT, LMS_SERIAL, fullQuery()), { key: h.keys.distributor });
      expect(bearer.body).to.deep.equal({
        verificationTimestamp: bearer.body.verificationTimestamp,
        responderGLN: "0000000000000",
        data: { verified: true },
        corrUUID: CORR_UUID,
      });
      expect(Date.parse(bearer.body.verificationTimestamp)).to.be.closeTo(Date.now(), 60_000);
      const viaBasic = await verify(verifyPath(LMS_LOT, LMS_SERIAL, fullQuery()), { headers: basic(h.keys.pharmacy) });
      expect(viaBasic.body.data).to.deep.equal({ verified: true });
      expect(viaBasic.body.corrUUID).to.equal(CORR_UUID);
    });

    it("answers an unknown serial with verified false, No_match_GTIN_Serial (HTTP 200), and raises an alert", async function () {
      const r = await verify(verifyPath(LMS_LOT, "NOPE0001", fullQuery()), { key: h.keys.distributor });
      expect(r.body.data).to.deep.equal({ verified: false, verificationFailureReason: "No_match_GTIN_Serial" });
      const wrongLot = await verify(verifyPath("LOT-V9", LMS_SERIAL, fullQuery()), { key: h.keys.distributor });
      expect(wrongLot.body.data).to.deep.equal({
        verified: false,
        verificationFailureReason: "No_match_GTIN_Serial_Lot",
      });
      const alerts = await call<AlertPage>(h, `/v1/alerts?code=01${GTIN}21NOPE0001`, { key: h.keys.distributor });
      expect(alerts.body.alerts.map((a) => [a.source, a.reason])).to.deep.equal([["lms", "UNKNOWN_CODE"]]);
    });

    it("serves the /v1/lms/verify/gtin/… variant, and reads a percent-encoded lot and serial", async function () {
      const variant = verifyPath(LMS_LOT, LMS_SERIAL, fullQuery(), GTIN, "/v1/lms/verify");
      const r = await call<Lms>(h, variant, { key: h.keys.pharmacy });
      expect(r.status, r.text).to.equal(200);
      expectMatchesSchema("get", "/v1/lms/verify/gtin/{gtin}/lot/{lot}/ser/{serial}", r);
      expect(r.body.data).to.deep.equal({ verified: true });
      const odd = verifyPath(ODD_LOT, ODD_SERIAL, fullQuery());
      expect(odd).to.contain("/lot/LOT%2FV%252/ser/Ab12%2Fx%25");
      expect((await verify(odd, { key: h.keys.pharmacy })).body.data).to.deep.equal({ verified: true });
    });

    it("generates a corrUUID when the request has none, and echoes GS1US-Version", async function () {
      const r = await verify(verifyPath(LMS_LOT, LMS_SERIAL, fullQuery("")), {
        key: h.keys.maker,
        headers: { "GS1US-Version": "1.3" },
      });
      expect(r.body.corrUUID).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(r.headers.get("gs1us-version")).to.equal("1.3");
      const again = await verify(verifyPath(LMS_LOT, LMS_SERIAL, ""), { key: h.keys.maker });
      expect(again.body.corrUUID).to.not.equal(r.body.corrUUID);
    });

    it("refuses another linkType, a malformed GTIN or expiry (400), no auth (401), insurers (403), POST (405)", async function () {
      const key = h.keys.distributor;
      const pip = await call<Problem>(h, verifyPath(LMS_LOT, LMS_SERIAL, "?linkType=pip"), { key });
      expectProblem(pip, 400, "validation");
      expect(pip.body.detail).to.contain("verificationService");
      for (const gtin of ["4012345678901", "04012345678902", "0401234567890X"])
        expectProblem(await call(h, verifyPath(LMS_LOT, LMS_SERIAL, "", gtin), { key }), 400, "validation");
      expectProblem(await call(h, verifyPath(LMS_LOT, LMS_SERIAL, "?exp=261399"), { key }), 400, "validation");
      expectProblem(await call(h, verifyPath(LMS_LOT, LMS_SERIAL, "?reqGLN=123"), { key }), 400, "validation");
      expectProblem(await call(h, verifyPath("L".repeat(21), LMS_SERIAL, ""), { key }), 400, "validation");
      const none = await call(h, verifyPath(LMS_LOT, LMS_SERIAL, fullQuery()));
      expectProblem(none, 401, "unauthorized");
      expectProblem(await call(h, verifyPath(LMS_LOT, LMS_SERIAL, ""), { key: h.keys.insurer }), 403, "forbidden");
      for (const path of [verifyPath(LMS_LOT, LMS_SERIAL, ""), "/v1/lms/checkConnectivity"]) {
        const post = await call(h, path, { key, method: "POST", body: {} });
        expectProblem(post, 405, "method-not-allowed");
        expect(post.headers.get("allow")).to.equal("GET, HEAD");
      }
    });

    it("answers checkConnectivity with the responder's GLN", async function () {
      const r = await call(h, `/v1/lms/checkConnectivity?gtin=${GTIN}&reqGLN=${REQ_GLN}`, {
        key: h.keys.pharmacy,
        headers: { "GS1US-Version": "1.2" },
      });
      expect(r.status, r.text).to.equal(200);
      expectMatchesSchema("get", "/v1/lms/checkConnectivity", r);
      expect(r.body).to.deep.equal({ responderGLN: "0000000000000" });
      expect(r.headers.get("gs1us-version")).to.equal("1.2");
      expectProblem(await call(h, "/v1/lms/checkConnectivity?gtin=123", { key: h.keys.pharmacy }), 400, "validation");
      expectProblem(await call(h, "/v1/lms/checkConnectivity"), 401, "unauthorized");
    });
  });

  it("lists every one of these routes in /openapi.json", async function () {
    const r = await call<{ paths: Record<string, Record<string, unknown>> }>(h, "/openapi.json");
    expect(r.status).to.equal(200);
    const routes: [string, string][] = [
      ["/v1/claims/check", "post"],
      ["/v1/nhsa/3505", "post"],
      ["/v1/alerts", "get"],
      ["/v1/alerts/{id}", "get"],
      ["/v1/alerts/{id}/transitions", "post"],
      ["/v1/alerts/{id}/notes", "post"],
      ["/v1/lms/gtin/{gtin}/lot/{lot}/ser/{serial}", "get"],
      ["/v1/lms/verify/gtin/{gtin}/lot/{lot}/ser/{serial}", "get"],
      ["/v1/lms/checkConnectivity", "get"],
    ];
    for (const [path, method] of routes) expect(r.body.paths[path], path).to.have.property(method);
  });
});
