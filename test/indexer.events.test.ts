import { expect } from "chai";
import { ethers, network } from "hardhat";
import { Level } from "../backend/codes/refs";
import { dumpIndex } from "../backend/index/dump";
import { HANDLED_EVENTS } from "../backend/index/events";
import { TrailKind } from "../backend/index/model";
import { IndexReader } from "../backend/index/query";
import { verifyIndex } from "../backend/index/verify";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer, startTopology, TOPOLOGIES } from "./helpers/indexer";
import { idOf, MAKER_PREFIXES, OTHER_MAKER_PREFIXES, packRefs, settleWithConsent, unitRef } from "./helpers/ledger";
import { everyEventScenario, type Scenario } from "./helpers/scenario";

type Rpc = { url: string; close(): Promise<void> };

/** Indexes from scratch into `redis` and returns the indexer's final status. */
async function indexAll(rpc: Rpc, s: Scenario, redis: RedisClient, reorgDepth = 64) {
  const t = await newIndexer(rpc.url, await s.ledger.getAddress(), redis, { reorgDepth });
  try {
    return await t.indexer.syncOnce();
  } finally {
    t.close();
  }
}

async function expectEqualDumps(redis: RedisClient, other: RedisClient) {
  const [a, b] = await Promise.all([dumpIndex(redis), dumpIndex(other)]);
  const firstDifference = a.lines.findIndex((line, i) => line !== b.lines[i]);
  expect(firstDifference, `first difference: ${a.lines[firstDifference]} vs ${b.lines[firstDifference]}`).to.equal(-1);
  expect(a.lines.length).to.equal(b.lines.length);
}

