/**
 * `npm start`'s demo story (scripts/lib/seed.ts), written through the HTTP API against a chain, a real
 * redis-server and the indexer: every "code worth scanning" it prints scans as printed, the refused sale is an
 * alert, the second insurer was refused, and the index agrees with the chain and rebuilds to the same digest.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { apiContext, serveApi, type RunningApi } from "../backend/api/service";
import { LedgerChain } from "../backend/chain/client";
import { verifyIndex } from "../backend/index/verify";
import { dumpIndex } from "../backend/index/dump";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis, type RedisServer } from "../scripts/lib/redis-server";
import { CAST, seedStory, type Org, type SeedSummary } from "../scripts/lib/seed";
import type { DrugLedger } from "../typechain-types";
import { call, codePath, testConfig } from "./helpers/api";
import { newIndexer, startRpcServer, testLog, type TestIndexer } from "./helpers/indexer";
import { hardhatDevKeys } from "./helpers/writes";

describe("demo story (npm start), through the HTTP API", function () {
  this.timeout(300_000);
  let rpc: { url: string; close(): Promise<void> };
  let redisServer: RedisServer;
  let redis: RedisClient;
  let ledger: DrugLedger;
  let indexer: TestIndexer;
  let following: Promise<void>;
  let chain: LedgerChain;
  let api: RunningApi;
  let ctx: ReturnType<typeof apiContext>;
  const keys = {} as Record<Org, string>;
  const accounts = {} as Record<Org, string>;
  let story: SeedSummary;

  before(async function () {
    rpc = await startRpcServer();
    redisServer = await startRedis();
    redis = connectRedis({ url: redisServer.url }, testLog, 2_000);
    const signers = await ethers.getSigners();
    ledger = (await ethers.deployContract("DrugLedger", [0, signers[0]!.address])) as unknown as DrugLedger;
    indexer = await newIndexer(rpc.url, await ledger.getAddress(), redis);
    following = indexer.indexer.run();
    chain = await LedgerChain.connect(rpc.url, await ledger.getAddress());
    ctx = apiContext(
      testConfig({ SIGNER_DEV_KEYS: hardhatDevKeys(CAST.length).join(","), API_WRITE_WAIT_MS: "10000" }),
      redis,
      chain,
      testLog,
    );
    api = await serveApi(ctx, "127.0.0.1", 0);
    for (const [i, org] of CAST.entries()) {
      accounts[org] = signers[i]!.address;
      keys[org] = (await ctx.keys.issue(signers[i]!.address, `demo ${org}`)).key;
    }
    story = await seedStory({ url: api.url, keys, accounts });
  });

  after(async function () {
    indexer?.indexer.stop();
    await following?.catch(() => undefined);
    await api?.close();
    chain?.destroy();
    indexer?.close();
    redis?.disconnect();
    await rpc?.close();
    await redisServer?.stop();
  });

  it("onboards the cast: two manufacturers, two distributors, three pharmacies in two regions, two insurers", async function () {
    const roles: Record<string, Set<string>> = {};
    for (const org of CAST.slice(1)) {
      const p = (await ctx.reader.participantByAccount(accounts[org]))!;
      expect(p, org).to.not.equal(null);
      (roles[String(p.role)] ??= new Set()).add(p.region.slice(0, 2));
    }
    expect(Object.fromEntries(Object.entries(roles).map(([r, regions]) => [r, regions.size]))).to.deep.equal({
      "1": 2,
      "2": 2,
      "3": 2,
      "4": 2,
    });
  });

  it("every code worth scanning scans as printed", async function () {
    expect(story.codes.map((c) => c.verdict)).to.include.members(["OK", "ALERT", "UNKNOWN"]);
    expect(story.codes.some((c) => c.code.startsWith("(01)"))).to.equal(true);
    for (const c of story.codes) {
      const scan = await call<{ verdict: string; alerts: string[] }>(api, codePath(c.code), { key: keys[c.scannedBy] });
      expect(scan.status, `${c.code}: ${scan.text}`).to.equal(200);
      expect({ code: c.code, verdict: scan.body.verdict, alerts: scan.body.alerts }).to.deep.equal({
        code: c.code,
        verdict: c.verdict,
        alerts: c.alerts,
      });
    }
  });

  it("the sale of a pack the pharmacy never received was refused on chain and is an alert", async function () {
    expect(story.refusedSale.error).to.equal("NotHolder");
    const page = await call<{ alerts: { reason: string; code: { raw: string } }[] }>(api, "/v1/alerts?limit=100", {
      key: keys.regulator,
    });
    expect(page.status, page.text).to.equal(200);
    const refused = page.body.alerts.filter((a) => a.reason === "NOT_IN_YOUR_CUSTODY").map((a) => a.code.raw);
    expect(refused).to.include(story.refusedSale.code);
  });

  it("the second insurer's settlement of a settled code was refused, and that too is an alert", async function () {
    expect(story.refusedSettlement).to.deep.include({ insurer: "insurerPingan", error: "UnitAlreadySettled" });
    const page = await call<{ alerts: { reason: string }[] }>(api, "/v1/alerts?limit=100", {
      key: keys.regulator,
    });
    expect(page.body.alerts.map((a) => a.reason)).to.include("ALREADY_SETTLED");
  });

  it("the index agrees with the chain, and rebuilds from it to the same digest", async function () {
    const report = await verifyIndex(ctx.reader, ledger, { itemsPerRun: 0, runs: 0, seed: 1 });
    expect(report.differences).to.deep.equal([]);
    indexer.indexer.stop();
    await following;
    const live = await dumpIndex(redis);
    await indexer.store.wipe();
    const again = await newIndexer(rpc.url, await ledger.getAddress(), redis);
    await again.indexer.syncOnce();
    expect((await dumpIndex(redis)).digest).to.equal(live.digest);
    again.close();
  });
});
