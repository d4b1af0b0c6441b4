/**
 * Chain history for the claim-check, verification and alert tests, on top of the every-event scenario: packs in
 * every state a claim line can find them in, for 20-digit and GS1 codes.
 */
import { ethers } from "hardhat";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";
import {
  caseRef,
  DAY,
  newId,
  packRefs,
  settlePartialWithConsent,
  settleWithConsent,
  shipAndReceive,
  unitRef,
} from "./ledger";
import { everyEventScenario, type Scenario } from "./scenario";
import { IndexReader } from "../../backend/index/query";
import { connectRedis, type RedisClient } from "../../backend/store/redis";
import { startRedis } from "../../scripts/lib/redis-server";
import { newIndexer, startRpcServer } from "./indexer";

export const GTIN = "09506000134352";
export const GS1_LOT = "LOT-G1";

export interface ClaimsFixture extends Scenario {
  /** Raw codes as scanners send them, by what the tests need of them. */
  codes: {
    settled: string; // u0: dispensed at Pharmacy, settled by Insurer under C-100
    dispensed: string; // u1: dispensed at Pharmacy, unpaid
    settledByOther: string; // u2: settled by OtherInsurer under OI-1
    dispensed2: string; // u3
    dispensed3: string; // u4
    split: string; // u5: split pack, 10 of 24 dispensed, 4 settled under C-101
    notDispensed: string; // u6
    decommissioned: string; // u7
    duplicated: string; // u8: commissioned a second time in another run
    atOtherPharmacy: string; // u10: dispensed by OtherPharmacy
    caseCode: string;
    recalled: string; // dispensed, then its batch recalled
    unknown: string;
    gs1: string; // GS1 element string of a pack at Pharmacy, lot GS1_LOT
    gs1Serial: string;
    gs1Recalled: string;
  };
  gs1ExpiresOn: number;
  gs1RecalledSerial: string;
  gs1RecalledLot: string;
}

let base = 40_000_000;

