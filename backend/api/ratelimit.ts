/**
 * Rate limits per API key and per client address, counting in Redis so that limits hold across every API process
 * sharing the Redis. Counters live under `svc:{rl}:*`, never matched by the index. A Redis that does not answer
 * makes the limiter fail the request with 503 (never let traffic through unmetered).
 *
 * A count can be started without waiting for it ({@link startLimit}), so that it travels to Redis in the same
 * round trip as the checkpoint read and a route's first reads; {@link limitsPassed} then decides. Nothing is
 * answered, authenticated or written before every count started for the request has passed.
 *
 * Why not express-rate-limit's middleware (which this replaced): in bench:api's CPU profile of the scan, its
 * middleware was the largest single cost of the service's own (52 µs of the ~390 µs a scan cost beyond its
 * floor, profiled; ratelimit.ts's store and batcher 9 µs more), for two limiters per request: each ran ~6 awaits,
 * its validations and debug calls, and a SHA-256 of the counted key for its partition key. The count was always
 * ours (the {@link CountBatcher}); what the middleware added is redone here in a few lines, to the letter of
 * express-rate-limit 8's `standardHeaders: "draft-8"` output (test/api.ratelimit.test.ts pins it): `RateLimit`
 * and `RateLimit-Policy` appended per limiter, named `<limit>-in-<window>`, `Retry-After` on a refusal (429),
 * and the store's error, unchanged, when Redis is away (503). Its `ipKeyGenerator` still keys the addresses.
 */
import { createHash } from "node:crypto";
import type { Request, Response } from "express";
import { ipKeyGenerator } from "express-rate-limit";
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

/** A counter's hits in its window, and when the window ends (ms since the epoch). */
interface Count {
  hits: number;
  resetAt: number;
}

interface PendingCount {
  key: string;
  windowMs: number;
  resolve: (count: Count) => void;
  reject: (err: unknown) => void;
}

/** The counts queued in this turn of the event loop, sent together once the turn's I/O has been read. */
class CountBatcher {
  private pending: PendingCount[] = [];

  constructor(private readonly redis: RedisClient) {}

  count(key: string, windowMs: number): Promise<Count> {
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
        batch.forEach((c, i) => c.resolve({ hits: reply[2 * i]!, resetAt: now + reply[2 * i + 1]! }));
      },
      (err: unknown) => batch.forEach((c) => c.reject(err)),
    );
  }
}

/**
 * Counts a request against one limit: resolves to undefined when the request may go on, else to its refusal
 * (a 429 problem, or the store's error while Redis is away); never rejects.
 */
export type Limiter = (req: Request, res: Response) => Promise<unknown>;

/** express-rate-limit's name of a policy: its quota and window, as `100-in-1min`. */
function policyName(limit: number, windowMs: number): string {
  const seconds = windowMs / 1000;
  const minutes = seconds / 60;
  const hours = minutes / 60;
  const days = hours / 24;
  const window =
    seconds < 60
      ? `${seconds}sec`
      : minutes < 60
        ? `${minutes}min`
        : hours < 24
          ? `${hours}hr${hours > 1 ? "s" : ""}`
          : `${days}day${days > 1 ? "s" : ""}`;
  return `${limit}-in-${window}`;
}

/** Distinct counted keys whose policy header is kept (few: the keys and addresses calling lately). */
const POLICIES_KEPT = 10_000;
/** The longest counted key whose policy is kept: an address (an IPv6 /56 as ipKeyGenerator writes it) or a key id. */
const KEPT_KEY_LENGTH = 64;

/** Appends a header's value as Express's `res.append` does: a second value makes the header a list. */
function appendHeader(res: Response, name: string, value: string): void {
  const prev = res.getHeader(name);
  res.setHeader(name, prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value]);
}

function limiter(
  counts: CountBatcher,
  name: string,
  limit: number,
  windowMs: number,
  what: string,
  keyOf: (req: Request, res: Response) => string,
): Limiter {
  const prefix = `${COUNTER_PREFIX}${name}:`;
  const quoted = `"${policyName(limit, windowMs)}"`;
  const windowSeconds = Math.ceil(windowMs / 1000);
  // The policy names its partition by a hash of the counted key: made once per key, not on every request.
  const policies = new Map<string, string>();
  const policyOf = (key: string): string => {
    let policy = policies.get(key);
    if (policy === undefined) {
      const partition = Buffer.from(createHash("sha256").update(key).digest("hex").slice(0, 12)).toString("base64");
      policy = `${quoted}; q=${limit}; w=${windowSeconds}; pk=:${partition}:`;
      // Kept under a copy of its own: req.ip is a slice of X-Forwarded-For behind a proxy, and a slice keeps the
      // whole header alive (up to 16 kB a key: 150 MB for the 10,000 kept). A longer key is no address Express
      // parsed but a hostile header behind "trust proxy: true": its policy is made each time, not kept.
      if (key.length <= KEPT_KEY_LENGTH) {
        if (policies.size >= POLICIES_KEPT) policies.clear();
        policies.set(Buffer.from(key).toString(), policy);
      }
    }
    return policy;
  };
  const refusal = `More than ${limit} requests ${what} in ${windowMs / 1000} s; slow down.`;
  return (req, res) => {
    const key = keyOf(req, res);
    return counts.count(prefix + key, windowMs).then(
      ({ hits, resetAt }) => {
        const resetSeconds = Math.max(0, Math.ceil((resetAt - Date.now()) / 1000));
        if (!res.headersSent) {
          appendHeader(res, "RateLimit", `${quoted}; r=${Math.max(limit - hits, 0)}; t=${resetSeconds}`);
          appendHeader(res, "RateLimit-Policy", policyOf(key));
        }
        if (hits <= limit) return undefined;
        if (!res.headersSent) res.setHeader("Retry-After", String(resetSeconds));
        return problems.rateLimited(refusal);
      },
      (err: unknown) => err,
    );
  };
}

export interface RateLimits {
  /** Every request, by client address. */
  perAddress: Limiter;
  /** Authenticated requests, by API key (after authentication). */
  perKey: Limiter;
  /** The patient's public check, by client address (stricter). */
  publicPerAddress: Limiter;
}

const built = new WeakMap<ApiContext, RateLimits>();

/** The service's limiters, made once per context; their counts share one script per turn of the event loop. */
export function rateLimits(ctx: ApiContext): RateLimits {
  let limits = built.get(ctx);
  if (limits) return limits;
  const c = ctx.config;
  const windowMs = c.API_RATE_WINDOW_SECONDS * 1000;
  const byAddress = (req: Request) => ipKeyGenerator(req.ip ?? "unknown");
  const counts = new CountBatcher(ctx.redis);
  limits = {
    perAddress: limiter(counts, "ip", c.API_RATE_LIMIT_PER_ADDRESS, windowMs, "from this address", byAddress),
    perKey: limiter(
      counts,
      "key",
      c.API_RATE_LIMIT_PER_KEY,
      windowMs,
      "with this API key",
      (_req, res) => res.locals.limitedKeyId as string,
    ),
    publicPerAddress: limiter(
      counts,
      "pub",
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
export function startLimit(limiter: Limiter, req: Request, res: Response): void {
  ((res.locals.limits ??= []) as Promise<unknown>[]).push(limiter(req, res));
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
