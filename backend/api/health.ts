/**
 * Operating the service: `/healthz` (chain reachable, Redis reachable, how far the index is behind) and
 * `/metrics` (Prometheus). Neither needs a key nor counts against rate limits, so probes always get an answer.
 */
import type { Router } from "express";
import { z } from "zod";
import { META } from "../index/keys";
import type { ApiContext } from "./context";
import type { IndexLag } from "./metrics";
import { ApiError, PROBLEM_CONTENT_TYPE, sendProblem } from "./errors";
import { ApiRouter, problemSchema } from "./openapi";

const PROBE_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${PROBE_TIMEOUT_MS} ms`)),
      PROBE_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const componentSchema = z.object({ ok: z.boolean(), error: z.string().optional() });

export const healthSchema = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    redis: componentSchema,
    chain: componentSchema.extend({ headBlock: z.number().int().optional() }),
    index: componentSchema.extend({
      indexedBlock: z.number().int().optional(),
      lagBlocks: z.number().int().optional(),
      lagSeconds: z.number().optional(),
      indexerState: z.string().optional(),
      statusAgeSeconds: z.number().optional(),
      maxLagBlocks: z.number().int(),
      maxLagSeconds: z.number(),
    }),
  })
  .openapi("Health");

export type Health = z.infer<typeof healthSchema>;

interface IndexerStatusRecord {
  state?: string;
  indexedBlock?: number;
  indexedTime?: number;
  lagBlocks?: number;
  lagSeconds?: number;
  updatedAt?: number;
}

async function readStatus(ctx: ApiContext): Promise<IndexerStatusRecord | null> {
  const raw = await ctx.redis.get(META.status);
  return raw ? (JSON.parse(raw) as IndexerStatusRecord) : null;
}

/** The indexer's own report of its lag (what /metrics exports). */
export async function indexLag(ctx: ApiContext): Promise<IndexLag | null> {
  const status = await readStatus(ctx);
  return status ? { lagBlocks: status.lagBlocks ?? 0, lagSeconds: status.lagSeconds ?? 0 } : null;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Probes Redis and the chain, and measures the index's lag against the head just read. */
export async function checkHealth(ctx: ApiContext): Promise<Health> {
  const { API_MAX_LAG_BLOCKS: maxLagBlocks, API_MAX_LAG_SECONDS: maxLagSeconds } = ctx.config;
  const [redis, chain] = await Promise.allSettled([
    withTimeout(Promise.all([ctx.redis.ping(), readStatus(ctx)]), "Redis"),
    withTimeout(ctx.rpc.head(), "chain node"),
  ]);
  const status = redis.status === "fulfilled" ? redis.value[1] : null;
  const head = chain.status === "fulfilled" ? chain.value : null;
  const index: Health["index"] = { ok: false, maxLagBlocks, maxLagSeconds };
  if (redis.status === "rejected") index.error = "Redis is not answering";
  else if (!status || status.indexedBlock === undefined || status.indexedBlock < 0)
    index.error = "no indexer has reported progress into this Redis";
  else {
    // The head just read is fresher than the indexer's own report: a stalled indexer shows its lag growing.
    const lagBlocks = head ? Math.max(0, head.number - status.indexedBlock) : (status.lagBlocks ?? 0);
    const lagSeconds =
      lagBlocks === 0 ? 0 : head ? Math.max(0, head.timestamp - (status.indexedTime ?? 0)) : (status.lagSeconds ?? 0);
    Object.assign(index, {
      indexedBlock: status.indexedBlock,
      lagBlocks,
      lagSeconds,
      indexerState: status.state,
      statusAgeSeconds: Math.max(0, Math.floor(Date.now() / 1000) - (status.updatedAt ?? 0)),
    });
    index.ok = lagBlocks <= maxLagBlocks && lagSeconds <= maxLagSeconds;
    if (!index.ok) index.error = `the index is ${lagBlocks} blocks (${lagSeconds} s) behind the chain`;
  }
  const redisPart = redis.status === "fulfilled" ? { ok: true } : { ok: false, error: message(redis.reason) };
  const chainPart = head
    ? { ok: true, headBlock: head.number }
    : { ok: false, error: message((chain as PromiseRejectedResult).reason) };
  const ok = redisPart.ok && chainPart.ok && index.ok;
  return { status: ok ? "ok" : "unavailable", redis: redisPart, chain: chainPart, index };
}

export function healthRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "get",
      path: "/healthz",
      summary: "Health: chain and Redis reachable, index lag within the limit",
      tags: ["operations"],
      access: "public",
      operational: true,
      responses: {
        200: { description: "Healthy", schema: healthSchema },
        503: {
          description: "A component is down or the index is too far behind (problem+json with the same report)",
          schema: problemSchema.merge(healthSchema.omit({ status: true })),
          contentType: PROBLEM_CONTENT_TYPE,
        },
      },
    },
    async ({ req, res }) => {
      const health = await checkHealth(ctx);
      if (health.status === "ok") return health;
      const why = [health.redis.error, health.chain.error, health.index.error].filter(Boolean).join("; ");
      const { status: _status, ...report } = health;
      sendProblem(res, new ApiError(503, "unavailable", "Service unavailable", why, report), String(req.id ?? ""));
    },
  );
  api.route(
    {
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics",
      tags: ["operations"],
      access: "public",
      operational: true,
      responses: { 200: { description: "Prometheus text exposition format", contentType: "text/plain" } },
    },
    async ({ res }) => {
      res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
    },
  );
  return api.router;
}