async function commission(s: Scenario, batchId: bigint, codes: string[], shape: RunShape): Promise<number> {
  const run = buildRun(codes, shape);
  const receipt = await (
    await s.ledger
      .connect(s.maker)
      .commission(batchId, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness)
  ).wait();
  const event = receipt!.logs.map((l) => s.ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
  return Number(event!.args.runId);
}

const raw = (normalised: string): string => normalised.replace(/^(CN|X):/, "");

export async function claimsFixture(): Promise<ClaimsFixture> {
  const s = await everyEventScenario();
  const { ledger, maker, pharmacy, otherPharmacy, insurer, otherInsurer } = s;
  const rx = ethers.id("rx-claims");
  const shape = { unitCount: 12, unitsPerCase: 4, casesPerPallet: 0 };
  const codes = demoRunCodes("8612345", shape, (base += 100_000));
  const runId = await commission(s, s.batchId, codes, shape);
  await commission(s, s.batchId, [codes[8]!], { unitCount: 1, unitsPerCase: 0, casesPerPallet: 0 });
  const u = (i: number) => unitRef(runId, i);
  await shipAndReceive(ledger, maker, pharmacy, [caseRef(runId, 0), caseRef(runId, 1)]);
  await shipAndReceive(ledger, maker, otherPharmacy, [caseRef(runId, 2)]);
  await ledger.connect(pharmacy).dispense(packRefs([u(0), u(1), u(2), u(3), u(4)]), rx);
  await ledger.connect(pharmacy).dispensePartial(u(5), 10, rx);
  await ledger.connect(pharmacy).decommission(packRefs([u(7)]), 1);
  await ledger.connect(otherPharmacy).dispense(packRefs([u(10)]), rx);
  await settleWithConsent(ledger, insurer, pharmacy, ethers.id("C-100"), packRefs([u(0)]));
  await settleWithConsent(ledger, otherInsurer, pharmacy, ethers.id("OI-1"), packRefs([u(2)]));
  await settlePartialWithConsent(ledger, insurer, pharmacy, ethers.id("C-101"), u(5), 4);

  // A batch recalled after one of its packs was dispensed.
  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  const recalledBatch = await newId(
    ledger.connect(maker).registerBatch(1, `LOT-RC-${base}`, now - DAY, now + 300 * DAY),
    "BatchRegistered",
    "batchId",
  );
  const recalledCodes = demoRunCodes("8612345", { unitCount: 1, unitsPerCase: 0, casesPerPallet: 0 }, base + 50_000);
  const recalledRun = await commission(s, recalledBatch, recalledCodes, {
    unitCount: 1,
    unitsPerCase: 0,
    casesPerPallet: 0,
  });
  await shipAndReceive(ledger, maker, pharmacy, [unitRef(recalledRun, 0)]);
  await ledger.connect(pharmacy).dispense(packRefs([unitRef(recalledRun, 0)]), rx);
  await ledger.connect(maker).recallBatch(recalledBatch, "contamination");

  // A GS1 product: one batch at Pharmacy, one recalled.
  await ledger.connect(s.regulator).assignCodePrefixes(maker.address, ["GS1:9506000"]);
  const productId = await newId(
    ledger.connect(maker).registerProduct(GTIN, "Ibuprofen 400mg", "H20000002", "tablet 20/box", 20),
    "ProductRegistered",
    "productId",
  );
  const gs1ExpiresOn = now + 400 * DAY;
  const gs1Batch = await newId(
    ledger.connect(maker).registerBatch(productId, GS1_LOT, now - DAY, gs1ExpiresOn),
    "BatchRegistered",
    "batchId",
  );
  const serials = ["SER0001", "Ab12/x%"];
  const gs1Run = await commission(
    s,
    gs1Batch,
    serials.map((ser) => `GS1:01${GTIN}21${ser}`),
    { unitCount: 2, unitsPerCase: 0, casesPerPallet: 0 },
  );
  await shipAndReceive(ledger, maker, pharmacy, [unitRef(gs1Run, 0), unitRef(gs1Run, 1)]);
  const gs1RecalledLot = "LOT-G2";
  const gs1RecalledBatch = await newId(
    ledger.connect(maker).registerBatch(productId, gs1RecalledLot, now - DAY, gs1ExpiresOn),
    "BatchRegistered",
    "batchId",
  );
  await commission(s, gs1RecalledBatch, [`GS1:01${GTIN}21REC001`], {
    unitCount: 1,
    unitsPerCase: 0,
    casesPerPallet: 0,
  });
  await ledger.connect(maker).recallBatch(gs1RecalledBatch, "label");

  return {
    ...s,
    codes: {
      settled: raw(codes[0]!),
      dispensed: raw(codes[1]!),
      settledByOther: raw(codes[2]!),
      dispensed2: raw(codes[3]!),
      dispensed3: raw(codes[4]!),
      split: raw(codes[5]!),
      notDispensed: raw(codes[6]!),
      decommissioned: raw(codes[7]!),
      duplicated: raw(codes[8]!),
      atOtherPharmacy: raw(codes[10]!),
      caseCode: raw(codes[12]!),
      recalled: raw(recalledCodes[0]!),
      unknown: "86123459999999990000",
      gs1: `01${GTIN}21SER0001\u001d10${GS1_LOT}`,
      gs1Serial: "SER0001",
      gs1Recalled: `01${GTIN}21REC001`,
    },
    gs1ExpiresOn,
    gs1RecalledSerial: "REC001",
    gs1RecalledLot,
  };
}

/** The claims fixture indexed into a fresh redis-server, served over HTTP like a node; `close` stops it all. */
export interface IndexedClaimsFixture {
  f: ClaimsFixture;
  redis: RedisClient;
  reader: IndexReader;
  close(): Promise<void>;
}

export async function indexedClaimsFixture(): Promise<IndexedClaimsFixture> {
  const rpc = await startRpcServer();
  const server = await startRedis();
  const redis = connectRedis({ url: server.url });
  const f = await claimsFixture();
  const t = await newIndexer(rpc.url, await f.ledger.getAddress(), redis);
  await t.indexer.syncOnce();
  t.close();
  return {
    f,
    redis,
    reader: new IndexReader(redis, 16),
    close: async () => {
      redis.disconnect();
      await server.stop();
      await rpc.close();
    },
  };
}
