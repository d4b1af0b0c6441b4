import hre from "hardhat";
import { TASK_NODE_CREATE_SERVER } from "hardhat/builtin-tasks/task-names";
import { LedgerChain } from "../../backend/chain/client";
import { Indexer, type IndexerOptions } from "../../backend/index/indexer";
import { IndexStore } from "../../backend/index/store";
import { createLogger } from "../../backend/log";
import { connectRedis, type RedisClient } from "../../backend/store/redis";
import { startRedis, startRedisCluster } from "../../scripts/lib/redis-server";

/** The Redis shapes the index, the alerts and the rate limits must hold on. */
export const TOPOLOGIES = ["single Redis", "Redis Cluster (3 masters)"] as const;
export type Topology = (typeof TOPOLOGIES)[number];

/** A fresh redis-server (or 3-master cluster) on free loopback ports, a client of it, and how to stop it. */
export async function startTopology(topology: Topology): Promise<{ redis: RedisClient; stop(): Promise<void> }> {
  if (topology === "single Redis") {
    const server = await startRedis();
    return { redis: connectRedis({ url: server.url }), stop: () => server.stop() };
  }
  const cluster = await startRedisCluster();
  return { redis: connectRedis({ clusterNodes: cluster.nodes }), stop: () => cluster.stop() };
}

interface JsonRpcServer {
  listen(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

/**
 * The chain's JSON-RPC URL for indexers and child processes: on Hardhat's in-process network, served over HTTP on a
 * free loopback port; on a node of its own (TEST_CHAIN=anvil), that node's URL, which the test run owns.
 */
export async function startRpcServer(): Promise<{ url: string; close(): Promise<void> }> {
  if ("url" in hre.network.config) return { url: hre.network.config.url, close: async () => undefined };
  const server = (await hre.run(TASK_NODE_CREATE_SERVER, {
    hostname: "127.0.0.1",
    port: 0,
    provider: hre.network.provider,
  })) as JsonRpcServer;
  const { port } = await server.listen();
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

export const testLog = createLogger(process.env.TEST_LOG_LEVEL ?? "silent", "test-indexer");

export interface TestIndexer {
  indexer: Indexer;
  store: IndexStore;
  chain: LedgerChain;
  close(): void;
}

/** An indexer of `ledger` from `startBlock` into `redis`; settings default to the shipped defaults. */
export async function newIndexer(
  rpcUrl: string,
  ledger: string,
  redis: RedisClient,
  options: Partial<Omit<IndexerOptions, "chain" | "store">> = {},
): Promise<TestIndexer> {
  const chain = await LedgerChain.connect(rpcUrl, ledger);
  const store = new IndexStore(redis, testLog);
  const indexer = new Indexer({
    chain,
    store,
    log: testLog,
    startBlock: 0,
    confirmations: 0,
    reorgDepth: 64,
    maxRangeBlocks: 5000,
    batchMaxCodes: 300_000,
    pollIntervalMs: 50,
    codeBucketBits: 16,
    ...options,
  });
  return { indexer, store, chain, close: () => chain.destroy() };
}
