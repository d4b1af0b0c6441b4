import { expect } from "chai";
import { ethers } from "hardhat";
import Redis from "ioredis";
import { codeHash, DEFAULT_CODE_HASH_DOMAIN, parseCode } from "../backend/codes/parse";
import { Level } from "../backend/codes/refs";
import { IndexReader } from "../backend/index/query";
import { verifyIndex } from "../backend/index/verify";
import { dumpIndex } from "../backend/index/dump";
import { seedDemo } from "../scripts/lib/demo";
import type { DrugLedger } from "../typechain-types";
import { newIndexer, startRpcServer } from "./helpers/indexer";
import { startRedis, type RedisServer } from "../scripts/lib/redis-server";

describe("Indexer: demo data end to end", function () {
  let redisServer: RedisServer;
  let rpc: { url: string; close(): Promise<void> };
  let redis: Redis;
  let ledger: DrugLedger;

  before(async function () {
    redisServer = await startRedis();
    rpc = await startRpcServer();
    redis = new Redis(redisServer.url);
  });

  after(async function () {
    redis.disconnect();
    await rpc.close();
    await redisServer.stop();
  });

  it("indexes the demo and agrees with the chain's view functions", async function () {
    const signers = await ethers.getSigners();
    ledger = (await ethers.deployContract("DrugLedger", [0, signers[0]!.address])) as unknown as DrugLedger;
    const summary = await seedDemo(ledger, signers, DEFAULT_CODE_HASH_DOMAIN);
    const t = await newIndexer(rpc.url, await ledger.getAddress(), redis);
    const status = await t.indexer.syncOnce();
    expect(status.lagBlocks).to.equal(0);
    const reader = new IndexReader(redis, 16);
    const found = await reader.lookupCode(codeHash(parseCode(summary.sampleCodes.dispensedAndSettled).normalised));
    expect(found?.ref.level).to.equal(Level.Unit);
    const view = await reader.item(found!.ref);
    expect(view!.dispensing).to.not.equal(null);
    expect(view!.settlement).to.not.equal(null);
    expect(view!.product!.productCode).to.equal("8612345");
    const report = await verifyIndex(reader, ledger, { itemsPerRun: 0, runs: 0, seed: 1 });
    expect(report.differences).to.deep.equal([]);
    expect(report.itemsChecked).to.be.greaterThan(1000);
    const live = await dumpIndex(redis);
    await t.store.wipe();
    const t2 = await newIndexer(rpc.url, await ledger.getAddress(), redis);
    await t2.indexer.syncOnce();
    expect((await dumpIndex(redis)).digest).to.equal(live.digest);
    t.close();
    t2.close();
  });
});
