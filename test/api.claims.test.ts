import { expect } from "chai";
import { AlertStore } from "../backend/alerts";
import type { AlertActor } from "../backend/alerts/model";
import { keccak256, toUtf8Bytes } from "ethers";
import fc from "fast-check";
import {
  checkClaim,
  claimRefBytes32,
  type ClaimCheckDeps,
  type ClaimLineInput,
  type LineResult,
} from "../backend/api/claims-check";
import { claimSettingsSchema } from "../backend/api/claims-config";
import { iso } from "../backend/util/time";
import { answer3505, claimRefOf, failure3505, linesOf, read3505, type Nhsa3505 } from "../backend/api/nhsa";
import fixture3505 from "./fixtures/nhsa-3505.json";
import { codeHash, DEFAULT_CODE_HASH_DOMAIN, tryParseCode } from "../backend/codes/parse";
import type { ParticipantRecord } from "../backend/index/events";
import type { RedisClient } from "../backend/store/redis";
import { indexedClaimsFixture, type ClaimsFixture, type IndexedClaimsFixture } from "./helpers/claims-fixture";
import { DAY, idOf } from "./helpers/ledger";

const alertSettings = {
  ALERT_DEDUP_WINDOW_SECONDS: 600,
  ALERT_REPEAT_THRESHOLD: 3,
  ALERT_REPEAT_WINDOW_SECONDS: 300,
  ALERT_LOG_RETENTION_DAYS: 30,
};

