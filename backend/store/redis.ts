import { createHash } from "node:crypto";
import Redis, { Cluster, type ClusterNode } from "ioredis";
import type { Logger } from "../log";

export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  url?: string;
  clusterNodes?: ClusterNode[];
}

/**
 * Connects to a single Redis (url) or a Redis Cluster (a list of some of its nodes). Commands fail fast while
 * the server is away (so the caller's own backoff decides what to retry) and are not re-sent on reconnect, which
 * could replay the tail of a transaction outside it; ioredis keeps reconnecting in the background. ioredis leaves
 * the commands it does not re-send pending for ever, so every command also has a timeout.
 */
export function connectRedis(target: RedisTarget, log?: Logger, commandTimeoutMs = 20_000): RedisClient {
  const retryStrategy = (attempt: number): number => Math.min(100 * attempt, 2000);
  const commandOptions = {
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
  };
  const options = { ...commandOptions, enableAutoPipelining: true, retryStrategy };
  const client: RedisClient =
    target.clusterNodes && target.clusterNodes.length > 0
      ? new Cluster(target.clusterNodes, {
          enableAutoPipelining: true,
          clusterRetryStrategy: retryStrategy,
          redisOptions: commandOptions,
        })
      : new Redis(target.url ?? "redis://127.0.0.1:6379", options);
  let lastError = "";
  client.on("error", (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt; log each distinct one once.
    if (err.message !== lastError) log?.warn({ err: err.message }, "redis connection error");
    lastError = err.message;
  });
  client.on("ready", () => {
    if (lastError) log?.info("redis connection restored");
    lastError = "";
  });
  return client;
}

export const isCluster = (client: RedisClient): client is Cluster => client instanceof Cluster;

/** The Redis servers holding data: the masters of a cluster, or the single server. */
export function dataNodes(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes("master") : [client];
}

/** Every key on every data node (SCAN, never KEYS). */
export async function scanAllKeys(client: RedisClient, match = "*"): Promise<string[]> {
  const keys: string[] = [];
  for (const node of dataNodes(client)) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", match, "COUNT", 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
  }
  return keys;
}

/** Sum of `used_memory` over the data nodes. */
export async function usedMemory(client: RedisClient): Promise<number> {
  let total = 0;
  for (const node of dataNodes(client)) {
    const info = await node.info("memory");
    total += Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
  }
  return total;
}

/** A Lua script with a variable number of keys, called with its keys declared. */
export type LuaScript<T> = (redis: RedisClient, keys: string[], args: (string | number)[]) => Promise<T>;

/**
 * Calls `lua` by its SHA (EVALSHA) with its keys declared, and falls back to EVAL where the node lacks it (NOSCRIPT:
 * a restart, a failover, another master). Not ioredis' defineCommand: with a variable key count, auto-pipelining on a
 * cluster groups such a command by the slot of its first argument (the key count), and the node's pipeline then
 * fails as a whole ("All keys in the pipeline should belong to the same slots allocation group"); EVALSHA's keys
 * are known to ioredis, so the call is grouped and routed by them.
 */
export function luaScript<T>(lua: string): LuaScript<T> {
  const sha = createHash("sha1").update(lua).digest("hex");
  return async (redis, keys, args) => {
    try {
      return (await redis.evalsha(sha, keys.length, ...keys, ...args)) as T;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return (await redis.eval(lua, keys.length, ...keys, ...args)) as T;
    }
  };
}