for (const topology of TOPOLOGIES) {
  describe(`Indexer on a ${topology}`, function () {
    let rpc: Rpc;
    let redis: RedisClient;
    let stop: () => Promise<void>;
    let s: Scenario;
    let reader: IndexReader;

    before(async function () {
      rpc = await startRpcServer();
      ({ redis, stop } = await startTopology(topology));
      s = await everyEventScenario();
      await indexAll(rpc, s, redis);
      reader = new IndexReader(redis, 16);
    });

    after(async function () {
      redis.disconnect();
      await rpc.close();
      await stop();
    });

    it("has a handler for every event the ledger emitted", async function () {
      const logs = await ethers.provider.getLogs({ address: await s.ledger.getAddress(), fromBlock: 0 });
      const names = new Set(logs.map((l) => s.ledger.interface.parseLog(l)!.name));
      expect(names.size).to.be.greaterThanOrEqual(25);
      for (const name of names) expect(HANDLED_EVENTS, name).to.include(name);
    });

    it("agrees with the chain's view functions for every code", async function () {
      const report = await verifyIndex(reader, s.ledger, { runs: 0, itemsPerRun: 0, seed: 1 });
      expect(report.differences).to.deep.equal([]);
      expect(report.itemsChecked).to.equal(40 + 4 + 2 + 4 + 4);
    });

    it("flags a code commissioned twice and keeps the first run in the lookup", async function () {
      const found = await reader.lookupCode(s.duplicatedCode);
      expect(found!.ref).to.deep.equal({ runId: s.runId, level: Level.Unit, index: 0 });
      expect(found!.conflicts).to.deep.equal([
        { runId: s.runId, level: Level.Unit, index: 0 },
        { runId: s.duplicateRunId, level: Level.Unit, index: 0 },
        { runId: s.foreignCopyRunId, level: Level.Unit, index: 0 },
      ]);
      expect((await reader.counters("b", 1)).codeConflicts).to.equal(4);
      // The rival's copies sit in a run of its own product, which the code does not name (8612345...).
      expect((await reader.counters("b", 3)).codeConflicts).to.equal(4);
      const copy = (await reader.item({ runId: s.foreignCopyRunId, level: Level.Unit, index: 0 }))!;
      expect(copy.product!.productCode).to.equal("8654321");
    });

    it("keeps code prefixes, a reassigned product, a shipment closed short and the settings", async function () {
      const makerId = Number(await idOf(s.ledger, s.maker));
      const rival = (await reader.participant(Number(await idOf(s.ledger, s.otherMaker))))!;
      expect((await reader.participant(makerId))!.codePrefixes).to.deep.equal(MAKER_PREFIXES);
      expect(rival.codePrefixes).to.deep.equal(OTHER_MAKER_PREFIXES);
      expect((await reader.product(3))!.manufacturerId).to.equal(makerId);
      const shipment = (await reader.shipment(Number(s.partialShipmentId)))!;
      expect([shipment.discrepancy, shipment.received, shipment.returned, shipment.outstanding]).to.deep.equal([
        true,
        1,
        1,
        0,
      ]);
      const totals = await reader.totals();
      expect([totals.returnWindowDays, totals.maxRunCodes, totals.paused]).to.deep.equal(["20", "20000", undefined]);
    });

    it("tells a unit's story: product, batch, holder through its case and pallet, trail, dispensing, settlement", async function () {
      const view = (await reader.item({ runId: s.runId, level: Level.Unit, index: 0 }))!;
      expect(view.product!.name).to.equal("Amoxicillin 250mg");
      expect(view.batch!.lot).to.equal("LOT-A1");
      expect(view.manufacturer!.name).to.equal("Maker");
      expect(view.holder!.name).to.equal("Pharmacy");
      expect(view.trail.map((t) => [TrailKind[t.kind], Level[t.via]])).to.deep.equal([
        ["Shipped", "Pallet"],
        ["Received", "Pallet"],
        ["Shipped", "Case"],
        ["Received", "Case"],
        ["Opened", "Case"],
      ]);
      expect(view.dispensing!.pharmacyId).to.equal(Number(await idOf(s.ledger, s.pharmacy)));
      expect(view.settlement!.claimId).to.equal(s.claimId);
      expect((await reader.item({ runId: s.runId, level: Level.Unit, index: 1 }))!.settlement).to.equal(null);
      expect((await reader.item({ runId: s.runId, level: Level.Unit, index: 2 }))!.dispensing).to.equal(null);
    });

    it("keeps split packs, loose units, decommissioning and returned shipments", async function () {
      const split = (await reader.item({ runId: s.runId, level: Level.Unit, index: 3 }))!;
      expect(split.dispensing!.split).to.deep.equal({ dispensed: 6, packQuantity: 24 });
      expect(split.settlement!.split!.settled).to.equal(4);
      const loose = (await reader.item({ runId: s.runId, level: Level.Unit, index: 15 }))!;
      expect(loose.holder!.name).to.equal("Pharmacy");
      expect(loose.trail.filter((t) => t.via === Level.Unit).map((t) => TrailKind[t.kind])).to.deep.equal([
        "Shipped",
        "Received",
      ]);
      // Its case was opened by the distributor when the loose unit left: later moves of the pallet are not its.
      const caseOfLoose = (await reader.item({ runId: s.runId, level: Level.Case, index: 1 }))!;
      expect(caseOfLoose.trail.map((t) => [TrailKind[t.kind], Level[t.via]])).to.deep.equal([
        ["Shipped", "Pallet"],
        ["Received", "Pallet"],
        ["Opened", "Case"],
      ]);
      const stillInOpenedCase = (await reader.item({ runId: s.runId, level: Level.Unit, index: 17 }))!;
      expect(stillInOpenedCase.holder!.name).to.equal("Distributor");
      const movedOn = (await reader.item({ runId: s.runId, level: Level.Pallet, index: 0 }))!;
      expect(movedOn.holder!.name).to.equal("OtherPharmacy");
      expect(movedOn.trail.map((t) => TrailKind[t.kind])).to.deep.equal(["Shipped", "Received", "Shipped", "Received"]);
      const gone = (await reader.item({ runId: s.runId, level: Level.Unit, index: 16 }))!;
      expect(gone.custody.decommissioned).to.equal(true);
      expect(gone.holder!.name).to.equal("Distributor");
      const shipment = (await reader.shipment(Number(s.partialShipmentId)))!;
      expect(shipment).to.deep.include({ received: 1, returned: 1, outstanding: 0, discrepancy: true });
      const returned = (await reader.item({ runId: s.runId, level: Level.Pallet, index: 1 }))!;
      expect(returned.holder!.name).to.equal("Maker");
    });

    it("keeps participants, recalls, claims, settings, counters and recent activity", async function () {
      expect((await reader.participantByAccount(s.otherPharmacy.address))!.suspended).to.equal(false);
      const recalled = (await reader.batch(Number(s.recalledBatchId)))!;
      expect(recalled.recalled).to.equal(false);
      expect(recalled.recalls.map((r) => r.action)).to.deep.equal(["recalled", "lifted"]);
      expect((await reader.claim(s.claimId))!).to.deep.include({ unitsSettled: 1, unitsReversed: 1 });
      const totals = await reader.totals();
      expect(totals.returnWindowDays).to.equal("20");
      expect(totals).to.have.property("admin:DefaultAdminTransferScheduled");
      const pharmacyId = Number(await idOf(s.ledger, s.pharmacy));
      expect(await reader.counters("p", pharmacyId)).to.deep.include({ unitsDispensed: 3, unitsReturned: 1 });
      const recent = await reader.activity("p", pharmacyId);
      expect(recent.map((a) => a.event)).to.include.members(["UnitsSettled", "UnitSettledPartially", "UnitsDispensed"]);
    });

    it("equals a clean rebuild after following the chain block by block", async function () {
      const other = await startRedis();
      const fresh = connectRedis({ url: other.url });
      try {
        await indexAll(rpc, s, fresh, 0);
        await expectEqualDumps(redis, fresh);
      } finally {
        fresh.disconnect();
        await other.stop();
      }
    });
  });
}

