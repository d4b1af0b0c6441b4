import { expect } from "chai";
import { DEFAULT_SUPPLY_DAILY_RETENTION_DAYS } from "../backend/config/defaults";
import { IndexFatalError } from "../backend/index/indexer";
import { INDEX_LAYOUT, META } from "../backend/index/keys";
import { dumpIndex } from "../backend/index/dump";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis, type RedisServer } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer } from "./helpers/indexer";
import { everyEventScenario } from "./helpers/scenario";

/**
 * An index is continued only by an indexer that would have built it the same way: another layout version or another
 * ring retention would read and undo its fields in the wrong places without any error.
 */
describe("Indexer: an index built with another shape is refused, not continued", function () {
  let server: RedisServer;
  let rpc: { url: string; close(): Promise<void> };
  let redis: RedisClient;
  let ledger: string;

  before(async function () {
    [server, rpc] = await Promise.all([startRedis(), startRpcServer()]);
    redis = connectRedis({ url: server.url });
    const scenario = await everyEventScenario();
    ledger = await scenario.ledger.getAddress();
    const first = await newIndexer(rpc.url, ledger, redis);
    await first.indexer.syncOnce();
    first.close();
    // An event after the index was built, so that an indexer that continued when it must refuse would write it.
    await (await scenario.ledger.connect(scenario.maker).recallBatch(scenario.recalledBatchId, "after")).wait();
  });

  after(async function () {
    redis.disconnect();
    await Promise.all([rpc.close(), server.stop()]);
  });

  async function syncWith(options: Parameters<typeof newIndexer>[3]): Promise<Error | null> {
    const again = await newIndexer(rpc.url, ledger, redis, options);
    try {
      await again.indexer.syncOnce();
      return null;
    } catch (err) {
      return err as Error;
    } finally {
      again.close();
    }
  }

  it("records the layout and the retentions in the checkpoint", async function () {
    const checkpoint = JSON.parse((await redis.get(META.checkpoint))!) as Record<string, unknown>;
    expect(checkpoint).to.include({
      layout: INDEX_LAYOUT,
      supplyDailyRetentionDays: DEFAULT_SUPPLY_DAILY_RETENTION_DAYS,
    });
  });

  it("refuses another daily retention, naming it and the rebuild, and writes nothing", async function () {
    const before = await dumpIndex(redis);
    const failure = await syncWith({ supplyDailyRetentionDays: 30 });
    expect(failure).to.be.instanceOf(IndexFatalError);
    expect(failure!.message).to.contain(`supplyDailyRetentionDays ${DEFAULT_SUPPLY_DAILY_RETENTION_DAYS}, not 30`);
    expect(failure!.message).to.contain("npm run index:rebuild");
    expect((await dumpIndex(redis)).digest).to.equal(before.digest);
  });

  it("refuses an index from before the layout was recorded", async function () {
    const checkpoint = JSON.parse((await redis.get(META.checkpoint))!) as Record<string, unknown>;
    const { layout: _layout, ...older } = checkpoint;
    await redis.set(META.checkpoint, JSON.stringify(older));
    try {
      const failure = await syncWith({});
      expect(failure).to.be.instanceOf(IndexFatalError);
      expect(failure!.message).to.contain(`layout not recorded, not ${INDEX_LAYOUT}`);
    } finally {
      await redis.set(META.checkpoint, JSON.stringify(checkpoint));
    }
  });

  it("continues an index of the same shape", async function () {
    const before = await dumpIndex(redis);
    expect(await syncWith({})).to.equal(null);
    expect((await dumpIndex(redis)).digest).to.not.equal(before.digest); // the recall after the first sync
  });
});
