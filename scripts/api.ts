/**
 * `npm run api`: the HTTP service alone, against the configured chain (RPC_URL, the deployment) and index
 * (REDIS_URL or REDIS_CLUSTER_NODES). SIGINT/SIGTERM stop it gracefully.
 *
 * API_WORKERS > 1: that many processes (node:cluster) share the port. The service keeps nothing between requests
 * that another process could not rebuild (limits, nonces, idempotency and alerts live in Redis; each process's
 * record cache follows the index's checkpoint), so the workers need nothing from each other. The primary only
 * forks, replaces a worker that died, and passes SIGINT/SIGTERM on.
 */
import cluster from "node:cluster";
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
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      log.info("shutting down: no new connections, finishing in-flight requests");
      await api.close();
      await sweeper.stop();
      await supplyEvaluation.stop();
      ctx.rpc.destroy();
      ctx.redis.disconnect();
      // A worker's channel to its primary would keep it alive: let go of it, and the process ends.
      cluster.worker?.disconnect();
    })());
  // `on`, not `once`: a worker gets Ctrl-C from the terminal and the same signal again from its primary, and
  // takes it once; a single process takes a second Ctrl-C as "stop now", without waiting for in-flight requests.
  const onSignal = () => {
    if (stopping && !cluster.isWorker) process.exit(130);
    void shutdown();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/**
 * A worker that dies within this long of listening died of its start, not of its work; this many such deaths in
 * a row (no worker outliving its start between them) is a crash loop, each replacement dying the same way, and
 * the primary stops rather than fork forever.
 */
const EARLY_DEATH_MS = 30_000;
const MAX_EARLY_DEATHS = 3;

/** The primary of API_WORKERS processes: forks them, replaces one that dies, stops them on SIGINT/SIGTERM. */
function supervise(workers: number): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  const listeningSince = new Map<number, number>();
  let earlyDeaths = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("listening", (worker) => {
    if (listeningSince.has(worker.id)) return;
    listeningSince.set(worker.id, Date.now());
    // A worker that outlived its start ends the row: early deaths days apart are not a loop.
    setTimeout(() => {
      if (listeningSince.has(worker.id)) earlyDeaths = 0;
    }, EARLY_DEATH_MS).unref();
  });
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    const since = listeningSince.get(worker.id);
    listeningSince.delete(worker.id);
    if (since === undefined && signal === null) {
      // It failed before it listened (settings, Redis, the chain): another would fail the same way.
      console.error(JSON.stringify({ msg: "API worker failed to start; stopping", pid: worker.process.pid, code }));
      process.exitCode = code || 1;
      return stop("SIGTERM");
    }
    earlyDeaths = since === undefined || Date.now() - since < EARLY_DEATH_MS ? earlyDeaths + 1 : 0;
    console.error(JSON.stringify({ msg: "API worker died", pid: worker.process.pid, code, signal, earlyDeaths }));
    if (earlyDeaths >= MAX_EARLY_DEATHS) {
      console.error(
        JSON.stringify({ msg: `API workers in a crash loop (${earlyDeaths} died soon after starting); stopping` }),
      );
      process.exitCode = 1;
      return stop("SIGTERM");
    }
    cluster.fork();
  });
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

const workers = loadConfig().API_WORKERS;
if (workers > 1 && cluster.isPrimary) supervise(workers);
else
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
