/**
 * `npm run api`: the HTTP service alone, against the configured chain (RPC_URL, the deployment) and index
 * (REDIS_URL or REDIS_CLUSTER_NODES). SIGINT/SIGTERM stop it gracefully.
 */
import { loadAlertSettings } from "../backend/alerts";
import { loadClaimSettings } from "../backend/api/claims-config";
import { loadCommissionSettings } from "../backend/api/commissioning";
import { connectApi, serveApi } from "../backend/api/service";
import { startSupplyEvaluation } from "../backend/api/supply-alerts";
import { startWriteSweeper } from "../backend/api/sweep";
import { loadConfig } from "../backend/config/env";
import { createLogger } from "../backend/log";

async function main(): Promise<void> {
  const config = { ...loadConfig(), ...loadAlertSettings(), ...loadClaimSettings(), ...loadCommissionSettings() };
  const log = createLogger(config.LOG_LEVEL, "api");
  const ctx = await connectApi(config, log);
  const api = await serveApi(ctx, config.API_HOST, config.API_PORT);
  // Writes a previous run left unfinished (a crash between sending and answering) are seen through.
  const sweeper = startWriteSweeper(ctx);
  // Shortages, demand surges and expiry risk raised as supply alerts (one process evaluates each window).
  const supplyEvaluation = startSupplyEvaluation(ctx);
  console.log(JSON.stringify({ msg: "API listening", url: api.url, docs: `${api.url}/docs` }));
  const shutdown = async () => {
    log.info("shutting down: no new connections, finishing in-flight requests");
    await api.close();
    await sweeper.stop();
    await supplyEvaluation.stop();
    ctx.rpc.destroy();
    ctx.redis.disconnect();
  };
  process.once("SIGINT", () => void shutdown());
  process.once("SIGTERM", () => void shutdown());
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