describe("Indexer: reorgs", function () {
  let rpc: Rpc;
  let server: Awaited<ReturnType<typeof startRedis>>;
  let redis: RedisClient;

  before(async function () {
    rpc = await startRpcServer();
    server = await startRedis();
    redis = connectRedis({ url: server.url });
  });

  after(async function () {
    redis.disconnect();
    await rpc.close();
    await server.stop();
  });

  for (const shape of ["a longer", "a shorter"] as const) {
    it(`rolls back to the common ancestor and follows ${shape} new branch`, async function () {
      const s = await everyEventScenario();
      const t = await newIndexer(rpc.url, await s.ledger.getAddress(), redis, { reorgDepth: 1000 });
      await t.store.wipe();
      await t.indexer.syncOnce();
      const snapshot = (await network.provider.send("evm_snapshot")) as string;
      // Branch A: the pharmacy dispenses, the insurer settles, the maker recalls.
      await s.ledger.connect(s.pharmacy).dispense(packUnits(s, [4, 5]), ethers.ZeroHash);
      await settleWithConsent(s.ledger, s.insurer, s.pharmacy, ethers.id("claim-A"), packUnits(s, [4]));
      // Mined before the sync looks at the head: on Anvil a sent transaction's block can follow a few ms later.
      await (await s.ledger.connect(s.maker).recallBatch(2, "branch A")).wait();
      await t.indexer.syncOnce();
      expect((await new IndexReader(redis, 16).batch(2))!.recalled).to.equal(true);

      await network.provider.send("evm_revert", [snapshot]);
      // Branch B: something else happens at the same heights.
      await (await s.ledger.connect(s.pharmacy).dispense(packUnits(s, [6]), ethers.ZeroHash)).wait();
      if (shape === "a longer") {
        for (let i = 0; i < 4; i++) await network.provider.send("evm_mine");
      }
      const status = await t.indexer.syncOnce();
      expect(status.reorgsHandled).to.be.greaterThan(0);
      const reader = new IndexReader(redis, 16);
      expect((await reader.batch(2))!.recalled).to.equal(false);
      expect((await reader.item({ runId: s.runId, level: Level.Unit, index: 4 }))!.dispensing).to.equal(null);
      expect((await reader.item({ runId: s.runId, level: Level.Unit, index: 6 }))!.dispensing).to.not.equal(null);

      const other = await startRedis();
      const fresh = connectRedis({ url: other.url });
      try {
        const clean = await newIndexer(rpc.url, await s.ledger.getAddress(), fresh);
        await clean.indexer.syncOnce();
        clean.close();
        await expectEqualDumps(redis, fresh);
        const report = await verifyIndex(reader, s.ledger, { runs: 0, itemsPerRun: 0, seed: 2 });
        expect(report.differences).to.deep.equal([]);
      } finally {
        fresh.disconnect();
        await other.stop();
        t.close();
      }
    });
  }
});

function packUnits(s: Scenario, indexes: number[]): string {
  return packRefs(indexes.map((i) => unitRef(s.runId, i)));
}
