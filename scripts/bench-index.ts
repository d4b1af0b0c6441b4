/**
 * Back-fill benchmark: commissions and moves at least 1,000,000 unit codes on a local Hardhat node (its own
 * process, as a real node would be), then times the indexer back-filling all of it into a fresh redis-server.
 * The last line of output is one JSON object: codesIndexed, codesPerSecond, redisBytesPerCode, redisUsedMemoryBytes,
 * and beside the back-fill's time (backfillSeconds) its ceilings on the same chain and ranges (see bench-ceilings.ts):
 * rawFetchSeconds, fetchDecodeSeconds, redisWriteSeconds, and ceilingRatio = backfillSeconds / (fetchDecodeSeconds +
 * redisWriteSeconds), the figure that holds on any machine.
 *
 * BENCH_UNITS (default 1,000,000) sets the size; BENCH_RUNS (default 3) how many back-fills of the same chain are
 * counted, each into a fresh redis-server: the JSON holds the medians. A first, uncounted back-fill warms the
 * runtime (both the back-fill's code and the ceilings' share it) and records the ranges; each counted back-fill is
 * then bracketed by its ceilings, measured right before and right after it on the same ranges, and compared with
 * the faster of the two (each ceiling stays a lower bound of the same work): on a shared machine the load drifts
 * within seconds, and ceilings taken once, only after the back-fill, measured another moment's load (single ratios
 * swung 0.96 to 2.28 at load average 17). The garbage a part leaves is collected before the next one is timed.
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { JsonRpcProvider } from "ethers";
import { totalCodes } from "../backend/codes/run";
import { type Config, loadConfig } from "../backend/config/env";
import { createLogger, type Logger } from "../backend/log";
import { connectRedis, usedMemory } from "../backend/store/redis";
import type { IndexerStatus } from "../backend/index/indexer";
import { type BlockRange, type Ceilings, measureCeilings, recordRanges } from "./lib/bench-ceilings";
import { type BenchChain, indexChain, populate, SHAPE, startNode } from "./lib/bench-chain";
import { freePort, startRedis } from "./lib/redis-server";

const UNITS = Number(process.env.BENCH_UNITS ?? 1_000_000);
/** Back-fills of the same chain, each into a fresh redis-server; the figures printed are their medians. */
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));

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

setFlagsFromString("--expose-gc");
/** A full collection, so that no timed part pays for the garbage of the one before. */
const collectGarbage = runInNewContext("gc") as () => void;

interface RunFigures {
  codesIndexed: number;
  eventsIndexed: number;
  backfillSeconds: number;
  rawFetchSeconds: number;
  fetchDecodeSeconds: number;
  redisWriteSeconds: number;
  /** [fetchDecodeSeconds, redisWriteSeconds] measured right before and right after the back-fill. */
  ceilingsBefore: [number, number];
  ceilingsAfter: [number, number];
  ceilingRatio: number;
  codesPerSecond: number;
  logRanges: number;
  logBytes: number;
  redisBytesPerCode: number;
  redisBytesPerUnitCode: number;
  redisUsedMemoryBytes: number;
}

/** One back-fill of the whole chain into a fresh redis-server; `ranges` receives the eth_getLogs ranges fetched. */
async function backfillOnce(
  nodeUrl: string,
  bench: BenchChain,
  codeBucketBits: number,
  log: Logger,
  config: Config,
  ranges: BlockRange[],
  profileFile: string | undefined,
): Promise<{ seconds: number; status: IndexerStatus; usedBytes: number; usedMemoryBytes: number }> {
  const redisServer = await startRedis();
  const redis = connectRedis({ url: redisServer.url }, log);
  try {
    const before = await usedMemory(redis);
    collectGarbage();
    const profiler = profileFile ? await startProfile() : null;
    const t = performance.now();
    const status = await indexChain(nodeUrl, bench, redis, codeBucketBits, log, config, (client) =>
      recordRanges(client, ranges),
    );
    const seconds = (performance.now() - t) / 1000;
    if (profiler) await profiler.stop(profileFile!);
    const after = await usedMemory(redis);
    return { seconds, status, usedBytes: after - before, usedMemoryBytes: after };
  } finally {
    redis.disconnect();
    await redisServer.stop();
  }
}

const sameRanges = (a: readonly BlockRange[], b: readonly BlockRange[]): boolean =>
  a.length === b.length && a.every(([from, to], i) => from === b[i]![0] && to === b[i]![1]);

