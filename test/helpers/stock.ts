/** Stock checks shared by the stock tests: the counters against the index's per-unit records, and a rebuild. */
import { expect } from "chai";
import { dumpIndex } from "../../backend/index/dump";
import { STOCK_FIELD, SUPPLY_FIELD, supplyKey } from "../../backend/index/keys";
import { type BatchStock, IndexReader } from "../../backend/index/query";
import { connectRedis, type RedisClient } from "../../backend/store/redis";
import { startRedis } from "../../scripts/lib/redis-server";
import { newIndexer } from "./indexer";

export type Rpc = { url: string; close(): Promise<void> };

/** A batch's stock as comparable counts: holder id (or t{receiver id}, d, x) → units. */
type Counts = Record<string, number>;

function countsOf(stock: BatchStock): Counts {
  const out: Counts = {};
  for (const { holderId, units } of stock.held) out[STOCK_FIELD.held(holderId)] = units;
  for (const { holderId, units } of stock.inTransitTo) out[STOCK_FIELD.inTransitTo(holderId)] = units;
  if (stock.dispensed) out[STOCK_FIELD.dispensed] = stock.dispensed;
  if (stock.decommissioned) out[STOCK_FIELD.decommissioned] = stock.decommissioned;
  return out;
}

/** Stock per batch as the index's per-unit records say: every unit of every run, one by one. */
export async function stockByWalkingUnits(reader: IndexReader): Promise<Map<number, Counts>> {
  const out = new Map<number, Counts>();
  for (let runId = 1; ; runId++) {
    const run = await reader.run(runId);
    if (!run) break;
    let counts = out.get(run.batchId);
    if (!counts) out.set(run.batchId, (counts = {}));
    for (const unit of await reader.unitStates(run, 0, run.unitCount)) {
      const shipmentId = unit.custody.inTransitShipment;
      // In transit is counted per receiver: the shipment's own record names it.
      const receiver = shipmentId ? (await reader.shipment(shipmentId))!.toId : 0;
      const field = unit.dispensing
        ? STOCK_FIELD.dispensed
        : unit.custody.decommissioned
          ? STOCK_FIELD.decommissioned
          : shipmentId
            ? STOCK_FIELD.inTransitTo(receiver)
            : STOCK_FIELD.held(unit.custody.holderId);
      counts[field] = (counts[field] ?? 0) + 1;
    }
  }
  return out;
}

/** Every product's stock from the counters, per batch. */
export async function stockFromCounters(reader: IndexReader, day?: string): Promise<Map<number, Counts>> {
  const out = new Map<number, Counts>();
  for (let productId = 1; await reader.product(productId); productId++) {
    for (const batch of await reader.productStock(productId, day)) out.set(batch.batchId, countsOf(batch));
  }
  return out;
}

/** For every product: units commissioned == held + in transit + dispensed + decommissioned. */
export async function expectReconciled(reader: IndexReader): Promise<void> {
  for (let productId = 1; await reader.product(productId); productId++) {
    const commissioned = Number((await reader.redis.hget(supplyKey(productId), SUPPLY_FIELD.commissioned)) ?? 0);
    let accounted = 0;
    for (const b of await reader.productStock(productId)) {
      const inTransit = b.inTransitTo.reduce((sum, t) => sum + t.units, 0);
      expect(b.inTransit, `batch ${b.batchId} in transit`).to.equal(inTransit);
      accounted += b.held.reduce((sum, h) => sum + h.units, 0) + inTransit + b.dispensed + b.decommissioned;
    }
    expect(accounted, `product ${productId}`).to.equal(commissioned);
  }
}

export async function expectStockAsUnitsSay(reader: IndexReader): Promise<void> {
  const walked = await stockByWalkingUnits(reader);
  expect(Object.fromEntries(await stockFromCounters(reader))).to.deep.equal(Object.fromEntries(walked));
  await expectReconciled(reader);
}

async function expectEqualDumps(redis: RedisClient, other: RedisClient): Promise<void> {
  const [a, b] = await Promise.all([dumpIndex(redis), dumpIndex(other)]);
  const firstDifference = a.lines.findIndex((line, i) => line !== b.lines[i]);
  expect(firstDifference, `first difference: ${a.lines[firstDifference]} vs ${b.lines[firstDifference]}`).to.equal(-1);
  expect(a.lines.length).to.equal(b.lines.length);
}

/** Indexes the whole chain into a fresh redis-server and compares it with `redis`. */
export async function expectEqualToRebuild(
  rpc: Rpc,
  ledger: string,
  redis: RedisClient,
  options: Parameters<typeof newIndexer>[3] = {},
): Promise<void> {
  const other = await startRedis();
  const fresh = connectRedis({ url: other.url });
  try {
    const clean = await newIndexer(rpc.url, ledger, fresh, { ...options, reorgDepth: 0 });
    await clean.indexer.syncOnce();
    clean.close();
    await expectEqualDumps(redis, fresh);
  } finally {
    fresh.disconnect();
    await other.stop();
  }
}
