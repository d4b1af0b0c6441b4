/**
 * Back-fill benchmark: commissions and moves at least 1,000,000 unit codes on a local Hardhat node (its own
 * process, as a real node would be), then times the indexer back-filling all of it into a fresh redis-server.
 * The last line of output is one JSON object: codesIndexed, codesPerSecond, redisBytesPerCode, redisUsedMemoryBytes,
 * and beside the back-fill's time (backfillSeconds) its ceilings on the same chain and ranges (see bench-ceilings.ts):
 * rawFetchSeconds, fetchDecodeSeconds, redisWriteSeconds, and ceilingRatio = backfillSeconds / (fetchDecodeSeconds +
 * redisWriteSeconds), the figure that holds on any machine.
 *
 * BENCH_UNITS (default 1,000,000) sets the size.
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { JsonRpcProvider } from "ethers";
import { totalCodes } from "../backend/codes/run";
import { loadConfig } from "../backend/config/env";
import { createLogger } from "../backend/log";
import { connectRedis, usedMemory } from "../backend/store/redis";
import { type BlockRange, measureCeilings, recordRanges } from "./lib/bench-ceilings";
import { indexChain, populate, SHAPE, startNode } from "./lib/bench-chain";
import { freePort, startRedis } from "./lib/redis-server";

const UNITS = Number(process.env.BENCH_UNITS ?? 1_000_000);

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
    const bench = await populate(provider, UNITS);
    const { runs } = bench;
    const head = await provider.getBlockNumber();
    const codes = runs * totalCodes(SHAPE);
    console.log(
      `chain: ${runs} runs, ${codes} codes, ${head} blocks, prepared in ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );

    // Sized as .env.example advises: about 64 codes a bucket keeps buckets compact listpacks.
    const codeBucketBits = process.env.CODE_BUCKET_BITS
      ? config.CODE_BUCKET_BITS
      : Math.max(8, Math.ceil(Math.log2(codes / 64)));
    const redis = connectRedis({ url: redisServer.url }, log);
    const before = await usedMemory(redis);
    const profiler = process.env.BENCH_CPU_PROFILE ? await startProfile() : null;
    t = Date.now();
    const ranges: BlockRange[] = [];
    const status = await indexChain(node.url, bench, redis, codeBucketBits, log, config, (client) =>
      recordRanges(client, ranges),
    );
    const seconds = (Date.now() - t) / 1000;
    if (profiler) await profiler.stop(process.env.BENCH_CPU_PROFILE!);
    const after = await usedMemory(redis);
    const ceilings = await measureCeilings(node.url, await bench.ledger.getAddress(), ranges, codeBucketBits, log);
    const result = {
      codesIndexed: status.codesIndexed,
      unitCodes: runs * SHAPE.unitCount,
      eventsIndexed: status.eventsIndexed,
      seconds: Number(seconds.toFixed(2)),
      backfillSeconds: Number(seconds.toFixed(2)),
      rawFetchSeconds: ceilings.rawFetchSeconds,
      fetchDecodeSeconds: ceilings.fetchDecodeSeconds,
      redisWriteSeconds: ceilings.redisWriteSeconds,
      ceilingRatio: Number((seconds / (ceilings.fetchDecodeSeconds + ceilings.redisWriteSeconds)).toFixed(2)),
      logRanges: ranges.length,
      logBytes: ceilings.rawFetchBytes,
      codesPerSecond: Math.round(status.codesIndexed / seconds),
      redisBytesPerCode: Number(((after - before) / status.codesIndexed).toFixed(1)),
      redisBytesPerUnitCode: Number(((after - before) / (runs * SHAPE.unitCount)).toFixed(1)),
      redisUsedMemoryBytes: after,
      codeBucketBits,
    };
    console.log(`indexed ${result.codesIndexed} codes (${result.eventsIndexed} events) in ${result.seconds} s`);
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
