/**
 * Rate limits per API key and per client address (express-rate-limit, counting in Redis so that limits hold
 * across every API process sharing the Redis). Counters live under `svc:{rl}:*`, never matched by the index.
 * A Redis that does not answer makes the limiter fail the request with 503 (never let traffic through unmetered).
 *
 * A count can be started without waiting for it ({@link startLimit}), so that it travels to Redis in the same
 * round trip as the checkpoint read and a route's first reads; {@link limitsPassed} then decides. Nothing is
 * answered, authenticated or written before every count started for the request has passed.
 */
import type { Request, RequestHandler, Response } from "express";
import { ipKeyGenerator, rateLimit, type ClientRateLimitInfo, type Options, type Store } from "express-rate-limit";
import { luaScript, type RedisClient } from "../store/redis";
import type { ApiContext } from "./context";
import { problems } from "./errors";

/**
 * Counts every hit queued in one turn of the event loop (each request's per-address and per-key counts, and those
 * of every other request read in the same turn) in one Lua script: one command and one round trip, not one per
 * count. KEYS are the counters, ARGV their windows (ms); the reply is each counter's hits and ms left, in order.
 * The same count as rate-limit-redis's script: a counter that has expired (or never was) starts again at 1.
 */
const COUNT_SCRIPT = `
local reply = {}
for i, key in ipairs(KEYS) do
  local windowMs = tonumber(ARGV[i])
  local left = redis.call("PTTL", key)
  if left <= 0 then
    redis.call("SET", key, 1, "PX", windowMs)
    reply[2 * i - 1] = 1
    reply[2 * i] = windowMs
  else
    reply[2 * i - 1] = redis.call("INCR", key)
    reply[2 * i] = left
  end
end
return reply`;

/**
 * Every counter shares the cluster hash tag `{rl}`, so that a script may count any of them: on a cluster one
 * slot holds them all (one small script per API process and event-loop turn is light work for one master).
 */
const COUNTER_PREFIX = "svc:{rl}:";
/** Counts in one script at most: a long burst becomes several scripts, none holding Redis long. */
const MAX_COUNTS_PER_SCRIPT = 500;

/** Counts each key (ARGV: each key's window in ms); replies each count and its time left, in key order. */
const countScript = luaScript<number[]>(COUNT_SCRIPT);

interface PendingCount {
  key: string;
  windowMs: number;
  resolve: (info: ClientRateLimitInfo) => void;
  reject: (err: unknown) => void;
}

/** The counts queued in this turn of the event loop, sent together once the turn's I/O has been read. */
class CountBatcher {
  private pending: PendingCount[] = [];

  constructor(private readonly redis: RedisClient) {}

  count(key: string, windowMs: number): Promise<ClientRateLimitInfo> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ key, windowMs, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const queued = this.pending;
    this.pending = [];
    for (let from = 0; from < queued.length; from += MAX_COUNTS_PER_SCRIPT)
      this.send(queued.slice(from, from + MAX_COUNTS_PER_SCRIPT));
  }

  private send(batch: PendingCount[]): void {
    countScript(
      this.redis,
      batch.map((c) => c.key),
      batch.map((c) => c.windowMs),
    ).then(
      (reply) => {
        const now = Date.now();
        batch.forEach((c, i) => c.resolve({ totalHits: reply[2 * i]!, resetTime: new Date(now + reply[2 * i + 1]!) }));
      },
      (err: unknown) => batch.forEach((c) => c.reject(err)),
    );
  }
}

/** An express-rate-limit store over one {@link CountBatcher}: each limiter has its own prefix and window. */
class BatchedRedisStore implements Store {
  readonly localKeys = false;
  readonly prefix: string;
  private windowMs = 60_000;

  constructor(
    private readonly counts: CountBatcher,
    private readonly redis: RedisClient,
    name: string,
  ) {
    this.prefix = `${COUNTER_PREFIX}${name}:`;
  }

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  increment(key: string): Promise<ClientRateLimitInfo> {
    return this.counts.count(this.prefix + key, this.windowMs);
  }

  async decrement(key: string): Promise<void> {
    await this.redis.decr(this.prefix + key);
  }

  async resetKey(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }
}

export interface RateLimits {
  /** Every request, by client address. */
  perAddress: RequestHandler;
  /** Authenticated requests, by API key (after authentication). */
  perKey: RequestHandler;
  /** The patient's public check, by client address (stricter). */
  publicPerAddress: RequestHandler;
}

function limiter(
  store: Store,
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
    store,
    passOnStoreError: false,
    ...(keyGenerator ? { keyGenerator } : {}),
    handler: (_req, _res, next) =>
      next(problems.rateLimited(`More than ${limit} requests ${what} in ${windowMs / 1000} s; slow down.`)),
  });
}

const built = new WeakMap<ApiContext, RateLimits>();

/** The service's limiters, made once per context; their counts share one script per turn of the event loop. */
export function rateLimits(ctx: ApiContext): RateLimits {
  let limits = built.get(ctx);
  if (limits) return limits;
  const c = ctx.config;
  const windowMs = c.API_RATE_WINDOW_SECONDS * 1000;
  const byAddress = (req: Parameters<RequestHandler>[0]) => ipKeyGenerator(req.ip ?? "unknown");
  const counts = new CountBatcher(ctx.redis);
  const store = (name: string) => new BatchedRedisStore(counts, ctx.redis, name);
  limits = {
    perAddress: limiter(store("ip"), c.API_RATE_LIMIT_PER_ADDRESS, windowMs, "from this address", byAddress),
    perKey: limiter(
      store("key"),
      c.API_RATE_LIMIT_PER_KEY,
      windowMs,
      "with this API key",
      (_req, res) => res.locals.limitedKeyId as string,
    ),
    publicPerAddress: limiter(
      store("pub"),
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
