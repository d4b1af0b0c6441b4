/**
 * One process of bench:api's BENCH_API_WORKERS shape (node:cluster, forked by scripts/bench-api.ts): the API and
 * the bare Express routes (the constant one and the scan's floor), each on the port the primary shares among the workers, so that both legs run in the
 * same process shape. It answers the primary's "cpu" message with its CPU time so far.
 */
import { apiContext, serveApi } from "../../backend/api/service";
import type { ApiConfig } from "../../backend/api/context";
import { LedgerChain } from "../../backend/chain/client";
import { createLogger } from "../../backend/log";
import { connectRedis } from "../../backend/store/redis";
import { bareExpress } from "./bench-bare";

export interface BenchWorkerSetup {
  config: ApiConfig;
  redisUrl: string;
  nodeUrl: string;
  ledger: string;
  apiPort: number;
  barePort: number;
}

async function main(): Promise<void> {
  const setup = JSON.parse(process.env.BENCH_API_WORKER!) as BenchWorkerSetup;
  const log = createLogger(setup.config.LOG_LEVEL, "bench-api-worker");
  const redis = connectRedis({ url: setup.redisUrl }, log, setup.config.REDIS_COMMAND_TIMEOUT_MS);
  const chain = await LedgerChain.connect(setup.nodeUrl, setup.ledger);
  const ctx = apiContext(setup.config, redis, chain, log);
  const api = await serveApi(ctx, "127.0.0.1", setup.apiPort);
  const bare = bareExpress(ctx).listen(setup.barePort, "127.0.0.1");
  await new Promise((r) => bare.once("listening", r));
  process.on("message", (message) => {
    if (message === "cpu") process.send!({ cpu: process.cpuUsage() });
    if (message === "stop")
      void (async () => {
        await api.close();
        await new Promise((r) => bare.close(r));
        chain.destroy();
        redis.disconnect();
        process.disconnect();
      })();
  });
  process.send!("ready");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
