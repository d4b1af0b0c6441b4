import { readFile } from "node:fs/promises";
import { LedgerChain } from "../chain/client";
import type { Config } from "../config/env";
import type { Logger } from "../log";
import { connectRedis, type RedisClient } from "../store/redis";
import { Indexer } from "./indexer";
import { IndexStore } from "./store";

export interface Deployment {
  ledger: string;
  deployedAtBlock: number;
}

/** The ledger to index: LEDGER_ADDRESS and START_BLOCK, else what the deployment file recorded. */
export async function resolveDeployment(config: Config): Promise<Deployment> {
  let recorded: Partial<Deployment> = {};
  try {
    recorded = JSON.parse(await readFile(config.DEPLOYMENT_FILE, "utf8")) as Partial<Deployment>;
  } catch {
    // no deployment file: LEDGER_ADDRESS must say where the ledger is
  }
  const ledger = config.LEDGER_ADDRESS ?? recorded.ledger;
  if (!ledger) {
    throw new Error(`no ledger to index: set LEDGER_ADDRESS or deploy first (no ${config.DEPLOYMENT_FILE})`);
  }
  const fromFile = recorded.ledger?.toLowerCase() === ledger.toLowerCase() ? recorded.deployedAtBlock : undefined;
  return { ledger, deployedAtBlock: config.START_BLOCK ?? fromFile ?? 0 };
}

export function connectIndexRedis(config: Config, log?: Logger): RedisClient {
  return connectRedis(
    config.REDIS_CLUSTER_NODES.length > 0 ? { clusterNodes: config.REDIS_CLUSTER_NODES } : { url: config.REDIS_URL },
    log,
    config.REDIS_COMMAND_TIMEOUT_MS,
  );
}

/** Connects to the node, retrying with backoff while it is away. */
export async function connectChain(
  config: Config,
  ledger: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<LedgerChain> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await LedgerChain.connect(config.RPC_URL, ledger);
    } catch (err) {
      if (signal?.aborted) throw err;
      const delay = Math.min(250 * 2 ** Math.min(attempt - 1, 6), 10_000);
      log.warn(
        { rpc: config.RPC_URL, err: (err as Error).message, retryInMs: delay },
        "chain node unreachable; retrying",
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export interface IndexerService {
  indexer: Indexer;
  store: IndexStore;
  chain: LedgerChain;
  close(): Promise<void>;
}

/** Wires an indexer from configuration. */
export async function createIndexer(config: Config, log: Logger): Promise<IndexerService> {
  const deployment = await resolveDeployment(config);
  const chain = await connectChain(config, deployment.ledger, log);
  const redis = connectIndexRedis(config, log);
  const store = new IndexStore(redis, log);
  const indexer = new Indexer({
    chain,
    store,
    log,
    startBlock: deployment.deployedAtBlock,
    confirmations: config.CONFIRMATIONS,
    reorgDepth: config.REORG_DEPTH,
    maxRangeBlocks: config.LOG_RANGE_MAX_BLOCKS,
    batchMaxCodes: config.BATCH_MAX_CODES,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    codeBucketBits: config.CODE_BUCKET_BITS,
    supplyHourlyRetentionHours: config.SUPPLY_HOURLY_RETENTION_HOURS,
    supplyDailyRetentionDays: config.SUPPLY_DAILY_RETENTION_DAYS,
  });
  return {
    indexer,
    store,
    chain,
    async close() {
      indexer.stop();
      chain.destroy();
      redis.disconnect();
    },
  };
}