describe("Claim check (engine, against an indexed chain)", function () {
  let indexed: IndexedClaimsFixture;
  let redis: RedisClient;
  let f: ClaimsFixture;
  let deps: ClaimCheckDeps;
  let pharmacy: ParticipantRecord;
  let otherPharmacy: ParticipantRecord;
  let insurerId: number;
  let caller: AlertActor;

  before(async function () {
    indexed = await indexedClaimsFixture();
    ({ f, redis } = indexed);
    const reader = indexed.reader;
    deps = {
      reader,
      alerts: new AlertStore(redis, alertSettings),
      settings: claimSettingsSchema.parse({}),
      codeHashDomain: DEFAULT_CODE_HASH_DOMAIN,
    };
    pharmacy = (await reader.participantByAccount(f.pharmacy.address))!;
    otherPharmacy = (await reader.participantByAccount(f.otherPharmacy.address))!;
    insurerId = Number(await idOf(f.ledger, f.insurer));
    caller = { keyId: "k-insurer", participantId: insurerId, role: "insurer", name: "Insurer" };
  });

  after(async function () {
    await indexed.close();
  });

  const check = (lines: ClaimLineInput[], at: ParticipantRecord = pharmacy, now?: number) =>
    checkClaim(now ? { ...deps, now: () => now } : deps, {
      claimRef: "C-200",
      pharmacy: at,
      insurerId,
      lines,
      caller,
    });
  const reasonsOf = (line: LineResult) => line.reasons.map((r) => r.reason);

  it("approves packs dispensed by the claiming pharmacy and not yet paid for", async function () {
    const result = await check([{ code: f.codes.dispensed }, { code: f.codes.dispensed2 }]);
    expect(result.decision).to.equal("APPROVE");
    expect(result.lines.map((l) => l.ok)).to.deep.equal([true, true]);
    expect(result.lines[0]!.pack).to.deep.include({ level: "unit", recalled: false, decommissioned: false });
    expect(result.lines[0]!.pack!.dispensed!.pharmacy!.name).to.equal("Pharmacy");
    expect(result.lines[0]!.alertId).to.equal(undefined);
  });

  it("names the earlier claim and insurer of a pack already settled, and the pattern", async function () {
    const result = await check([{ code: f.codes.settled }, { code: f.codes.settledByOther }]);
    expect(result.decision).to.equal("REJECT");
    const [own, other] = result.lines;
    expect(reasonsOf(own!)).to.deep.equal(["ALREADY_SETTLED"]);
    const pattern = own!.reasons[0]!.pattern!;
    expect(pattern.pattern).to.equal("SAME_INSTITUTION");
    expect(pattern.earlier).to.deep.include({ event: "settled" });
    expect(pattern.earlier.insurer!.name).to.equal("Insurer");
    expect(pattern.regions).to.deep.equal({ earlier: "110000", now: "110000" });
    expect(pattern.secondsBetween).to.be.at.least(0);
    expect(other!.reasons[0]!.pattern!.earlier.insurer!.name).to.equal("OtherInsurer");
    expect(other!.reasons[0]!.detail).to.contain("OtherInsurer");
  });

  it("tells a copied code (soon after, elsewhere) from a resold pack (long after, elsewhere)", async function () {
    const soon = await check([{ code: f.codes.atOtherPharmacy }]);
    expect(reasonsOf(soon.lines[0]!)).to.deep.equal(["DISPENSED_BY_OTHER_PHARMACY"]);
    expect(soon.lines[0]!.reasons[0]!.pattern!.pattern).to.equal("COPIED_CODE");
    expect(soon.lines[0]!.reasons[0]!.pattern!.earlier.pharmacy!.name).to.equal("OtherPharmacy");
    const later = Date.now() + 30 * DAY * 1000;
    const resold = await check([{ code: f.codes.settled }], otherPharmacy, later);
    expect(reasonsOf(resold.lines[0]!)).to.deep.equal(["ALREADY_SETTLED", "DISPENSED_BY_OTHER_PHARMACY"]);
    expect(resold.lines[0]!.reasons.map((r) => r.pattern!.pattern)).to.deep.equal(["RESOLD_PACK", "RESOLD_PACK"]);
    expect(resold.lines[0]!.reasons[0]!.pattern!.secondsBetween).to.be.greaterThan(29 * DAY);
  });

  it("pays a split pack in parts and refuses more doses than were dispensed and are unpaid", async function () {
    const parts = await check([{ code: f.codes.split, quantity: 6 }]);
    expect(parts.decision).to.equal("APPROVE");
    const over = await check([{ code: f.codes.split, quantity: 7 }]);
    expect(reasonsOf(over.lines[0]!)).to.deep.equal(["SPLIT_QUANTITY_EXCEEDED"]);
    expect(over.lines[0]!.reasons[0]!.quantities).to.deep.include({
      requested: 7,
      dispensed: 10,
      settled: 4,
      available: 6,
      packQuantity: 24,
    });
  });

  it("refuses unknown, invalid, undispensed, decommissioned, recalled, duplicate, case and repeated codes", async function () {
    const result = await check([
      { code: f.codes.unknown },
      { code: "0109506000134353" }, // a GTIN whose check digit is wrong
      { code: f.codes.notDispensed },
      { code: f.codes.decommissioned },
      { code: f.codes.recalled },
      { code: f.codes.duplicated },
      { code: f.codes.caseCode },
      { code: f.codes.dispensed3 },
      { code: ` ${f.codes.dispensed3}` },
    ]);
    expect(result.lines.map(reasonsOf)).to.deep.equal([
      ["UNKNOWN_CODE"],
      ["INVALID_CODE"],
      ["NOT_DISPENSED"],
      ["DECOMMISSIONED", "NOT_DISPENSED"],
      ["RECALLED"],
      ["DUPLICATE_CODE", "NOT_DISPENSED"],
      ["NOT_A_UNIT"],
      [],
      ["REPEATED_IN_CLAIM"],
    ]);
    expect(result.lines[1]!.reasons[0]!.detail).to.contain("check digit");
    expect(result.decision).to.equal("REJECT");
  });

  it("checks a sale record's lot and expiry against the batch", async function () {
    const batch = (await deps.reader.batch(1))!;
    const expiry = new Date(batch.expiresOn * 1000).toISOString().slice(0, 10);
    const good = await check([{ code: f.codes.dispensed, expect: { lot: batch.lot, expiry } }]);
    expect(good.decision).to.equal("APPROVE");
    const bad = await check([{ code: f.codes.dispensed, expect: { lot: "lot-a1", expiry: "2020-01-01" } }]);
    expect(reasonsOf(bad.lines[0]!)).to.deep.equal(["LOT_MISMATCH", "EXPIRY_MISMATCH"]);
  });

  it("raises one alert per refused line, concerning the pharmacies involved", async function () {
    const result = await check([
      { code: f.codes.atOtherPharmacy },
      { code: f.codes.notDispensed },
      { code: f.codes.dispensed },
    ]);
    const [copied, undispensed, fine] = result.lines;
    expect(fine!.alertId).to.equal(undefined);
    const alert = (await deps.alerts.get(copied!.alertId!))!;
    expect(alert).to.deep.include({ source: "claim", reason: "DISPENSED_BY_OTHER_PHARMACY", class: "suspect_pack" });
    expect(alert.participants).to.include.members([pharmacy.id, otherPharmacy.id, insurerId]);
    expect(alert.snapshot).to.deep.include({ claimRef: "C-200" });
    expect((await deps.alerts.get(undispensed!.alertId!))!).to.deep.include({
      reason: "NOT_DISPENSED",
      class: "process_error",
      euCode: "A24",
    });
  });

  it("does not alert on a re-check of the insurer's own settled claim, but still refuses to pay again", async function () {
    const result = await checkClaim(deps, {
      claimRef: "C-100",
      pharmacy,
      insurerId,
      lines: [{ code: f.codes.settled }],
      caller,
    });
    expect(result.decision).to.equal("REJECT");
    expect(result.lines[0]!.reasons[0]!.pattern!.earlier.sameClaim).to.equal(true);
    expect(result.lines[0]!.alertId).to.equal(undefined);
  });

  it("answers each line of a many-line claim as it answers that line alone (packs read per run, not per line)", async function () {
    // Every kind of line in one claim: units of one run sharing cases, a split pack, a copied code, a case, GS1
    // codes, an unknown and an invalid code. Read together, no line may take another's pack or fields.
    const lines: ClaimLineInput[] = [
      ...Object.values(f.codes).map((code) => (code === f.codes.split ? { code, quantity: 20 } : { code })),
      { code: "not a code" },
    ];
    const now = Date.now();
    const together = await check(lines, pharmacy, now);
    const alone = await Promise.all(lines.map((l) => check([l], pharmacy, now)));
    expect(together.lines).to.have.length(lines.length);
    together.lines.forEach((line, i) => {
      expect({ ...line, line: 0 }, `line ${i} (${line.code})`).to.deep.equal(alone[i]!.lines[0]);
    });
  });

  it("reads each pack's state as the full item view has it, less the trail and holder a claim does not need", async function () {
    // IndexReader.packStates reads fewer fields than IndexReader.items: every other member must be the same.
    const refs = (
      await Promise.all(
        Object.values(f.codes).map(async (raw) => {
          const read = tryParseCode(raw);
          if (!read.ok) return [];
          const found = await deps.reader.lookupCode(codeHash(read.code.normalised, deps.codeHashDomain));
          return found ? [found.ref, ...found.conflicts] : [];
        }),
      )
    ).flat();
    expect(refs.length).to.be.greaterThan(5);
    const [states, views] = await Promise.all([deps.reader.packStates(refs), deps.reader.items(refs)]);
    expect(states).to.have.length(refs.length);
    states.forEach((state, i) => {
      const { trail, holder, ...rest } = views[i]!;
      expect(trail.length + (holder ? 1 : 0), `ref ${i}: a view with something to leave out`).to.be.greaterThan(0);
      expect(state, `ref ${i}`).to.deep.equal(rest);
    });
  });

  describe("NHSA interface 3505 sale record", function () {
    const envelope = (codes: string[], overrides: Record<string, unknown> = {}) => {
      const e = structuredClone(fixture3505) as unknown as { input: { selinfo: Record<string, unknown> } };
      Object.assign(e.input.selinfo, { drugtracinfo: codes.map((c) => ({ drug_trac_codg: c })) }, overrides);
      return e;
    };
    const checkSale = async (body: unknown) => {
      const read = read3505(body);
      if ("error" in read) return failure3505(read.msgid, read.error, Date.now());
      const result = await checkClaim(deps, {
        claimRef: claimRefOf(read.envelope),
        pharmacy,
        insurerId: null,
        lines: linesOf(read.envelope),
        caller: { keyId: "k-ph", participantId: pharmacy.id, role: "pharmacy" },
      });
      return answer3505(read.envelope, result, Date.now());
    };

    it("answers a sale of two packs per code in the platform's envelope", async function () {
      const batch = (await deps.reader.batch(1))!;
      const answer = await checkSale(
        envelope([f.codes.dispensed, f.codes.settled], {
          expy_end: new Date(batch.expiresOn * 1000).toISOString().slice(0, 10),
        }),
      );
      expect(answer).to.deep.include({ infcode: 0, inf_refmsgid: fixture3505.msgid, err_msg: "" });
      expect(answer.refmsg_time).to.match(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      const output = answer.output!;
      expect(output.decision).to.equal("REJECT");
      expect(output.result.retRslt).to.equal("0");
      expect(output.result.msgRslt).to.contain("ALREADY_SETTLED");
      expect(output.selinfo).to.have.length(1);
      expect(output.selinfo[0]!).to.deep.include({ fixmedins_bchno: "PC20250701001", ok: false });
      expect(output.selinfo[0]!.drugtracinfo.map((d) => [d.drug_trac_codg, d.ok])).to.deep.equal([
        [f.codes.dispensed, true],
        [f.codes.settled, false],
      ]);
    });

    it("checks a split sale's doses, lot and expiry", async function () {
      const split = envelope([f.codes.split], { trdn_flag: "1", sel_retn_cnt: "7", manu_lotnum: "LOT-X" });
      const answer = await checkSale(split);
      const reasons = answer.output!.selinfo[0]!.drugtracinfo[0]!.reasons.map((r) => r.reason);
      expect(reasons).to.deep.equal(["SPLIT_QUANTITY_EXCEEDED", "LOT_MISMATCH", "EXPIRY_MISMATCH"]);
      expect(linesOf((read3505(split) as { envelope: Nhsa3505 }).envelope)[0]).to.deep.include({ quantity: 7 });
    });

    it("answers malformed envelopes with infcode -1 and a message", async function () {
      const cases: [unknown, string][] = [
        [{ ...fixture3505, infno: "3506" }, "infno"],
        [{ ...fixture3505, input: {} }, "input.selinfo"],
        [envelope([]), "drugtracinfo"],
        [envelope([f.codes.dispensed], { trdn_flag: "2" }), "trdn_flag"],
        [envelope([f.codes.dispensed, f.codes.split], { trdn_flag: 1 }), "exactly one pack code"],
        [
          envelope([f.codes.dispensed], { setl_id: undefined, mdtrt_sn: undefined, rtal_docno: undefined }),
          "settlement",
        ],
        [envelope(["x".repeat(101)]), "drug_trac_codg"],
        ["not an object", "message"],
      ];
      for (const [body, mentions] of cases) {
        const answer = await checkSale(body);
        expect(answer.infcode, mentions).to.equal(-1);
        expect(answer.output).to.equal(null);
        expect(answer.err_msg).to.contain(mentions);
      }
      expect((await checkSale({ ...fixture3505, infno: 3505 })).inf_refmsgid).to.equal(fixture3505.msgid);
    });

    it("takes the settlement id as the claim reference and the older flat code field", async function () {
      const flat = envelope([]);
      delete (flat.input.selinfo as { drugtracinfo?: unknown }).drugtracinfo;
      Object.assign(flat.input.selinfo, { drug_trac_codg: f.codes.dispensed });
      const read = read3505(flat) as { envelope: Nhsa3505 };
      expect(claimRefOf(read.envelope)).to.equal("S110105202507010001");
      expect(linesOf(read.envelope).map((l) => l.code)).to.deep.equal([f.codes.dispensed]);
    });
  });
});

describe("Claim check: instants and claim references laid out by hand", function () {
  it("writes an instant as Date#toISOString does, and throws where it throws", function () {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 253_402_300_799 }), fc.integer({ min: 0, max: 4_102_444_800 })),
        (s) => {
          expect(iso(s)).to.equal(new Date(s * 1000).toISOString());
        },
      ),
      { numRuns: 5_000 },
    );
    for (const s of [0, 59, 86_399, 951_782_400, 951_868_800, 4_107_456_000, 253_402_300_799, 253_402_300_800, -1, 1.5])
      expect(iso(s), String(s)).to.equal(new Date(s * 1000).toISOString());
    expect(() => iso(9e12)).to.throw(RangeError);
    expect(() => iso(Number.NaN)).to.throw(RangeError);
  });

  it("hashes a claim reference's UTF-8 as ethers does, surrogates included", function () {
    const viaEthers = (ref: string) => keccak256(toUtf8Bytes(ref));
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (ref) => {
        fc.pre(!/^0x[0-9a-fA-F]{64}$/.test(ref));
        expect(claimRefBytes32(ref)).to.equal(viaEthers(ref));
      }),
      { numRuns: 2_000 },
    );
    expect(claimRefBytes32("处方-\uDC00-x")).to.equal(viaEthers("处方-\uDC00-x")); // a lone low surrogate
    expect(() => claimRefBytes32("C-\uD800")).to.throw(/invalid surrogate pair/); // a lone high one, as before
  });
});
