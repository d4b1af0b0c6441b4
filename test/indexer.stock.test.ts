/**
 * Stock counters (`sb:{batchId}`, see backend/index/keys.ts): checked against the index's own per-unit custody and
 * dispensing (every unit of every run walked, the oracle), reconciled with the units commissioned, at a past day,
 * per hour, after a rebuild and after a reorg.
 */
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { supplyKey, utcDay } from "../backend/index/keys";
import { IndexReader } from "../backend/index/query";
import { dispensedByRegion } from "../backend/supply/read";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer } from "./helpers/indexer";
import { expectEqualToRebuild, expectStockAsUnitsSay, type Rpc, stockFromCounters } from "./helpers/stock";
import { caseRef, idOf, packRefs, palletRef, ship, unitRef } from "./helpers/ledger";
import { everyEventScenario, type Scenario } from "./helpers/scenario";

describe("Indexer: stock per batch and holder", function () {
  this.timeout(180_000);
  let rpc: Rpc;
  let server: Awaited<ReturnType<typeof startRedis>>;
  let redis: RedisClient;
  let s: Scenario;
  let reader: IndexReader;
  let sync: () => Promise<unknown>;

  before(async function () {
    rpc = await startRpcServer();
    server = await startRedis();
    redis = connectRedis({ url: server.url });
    s = await everyEventScenario();
    const t = await newIndexer(rpc.url, await s.ledger.getAddress(), redis, { reorgDepth: 1000 });
    sync = () => t.indexer.syncOnce();
    await sync();
    reader = new IndexReader(redis, 16);
  });

  after(async function () {
    redis.disconnect();
    await rpc.close();
    await server.stop();
  });

  it("counts every unit of the every-event scenario where its own records put it, summing to what was commissioned", async function () {
    await expectStockAsUnitsSay(reader);
    const [batch] = await reader.productStock(1);
    // Run 1 (40 units, 10 a case, 2 cases a pallet) and the 4-unit duplicate run, both of batch 1.
    expect(batch!.lot).to.equal("LOT-A1");
    // Units 0, 1 dispensed whole, unit 3 split (from its first dose), unit 15 dispensed loose; unit 16 decommissioned.
    expect([batch!.dispensed, batch!.decommissioned, batch!.inTransit]).to.deep.equal([4, 1, 0]);
  });

  it("keeps the closing stock of each day, and dispensing per hour beside the days", async function () {
    const day0 = utcDay((await ethers.provider.getBlock("latest"))!.timestamp);
    const closedDay0 = await stockFromCounters(reader);
    await time.increase(86_400);
    // The next day: the pallet taken back goes out again and arrives in part; a unit dispensed.
    const palletBack = palletRef(s.runId, 1);
    const again = await ship(s.ledger, s.maker, s.distributor, [palletBack]);
    await s.ledger.connect(s.distributor).receiveShipment(again, packRefs([palletBack]));
    const onward = await ship(s.ledger, s.distributor, s.pharmacy, [caseRef(s.runId, 2), caseRef(s.runId, 3)]);
    await s.ledger.connect(s.pharmacy).receiveShipment(onward, packRefs([caseRef(s.runId, 2)]));
    await s.ledger
      .connect(s.pharmacy)
      .dispense(packRefs([unitRef(s.runId, 20), unitRef(s.runId, 21)]), ethers.ZeroHash);
    await sync();
    const day1 = utcDay((await ethers.provider.getBlock("latest"))!.timestamp);
    expect(day1 > day0).to.equal(true);

    await expectStockAsUnitsSay(reader);
    expect(Object.fromEntries(await stockFromCounters(reader, day0))).to.deep.equal(Object.fromEntries(closedDay0));
    expect(Object.fromEntries(await stockFromCounters(reader))).to.not.deep.equal(Object.fromEntries(closedDay0));
    if (process.env.STOCK_DEBUG)
      console.log(JSON.stringify(await reader.productStock(1)), await reader.hourlyDispensing(1));
    expect(Object.fromEntries(await stockFromCounters(reader, day1))).to.deep.equal(
      Object.fromEntries(await stockFromCounters(reader)),
    );
    expect(await reader.productStock(1, "2000-01-01")).to.deep.equal([]);
    const [batch] = await reader.productStock(1);
    expect(batch!.inTransit).to.equal(10); // case 3 not yet received, on its way to the pharmacy
    const pharmacyId = Number(await idOf(s.ledger, s.pharmacy));
    expect(batch!.inTransitTo).to.deep.equal([{ holderId: pharmacyId, units: 10 }]);

    // Hours sum to the days: everything here was dispensed within the week the ring keeps.
    const daily = dispensedByRegion(await redis.hgetall(supplyKey(1)));
    const hours = await reader.hourlyDispensing(1);
    for (const day of [day0, day1]) {
      const perRegion = new Map<string, number>();
      for (const h of hours.filter((h) => utcDay(h.hour * 3600) === day))
        perRegion.set(h.region, (perRegion.get(h.region) ?? 0) + h.units);
      const regions = [...daily].filter(([, days]) => days.has(day));
      expect(regions.length).to.be.greaterThan(0);
      for (const [region, days] of regions)
        expect(perRegion.get(region), `${region} on ${day}`).to.equal(days.get(day));
    }
  });

  it("equals a clean rebuild", async function () {
    await expectEqualToRebuild(rpc, await s.ledger.getAddress(), redis);
  });

  it("follows a reorg: stock of the abandoned branch is undone, the new branch counted", async function () {
    const before = await stockFromCounters(reader);
    const snapshot = (await network.provider.send("evm_snapshot")) as string;
    // Branch A: the last case of the pallet in transit is taken back, a unit decommissioned, a split pack started.
    await s.ledger.connect(s.distributor).returnToSender(await lastShipmentId(s), packRefs([caseRef(s.runId, 3)]));
    await s.ledger.connect(s.pharmacy).decommission(packRefs([unitRef(s.runId, 22)]), 0);
    await s.ledger.connect(s.pharmacy).dispensePartial(unitRef(s.runId, 23), 1, ethers.ZeroHash);
    await sync();
    await expectStockAsUnitsSay(reader);
    expect(Object.fromEntries(await stockFromCounters(reader))).to.not.deep.equal(Object.fromEntries(before));

    await network.provider.send("evm_revert", [snapshot]);
    // Branch B: the pharmacy receives the case after all.
    await s.ledger.connect(s.pharmacy).receiveShipment(await lastShipmentId(s), packRefs([caseRef(s.runId, 3)]));
    await network.provider.send("evm_mine");
    const status = (await sync()) as { reorgsHandled: number };
    expect(status.reorgsHandled).to.be.greaterThan(0);
    await expectStockAsUnitsSay(reader);
    const [batch] = await reader.productStock(1);
    expect([batch!.inTransit, batch!.decommissioned]).to.deep.equal([0, 1]);
    await expectEqualToRebuild(rpc, await s.ledger.getAddress(), redis);
  });
});

async function lastShipmentId(s: Scenario): Promise<bigint> {
  const logs = await s.ledger.queryFilter(s.ledger.filters.ShipmentCreated());
  return logs[logs.length - 1]!.args.shipmentId;
}
