import { expect } from "chai";
import { ethers } from "hardhat";
import { META } from "../backend/index/keys";
import { dumpIndex } from "../backend/index/dump";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer } from "./helpers/indexer";
import { everyEventScenario } from "./helpers/scenario";

describe("Indexer on a Redis Cluster: a commit cut short", function () {
  let cluster: RedisCluster;
  let single: RedisServer;
  let rpc: { url: string; close(): Promise<void> };
  let redis: RedisClient;
  let reference: RedisClient;

  before(async function () {
    [cluster, single, rpc] = await Promise.all([startRedisCluster(), startRedis(), startRpcServer()]);
    redis = connectRedis({ clusterNodes: cluster.nodes });
    reference = connectRedis({ url: single.url });
  });

  after(async function () {
    redis.disconnect();
    reference.disconnect();
    await Promise.all([rpc.close(), cluster.stop(), single.stop()]);
  });

  it("re-applies the journal a crash left half-applied, and ends equal to a clean index", async function () {
    const s = await everyEventScenario();
    const ledger = await s.ledger.getAddress();
    // The process "dies" after a few writes of its first commit: the journal is saved, the writes half done.
    const client = redis as unknown as { call: (...args: unknown[]) => Promise<unknown> };
    const call = client.call.bind(client);
    let writes = 0;
    client.call = (...args: unknown[]) => (++writes > 5 ? Promise.reject(new Error("simulated crash")) : call(...args));
    const crashed = await newIndexer(rpc.url, ledger, redis, { reorgDepth: 0 });
    const failure = await crashed.indexer.syncOnce().then(
      () => null,
      (err: Error) => err,
    );
    crashed.close();
    client.call = call;
    expect(failure?.message).to.equal("simulated crash");
    expect(await redis.exists(META.journal)).to.equal(1);
    const stuckAt = JSON.parse((await redis.get(META.checkpoint)) ?? '{"number":-1}') as { number: number };
    expect(stuckAt.number).to.be.below(await ethers.provider.getBlockNumber());

    const restarted = await newIndexer(rpc.url, ledger, redis, { reorgDepth: 0 });
    await restarted.indexer.syncOnce();
    restarted.close();
    expect(await redis.exists(META.journal)).to.equal(0);

    const clean = await newIndexer(rpc.url, ledger, reference);
    await clean.indexer.syncOnce();
    clean.close();
    const [a, b] = await Promise.all([dumpIndex(redis), dumpIndex(reference)]);
    expect(a.lines.length).to.be.greaterThan(100);
    expect(a.digest).to.equal(b.digest);
  });
});