/** A counted back-fill between two measurements of its ceilings on the same ranges (see the header). */
async function bracketedRun(
  nodeUrl: string,
  bench: BenchChain,
  codeBucketBits: number,
  log: Logger,
  config: Config,
  ranges: readonly BlockRange[],
  profileFile: string | undefined,
): Promise<RunFigures> {
  const address = await bench.ledger.getAddress();
  collectGarbage();
  const before = await measureCeilings(nodeUrl, address, ranges, codeBucketBits, log);
  const fetched: BlockRange[] = [];
  const { seconds, status, usedBytes, usedMemoryBytes } = await backfillOnce(
    nodeUrl,
    bench,
    codeBucketBits,
    log,
    config,
    fetched,
    profileFile,
  );
  // The indexer sizes its ranges from the responses alone: the same chain gives the same ranges.
  if (!sameRanges(fetched, ranges)) throw new Error("the back-fill fetched other ranges than the warm-up did");
  collectGarbage();
  const after = await measureCeilings(nodeUrl, address, ranges, codeBucketBits, log);
  const fastest = (pick: (c: Ceilings) => number) => Math.min(pick(before), pick(after));
  const fetchDecodeSeconds = fastest((c) => c.fetchDecodeSeconds);
  const redisWriteSeconds = fastest((c) => c.redisWriteSeconds);
  return {
    codesIndexed: status.codesIndexed,
    eventsIndexed: status.eventsIndexed,
    backfillSeconds: Number(seconds.toFixed(2)),
    rawFetchSeconds: fastest((c) => c.rawFetchSeconds),
    fetchDecodeSeconds,
    redisWriteSeconds,
    ceilingsBefore: [before.fetchDecodeSeconds, before.redisWriteSeconds],
    ceilingsAfter: [after.fetchDecodeSeconds, after.redisWriteSeconds],
    ceilingRatio: Number((seconds / (fetchDecodeSeconds + redisWriteSeconds)).toFixed(2)),
    codesPerSecond: Math.round(status.codesIndexed / seconds),
    logRanges: ranges.length,
    logBytes: after.rawFetchBytes,
    redisBytesPerCode: Number((usedBytes / status.codesIndexed).toFixed(1)),
    redisBytesPerUnitCode: Number((usedBytes / (bench.runs * SHAPE.unitCount)).toFixed(1)),
    redisUsedMemoryBytes: usedMemoryBytes,
  };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ?? "warn", "bench-index");
  const node = await startNode(await freePort());
  const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
  try {
    const t = Date.now();
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
    // Warm-up: an uncounted back-fill, which also records the ranges the counted ones fetch.
    const ranges: BlockRange[] = [];
    const warm = await backfillOnce(node.url, bench, codeBucketBits, log, config, ranges, undefined);
    console.log(`warm-up: ${warm.status.codesIndexed} codes in ${warm.seconds.toFixed(2)} s, ${ranges.length} ranges`);
    const figures: RunFigures[] = [];
    for (let run = 1; run <= RUNS; run++) {
      // The profile, when asked for, is of the last back-fill.
      const profile = run === RUNS ? process.env.BENCH_CPU_PROFILE : undefined;
      const f = await bracketedRun(node.url, bench, codeBucketBits, log, config, ranges, profile);
      figures.push(f);
      console.log(
        `run ${run}/${RUNS}: ${f.codesIndexed} codes in ${f.backfillSeconds} s (${f.codesPerSecond} codes/s); ` +
          `ceilings (fastest of before ${f.ceilingsBefore.join("+")} and after ${f.ceilingsAfter.join("+")}): ` +
          `raw fetch ${f.rawFetchSeconds} s, fetch+decode ${f.fetchDecodeSeconds} s, ` +
          `redis write ${f.redisWriteSeconds} s; ratio ${f.ceilingRatio}`,
      );
    }
    const mid = (pick: (f: RunFigures) => number) => median(figures.map(pick));
    const backfillSeconds = Number(mid((f) => f.backfillSeconds).toFixed(2));
    const result = {
      runs: RUNS,
      codesIndexed: figures[0]!.codesIndexed,
      unitCodes: runs * SHAPE.unitCount,
      eventsIndexed: figures[0]!.eventsIndexed,
      seconds: backfillSeconds,
      backfillSeconds,
      rawFetchSeconds: mid((f) => f.rawFetchSeconds),
      fetchDecodeSeconds: mid((f) => f.fetchDecodeSeconds),
      redisWriteSeconds: mid((f) => f.redisWriteSeconds),
      ceilingRatio: mid((f) => f.ceilingRatio),
      ceilingRatios: figures.map((f) => f.ceilingRatio),
      logRanges: figures[0]!.logRanges,
      logBytes: figures[0]!.logBytes,
      codesPerSecond: Math.round(mid((f) => f.codesPerSecond)),
      codesPerSecondRange: [
        Math.min(...figures.map((f) => f.codesPerSecond)),
        Math.max(...figures.map((f) => f.codesPerSecond)),
      ],
      redisBytesPerCode: mid((f) => f.redisBytesPerCode),
      redisBytesPerUnitCode: mid((f) => f.redisBytesPerUnitCode),
      redisUsedMemoryBytes: figures[figures.length - 1]!.redisUsedMemoryBytes,
      ceilingsBefore: figures.map((f) => f.ceilingsBefore),
      ceilingsAfter: figures.map((f) => f.ceilingsAfter),
      codeBucketBits,
    };
    console.log(
      `indexed ${result.codesIndexed} codes (${result.eventsIndexed} events), median of ${RUNS}: ${result.seconds} s`,
    );
    console.log(JSON.stringify(result));
  } finally {
    provider.destroy();
    if (node.child.pid) process.kill(-node.child.pid, "SIGKILL");
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
