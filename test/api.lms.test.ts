import { expect } from "chai";
import { AlertStore } from "../backend/alerts";
import type { AlertActor } from "../backend/alerts/model";
import { type LmsDeps, verifyPack } from "../backend/api/lms-verify";
import { DEFAULT_CODE_HASH_DOMAIN } from "../backend/codes/parse";
import type { RedisClient } from "../backend/store/redis";
import {
  GS1_LOT,
  GTIN,
  indexedClaimsFixture,
  type ClaimsFixture,
  type IndexedClaimsFixture,
} from "./helpers/claims-fixture";

const yymmdd = (seconds: number) => new Date(seconds * 1000).toISOString().slice(2, 10).replace(/-/g, "");
const isoDay = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 10);

describe("GS1 Lightweight Verification (engine, against an indexed chain)", function () {
  let indexed: IndexedClaimsFixture;
  let redis: RedisClient;
  let f: ClaimsFixture;
  let deps: LmsDeps;
  const caller: AlertActor = { keyId: "k-dist", participantId: 3, role: "distributor" };

  before(async function () {
    indexed = await indexedClaimsFixture();
    ({ f, redis } = indexed);
    deps = {
      reader: indexed.reader,
      alerts: new AlertStore(redis, {
        ALERT_DEDUP_WINDOW_SECONDS: 600,
        ALERT_REPEAT_THRESHOLD: 3,
        ALERT_REPEAT_WINDOW_SECONDS: 300,
        ALERT_LOG_RETENTION_DAYS: 30,
      }),
      codeHashDomain: DEFAULT_CODE_HASH_DOMAIN,
      responderGLN: "0614141000005",
    };
  });

  after(async function () {
    await indexed.close();
  });

  const verify = (serial: string, lot: string, expiry?: string, corrUUID?: string) =>
    verifyPack(
      deps,
      { gtin: GTIN, serial, lot, ...(expiry ? { expiry } : {}), ...(corrUUID ? { corrUUID } : {}) },
      caller,
    );

  it("verifies a known pack, echoing corrUUID, with the standard's fields only", async function () {
    const answer = await verify(
      f.codes.gs1Serial,
      GS1_LOT,
      isoDay(f.gs1ExpiresOn),
      "5d0c9d64-2f6e-4bb3-9f1c-b3a1b0f3c001",
    );
    expect(answer).to.deep.equal({
      verificationTimestamp: answer.verificationTimestamp,
      responderGLN: "0614141000005",
      data: { verified: true },
      corrUUID: "5d0c9d64-2f6e-4bb3-9f1c-b3a1b0f3c001",
    });
    expect(answer.verificationTimestamp).to.match(/Z$/);
    expect(yymmdd(f.gs1ExpiresOn)).to.match(/^\d{6}$/);
  });

  it("generates a corrUUID when the request has none, and checks no expiry when none is sent", async function () {
    const answer = await verify(f.codes.gs1Serial, GS1_LOT);
    expect(answer.data).to.deep.equal({ verified: true });
    expect(answer.corrUUID).to.match(/^[0-9a-f-]{36}$/);
  });

  it("names each failure: unknown serial, lot, expiry, both; lot and expiry unchecked for an unknown pack", async function () {
    const reason = async (serial: string, lot: string, expiry?: string) =>
      (await verify(serial, lot, expiry)).data.verificationFailureReason;
    expect(await reason("NOPE", GS1_LOT)).to.equal("No_match_GTIN_Serial");
    expect(await reason("NOPE", "WRONG", "200101")).to.equal("No_match_GTIN_Serial");
    expect(await reason(f.codes.gs1Serial, "lot-g1", isoDay(f.gs1ExpiresOn))).to.equal("No_match_GTIN_Serial_Lot");
    expect(await reason(f.codes.gs1Serial, GS1_LOT, "2020-01-01")).to.equal("No_match_GTIN_Serial_Expiry");
    expect(await reason(f.codes.gs1Serial, "WRONG", "2020-01-01")).to.equal("No_match_GTIN_Serial_Lot_Expiry");
  });

  it("reports a recalled pack as verified with additionalInfo Recalled", async function () {
    const answer = await verify(f.gs1RecalledSerial, f.gs1RecalledLot);
    expect(answer.data).to.deep.equal({ verified: true, additionalInfo: "Recalled" });
  });

  it("reports an expired pack with additionalInfo Expired", async function () {
    const later = { ...deps, now: () => (f.gs1ExpiresOn + 86_400) * 1000 };
    const answer = await verifyPack(later, { gtin: GTIN, serial: f.codes.gs1Serial, lot: GS1_LOT }, caller);
    expect(answer.data).to.deep.equal({ verified: true, additionalInfo: "Expired" });
  });

  it("raises an alert for a failed verification", async function () {
    await verify("UNKNOWN-SER", GS1_LOT);
    const page = await deps.alerts.list({
      scope: { kind: "org", participantId: 3 },
      limit: 10,
      code: `GS1:01${GTIN}21UNKNOWN-SER`,
    });
    expect(page.alerts).to.have.length(1);
    expect(page.alerts[0]!).to.deep.include({ source: "lms", reason: "UNKNOWN_CODE", euCode: "A3" });
  });
});
