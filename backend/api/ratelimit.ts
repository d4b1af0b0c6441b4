/**
 * Rate limits per API key and per client address (express-rate-limit with its Redis store, so that limits hold
 * across every API process sharing the Redis). Counters live under `svc:rl:*`, never matched by the index.
 * A Redis that does not answer makes the limiter fail the request with 503 (never let traffic through unmetered).
 *
 * A count can be started without waiting for it ({@link startLimit}), so that it travels to Redis in the same
 * round trip as the checkpoint read and a route's first reads; {@link limitsPassed} then decides. Nothing is
 * answered, authenticated or written before every count started for the request has passed.
 */
import type { Request, RequestHandler, Response } from "express";
import { ipKeyGenerator, rateLimit } from "express-rate-limit";
import { RedisStore, type RedisReply } from "rate-limit-redis";
import { dataNodes, isCluster, type RedisClient } from "../store/redis";
import type { ApiContext } from "./context";
import { problems } from "./errors";

export interface RateLimits {
  /** Every request, by client address. */
  perAddress: RequestHandler;
  /** Authenticated requests, by API key (after authentication). */
  perKey: RequestHandler;
  /** The patient's public check, by client address (stricter). */
  publicPerAddress: RequestHandler;
}

/**
 * rate-limit-redis runs its counters as Lua scripts loaded with SCRIPT LOAD: on a cluster the script must be
 * known to whichever master holds a counter, so it is loaded on every master (and reloaded after a restart,
 * which the store does itself on NOSCRIPT).
 */
function storeFor(redis: RedisClient, prefix: string): RedisStore {
  const send = async (command: string[]): Promise<RedisReply> => {
    const [name, ...args] = command as [string, ...string[]];
    if (isCluster(redis) && name.toUpperCase() === "SCRIPT") {
      const replies = await Promise.all(dataNodes(redis).map((node) => node.call(name, ...args)));
      return replies[0] as RedisReply;
    }
    return (await redis.call(name, ...args)) as RedisReply;
  };
  return new RedisStore({ sendCommandCluster: ({ command }) => send(command), prefix });
}

function limiter(
  redis: RedisClient,
  prefix: string,
  limit: number,
  windowMs: number,
  what: string,
  keyGenerator?: (req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => string,
): RequestHandler {
  return rateLimit({
    windowMs,
    limit,
    standardHeaders: "draft-8",
    legacyHeaders: false,
    store: storeFor(redis, prefix),
    passOnStoreError: false,
    ...(keyGenerator ? { keyGenerator } : {}),
    handler: (_req, _res, next) =>
      next(problems.rateLimited(`More than ${limit} requests ${what} in ${windowMs / 1000} s; slow down.`)),
  });
}

const built = new WeakMap<ApiContext, RateLimits>();

/** The service's limiters, made once per context (each holds a store, whose scripts load once). */
export function rateLimits(ctx: ApiContext): RateLimits {
  let limits = built.get(ctx);
  if (limits) return limits;
  const c = ctx.config;
  const windowMs = c.API_RATE_WINDOW_SECONDS * 1000;
  const byAddress = (req: Parameters<RequestHandler>[0]) => ipKeyGenerator(req.ip ?? "unknown");
  limits = {
    perAddress: limiter(
      ctx.redis,
      "svc:rl:ip:",
      c.API_RATE_LIMIT_PER_ADDRESS,
      windowMs,
      "from this address",
      byAddress,
    ),
    perKey: limiter(
      ctx.redis,
      "svc:rl:key:",
      c.API_RATE_LIMIT_PER_KEY,
      windowMs,
      "with this API key",
      (_req, res) => res.locals.limitedKeyId as string,
    ),
    publicPerAddress: limiter(
      ctx.redis,
      "svc:rl:pub:",
      c.API_PUBLIC_RATE_LIMIT_PER_ADDRESS,
      windowMs,
      "to the public check from this address",
      byAddress,
    ),
  };
  built.set(ctx, limits);
  return limits;
}

/** Starts a limiter's count for this request without waiting for it; {@link limitsPassed} awaits the outcome. */
export function startLimit(limiter: RequestHandler, req: Request, res: Response): void {
  // The limiter calls next() when the request may go on, next(error) when it may not (429, or Redis away).
  const outcome = new Promise<unknown>((resolve) => void limiter(req, res, resolve));
  ((res.locals.limits ??= []) as Promise<unknown>[]).push(outcome);
}

/** Resolves once every count started for the request passed; rejects with the first refusal. */
export async function limitsPassed(res: Response): Promise<void> {
  const started = res.locals.limits as Promise<unknown>[] | undefined;
  if (!started) return;
  for (const refusal of await Promise.all(started)) if (refusal) throw refusal;
}

/** Starts the per-key count of an API key (once per request; the key must be verified). */
export function startKeyLimit(ctx: ApiContext, keyId: string, req: Request, res: Response): void {
  if (res.locals.limitedKeyId !== undefined) return;
  res.locals.limitedKeyId = keyId;
  startLimit(rateLimits(ctx).perKey, req, res);
}
