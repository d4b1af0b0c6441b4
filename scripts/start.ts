/**
 * `npm start`: the whole system on embedded defaults — a local chain on 127.0.0.1, the ledger deployed with demo
 * data, a local redis-server (unless REDIS_URL already answers) and the indexer following the chain — running
 * until Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { loadConfig } from "../backend/config/env";
import { createIndexer } from "../backend/index/service";
import { startDemoApi } from "./lib/demo-api";
import { createLogger } from "../backend/log";

const config = loadConfig();
const hardhat = require.resolve("hardhat/internal/cli/cli");

async function waitForRpc(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`chain at ${url} did not answer within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const node = spawn(
    process.execPath,
    [hardhat, "node", "--hostname", "127.0.0.1", "--port", String(config.RPC_PORT)],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const stop = () => node.kill("SIGINT");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  node.on("exit", (code) => process.exit(code ?? 0));
  await waitForRpc(config.RPC_URL, 60_000);
  console.log(JSON.stringify({ msg: "local chain up", rpcUrl: config.RPC_URL }));
  const deploy = spawnSync(process.execPath, [hardhat, "run", "scripts/deploy.ts", "--network", "localhost"], {
    stdio: "inherit",
    env: { ...process.env, RPC_URL: config.RPC_URL },
  });
  if (deploy.status !== 0) {
    stop();
    throw new Error("deployment failed");
  }
  const redisServer = await ensureRedis(config.REDIS_URL);
  const log = createLogger(config.LOG_LEVEL, "indexer");
  const service = await createIndexer(config, log);
  // The chain was just deployed afresh (a new local node deploys at the same address): an index of an earlier
  // chain in this Redis is stale. The service's own data (API keys, alerts) is kept.
  const checkpoint = await service.store.checkpoint();
  const indexedBlock = checkpoint ? await service.chain.blockOrNull(checkpoint.number) : null;
  if (checkpoint && (checkpoint.ledger !== service.chain.address || indexedBlock?.hash !== checkpoint.hash)) {
    await service.store.wipe();
  }
  await forgetEarlierChainsWrites(config.REDIS_URL);
  const api = await startDemoApi(config);
  const shutdown = () => {
    void api.close();
    service.indexer.stop();
    redisServer?.kill("SIGTERM");
    stop();
  };
  process.removeListener("SIGINT", stop);
  process.removeListener("SIGTERM", stop);
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  console.log(
    JSON.stringify({ msg: "system running; Ctrl-C stops it", rpcUrl: config.RPC_URL, redisUrl: config.REDIS_URL }),
  );
  await service.indexer.run();
  await service.close();
}

/**
 * The write pipeline's state of an earlier run (sent transactions, nonces, idempotency records, consents,
 * commissioning jobs) belongs to a chain that is gone: `hardhat node` starts empty each time, at the same chain id
 * and ledger address, so its signed transactions would replay there and its nonces would leave gaps. Forgotten at
 * start; API keys and alerts are kept.
 */
async function forgetEarlierChainsWrites(url: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let forgotten = 0;
    for (const match of ["svc:tx:*", "svc:{nonce:*", "svc:idem*", "svc:consent:*", "svc:job*"]) {
      for await (const keys of redis.scanStream({ match, count: 1000 }) as AsyncIterable<string[]>) {
        if (keys.length > 0) forgotten += await redis.unlink(...keys);
      }
    }
    if (forgotten > 0) console.log(JSON.stringify({ msg: "forgot an earlier local chain's write state", forgotten }));
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts a redis-server for a loopback REDIS_URL that nothing answers, keeping its data in `.data/redis` with an
 * append-only file: the index is rebuilt from the chain, but the service's own data (API keys, alerts) survives a
 * restart.
 */
async function ensureRedis(url: string): Promise<ChildProcess | null> {
  const ping = async () => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on("error", () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  };
  if (await ping()) return null;
  const { hostname, port } = new URL(url);
  if (!["127.0.0.1", "localhost"].includes(hostname)) throw new Error(`Redis at ${url} does not answer`);
  const dir = path.resolve(__dirname, "..", ".data", "redis");
  mkdirSync(dir, { recursive: true });
  const args = ["--port", port || "6379", "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes"];
  const server = spawn("redis-server", args, { stdio: "ignore" });
  server.on("error", (err) =>
    console.error(`cannot start redis-server (apt-get install redis-server): ${err.message}`),
  );
  for (let i = 0; i < 100 && !(await ping()); i++) await new Promise((r) => setTimeout(r, 100));
  console.log(JSON.stringify({ msg: "local redis-server up", redisUrl: url }));
  return server;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
