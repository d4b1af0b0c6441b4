/**
 * Wiring of the HTTP service from settings: its context (Redis, index reader, chain, key and alert stores, log,
 * metrics) and a server that shuts down gracefully — stop accepting, let in-flight requests finish.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AlertStore } from "../alerts";
import type { LedgerChain } from "../chain/client";
import { IndexReader } from "../index/query";
import { connectChain, connectIndexRedis, resolveDeployment } from "../index/service";
import type { Logger } from "../log";
import type { RedisClient } from "../store/redis";
import { createApp } from "./app";
import type { ApiConfig, ApiContext } from "./context";
import { indexLag } from "./health";
import { ApiKeyStore } from "./keys";
import { ApiMetrics } from "./metrics";
import type { RouteSpec } from "./openapi";
import { Signers } from "../chain/signers";
import { Submitter } from "../chain/submit";
import { Writer } from "./writes";

/** A context over an existing Redis and chain client (the tests' and the benchmark's way in). */
export function apiContext(
  config: ApiConfig,
  redis: RedisClient,
  rpc: LedgerChain,
  log: Logger,
  options: { defaultMetrics?: boolean; signers?: Signers } = {},
): ApiContext {
  const signers = options.signers ?? Signers.fromDevKeys(config);
  const submitter = new Submitter(rpc, redis, signers, config, log);
  const ctx: ApiContext = {
    config,
    redis,
    reader: new IndexReader(redis, config.CODE_BUCKET_BITS, { cached: true }),
    rpc,
    keys: new ApiKeyStore(redis, config.API_KEY_CACHE_SECONDS * 1000),
    alerts: new AlertStore(redis, config),
    log,
    metrics: new ApiMetrics(() => indexLag(ctx), options),
    writer: undefined as unknown as Writer,
  };
  ctx.writer = new Writer(ctx, submitter, config);
  return ctx;
}

/** A context from settings: RPC_URL, REDIS_URL or REDIS_CLUSTER_NODES, the deployment. */
export async function connectApi(config: ApiConfig, log: Logger): Promise<ApiContext> {
  const deployment = await resolveDeployment(config);
  const rpc = await connectChain(config, deployment.ledger, log);
  const signers = await Signers.load(config);
  log.info({ signers: signers.accounts() }, "signing keys loaded");
  return apiContext(config, connectIndexRedis(config, log), rpc, log, { defaultMetrics: true, signers });
}

export interface RunningApi {
  url: string;
  server: Server;
  /** Every declared route (what /openapi.json documents). */
  specs: RouteSpec[];
  /** Stops accepting, waits up to the grace period for in-flight requests, then closes what is left. */
  close(): Promise<void>;
}

export async function serveApi(ctx: ApiContext, host: string, port: number): Promise<RunningApi> {
  const { app, specs } = createApp(ctx);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  // Keep-alive sockets a load balancer holds open must outlive its idle timeout (commonly 60 s).
  server.keepAliveTimeout = 65_000;
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`,
    server,
    specs,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), ctx.config.API_SHUTDOWN_GRACE_MS);
        // A keep-alive connection whose request finishes becomes idle: close those as they appear.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        server.close(() => {
          clearTimeout(force);
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
