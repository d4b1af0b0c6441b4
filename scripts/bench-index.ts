/**
 * Back-fill benchmark: commissions and moves at least 1,000,000 unit codes on a local Hardhat node (its own
 * process, as a real node would be), then times the indexer back-filling all of it into a fresh redis-server.
 * The last line of output is one JSON object: codesIndexed, codesPerSecond, redisBytesPerCode, redisUsedMemoryBytes.
 *
 * BENCH_UNITS (default 1,000,000) sets the size.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { JsonRpcProvider, type JsonRpcSigner } from "ethers";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { palletRef, caseRef, packRefs } from "../backend/codes/refs";
import { caseCount, palletCount, type RunShape } from "../backend/codes/run";
import { loadConfig } from "../backend/config/env";
import { Indexer } from "../backend/index/indexer";
import { IndexStore } from "../backend/index/store";
import { LedgerChain } from "../backend/chain/client";
import { createLogger } from "../backend/log";
import { connectRedis, usedMemory } from "../backend/store/redis";
import { DrugLedger__factory, type DrugLedger } from "../typechain-types";
import { freePort, startRedis } from "./lib/redis-server";

const UNITS = Number(process.env.BENCH_UNITS ?? 1_000_000);
// 20,000 units a run keeps commissioning (about 566 gas a unit) under Osaka's 2^24 gas cap per transaction.
const SHAPE: RunShape = { unitCount: 20_000, unitsPerCase: 100, casesPerPallet: 10 };
const DAY = 86_400;

async function startNode(port: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn("npx", ["hardhat", "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    stdio: "ignore",
    detached: true,
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      const probe = new JsonRpcProvider(url, undefined, { staticNetwork: true });
      await probe.getBlockNumber();
      probe.destroy();
      return { url, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("hardhat node did not start");
}

async function populate(provider: JsonRpcProvider): Promise<{ ledger: DrugLedger; startBlock: number; runs: number }> {
  const [admin, maker, distributor, pharmacy] = (await Promise.all(
    [0, 1, 2, 3].map((i) => provider.getSigner(i)),
  )) as JsonRpcSigner[];
  const deployed = await new DrugLedger__factory(admin!).deploy(0, await admin!.getAddress());
  const startBlock = (await deployed.deploymentTransaction()!.wait())!.blockNumber;
  const ledger = deployed.connect(admin!) as DrugLedger;
  const wait = async (p: Promise<{ wait(): Promise<unknown> }>) => (await p).wait();
  await wait(ledger.onboard(await maker!.getAddress(), 1, "Bench Maker", "LIC-M", "310000"));
  await wait(ledger.onboard(await distributor!.getAddress(), 2, "Bench Distributor", "LIC-D", "310000"));
  await wait(ledger.onboard(await pharmacy!.getAddress(), 3, "Bench Pharmacy", "LIC-P", "310000"));
  const asMaker = ledger.connect(maker!);
  await wait(ledger.assignCodePrefixes(await maker!.getAddress(), ["CN:86123"]));
  await wait(asMaker.registerProduct("8612345", "Amoxicillin 250mg", "H20000001", "capsule 24/box", 24));
  const now = (await provider.getBlock("latest"))!.timestamp;
  await wait(asMaker.registerBatch(1, "LOT-BENCH", now - DAY, now + 700 * DAY));

  const runs = Math.ceil(UNITS / SHAPE.unitCount);
  const pending: Promise<unknown>[] = [];
  for (let r = 0; r < runs; r++) {
    const run = buildRun(demoRunCodes("8612345", SHAPE, 1 + r * SHAPE.unitCount), SHAPE);
    const tx = await asMaker.commission(
      1,
      SHAPE.unitCount,
      SHAPE.unitsPerCase,
      SHAPE.casesPerPallet,
      run.codes,
      run.witness,
    );
    pending.push(tx.wait());
  }
  await Promise.all(pending);
  // Move everything: every pallet to the distributor, then half of each run's cases on to the pharmacy.
  const receipts: Promise<unknown>[] = [];
  for (let runId = 1; runId <= runs; runId++) {
    const pallets = packRefs(Array.from({ length: palletCount(SHAPE) }, (_, i) => palletRef(runId, i)));
    const shipped = await (await asMaker.ship(await distributor!.getAddress(), pallets)).wait();
    const shipmentId = ledger.interface.parseLog(shipped!.logs[0]!)!.args.shipmentId as bigint;
    receipts.push(wait(ledger.connect(distributor!).receiveShipment(shipmentId, pallets)));
  }
  await Promise.all(receipts);
  for (let runId = 1; runId <= runs; runId++) {
    const cases = packRefs(Array.from({ length: caseCount(SHAPE) / 2 }, (_, i) => caseRef(runId, i)));
    const shipped = await (await ledger.connect(distributor!).ship(await pharmacy!.getAddress(), cases)).wait();
    const shipmentId = ledger.interface.parseLog(shipped!.logs[0]!)!.args.shipmentId as bigint;
    await wait(ledger.connect(pharmacy!).receiveShipment(shipmentId, cases));
  }
  return { ledger, startBlock, runs };
}

/** BENCH_CPU_PROFILE=file.cpuprofile records a V8 CPU profile of the back-fill alone (open it in Chrome DevTools). */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) => session.post(method, (err, res) => (err ? reject(err) : resolve(res))));
  await post("Profiler.enable");
  await post("Profiler.start");
  return {
    async stop(file) {
      const { profile } = (await post("Profiler.stop")) as { profile: object };
      await writeFile(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ?? "warn", "bench-index");
  const redisServer = await startRedis();
  const node = await startNode(await freePort());
  const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
  try {
    let t = Date.now();
    const { ledger, startBlock, runs } = await populate(provider);
    const head = await provider.getBlockNumber();
    const codes = runs * (SHAPE.unitCount + caseCount(SHAPE) + palletCount(SHAPE));
    console.log(
      `chain: ${runs} runs, ${codes} codes, ${head} blocks, prepared in ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );

    // Sized as .env.example advises: about 64 codes a bucket keeps buckets compact listpacks.
    const codeBucketBits = process.env.CODE_BUCKET_BITS
      ? config.CODE_BUCKET_BITS
      : Math.max(8, Math.ceil(Math.log2(codes / 64)));
    const redis = connectRedis({ url: redisServer.url }, log);
    const before = await usedMemory(redis);
    const chain = await LedgerChain.connect(node.url, await ledger.getAddress());
    const indexer = new Indexer({
      chain,
      store: new IndexStore(redis, log),
      log,
      startBlock,
      confirmations: config.CONFIRMATIONS,
      reorgDepth: config.REORG_DEPTH,
      maxRangeBlocks: config.LOG_RANGE_MAX_BLOCKS,
      batchMaxCodes: config.BATCH_MAX_CODES,
      pollIntervalMs: config.POLL_INTERVAL_MS,
      codeBucketBits,
    });
    const profiler = process.env.BENCH_CPU_PROFILE ? await startProfile() : null;
    t = Date.now();
    const status = await indexer.syncOnce();
    const seconds = (Date.now() - t) / 1000;
    if (profiler) await profiler.stop(process.env.BENCH_CPU_PROFILE!);
    const after = await usedMemory(redis);
    const result = {
      codesIndexed: status.codesIndexed,
      unitCodes: runs * SHAPE.unitCount,
      eventsIndexed: status.eventsIndexed,
      seconds: Number(seconds.toFixed(2)),
      codesPerSecond: Math.round(status.codesIndexed / seconds),
      redisBytesPerCode: Number(((after - before) / status.codesIndexed).toFixed(1)),
      redisBytesPerUnitCode: Number(((after - before) / (runs * SHAPE.unitCount)).toFixed(1)),
      redisUsedMemoryBytes: after,
      codeBucketBits,
    };
    console.log(`indexed ${result.codesIndexed} codes (${result.eventsIndexed} events) in ${result.seconds} s`);
    chain.destroy();
    redis.disconnect();
    console.log(JSON.stringify(result));
  } finally {
    provider.destroy();
    if (node.child.pid) process.kill(-node.child.pid, "SIGKILL");
    await redisServer.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
