/**
 * Idempotency-Key for writes: `svc:idem:<org>:<key>` holds the request's hash, the transactions it planned and
 * signed (each hash written BEFORE it is broadcast) and, once answered, its answer — kept IDEMPOTENCY_TTL_SECONDS
 * (≥ 24 h). A retry gets the first answer; a retry while the first request is still working waits for it; a retry
 * after a crash (the first request's lease gone) finishes from the signed transactions and submits nothing anew.
 */
import { createHash, randomUUID } from "node:crypto";
import type { RedisClient } from "../store/redis";
import type { Caller } from "./context";
import { ApiError } from "./errors";

/** A planned call of a write: which ledger function, its calldata, and the hash it was signed as (once signed). */
export interface PlannedCall {
  method: string;
  data: string;
  hash?: string;
  batchedRequests?: number;
}

export interface StoredAnswer {
  status: number;
  body: unknown;
  problem?: boolean;
  headers?: Record<string, string>;
}

export interface IdemRecord {
  requestHash: string;
  state: "pending" | "done";
  createdAt: number;
  calls?: PlannedCall[];
  /** Refs (decimal) → codes as the request named them, for answers rebuilt after a crash. */
  codes?: [string, string][];
  /** Who asked, and how its answer is built (writes.ts STORED_ANSWERS): lets the start-up sweep answer it. */
  caller?: Caller;
  answerAs?: string;
  answer?: StoredAnswer;
}

const recordKey = (org: string, key: string) => `svc:idem:${org.toLowerCase()}:${key}`;
const leaseKey = (org: string, key: string) => `svc:idem-lease:${org.toLowerCase()}:${key}`;
/** `<org>:<key>` of every record with a signed transaction and no answer yet, for the start-up sweep. */
export const UNANSWERED = "svc:idem:unanswered";
const LEASE_MS = 10_000;
const HEARTBEAT_MS = 3_000;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,200}$/;

/** sha256 of method, path and body, keys sorted: what "the same request" means. */
export function requestHashOf(method: string, path: string, body: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash("sha256")
    .update(`${method.toUpperCase()} ${path}\n${JSON.stringify(canonical(body ?? null))}`)
    .digest("hex");
}

/** The request's hold on its key while it works: updates the record, then answers or lets go. */
export class IdemSession {
  private writes: Promise<unknown> = Promise.resolve();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly store: IdempotencyStore,
    readonly org: string,
    readonly key: string,
    private readonly token: string,
    readonly record: IdemRecord,
  ) {
    this.heartbeat = setInterval(() => void store.renewLease(org, key, token), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Writes the record as it is now; writes of one session go in order. */
  save(): Promise<void> {
    const snapshot = JSON.stringify(this.record);
    const unanswered = this.record.state === "pending" && !!this.record.calls?.some((c) => c.hash);
    this.writes = this.writes
      .then(() => this.store.write(this.org, this.key, snapshot, unanswered))
      .catch(() => undefined);
    return this.writes as Promise<void>;
  }

  async finish(answer: StoredAnswer): Promise<void> {
    this.record.state = "done";
    this.record.answer = answer;
    await this.save();
    await this.release();
  }

  /** Lets go of the key without an answer: a later retry takes over (from the signed transactions, if any). */
  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.writes;
    await this.store.releaseLease(this.org, this.key, this.token);
  }

  /** Nothing was signed and the request failed for a reason a retry may not meet: forget the key. */
  async abandon(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.writes;
    if (this.record.calls?.some((c) => c.hash)) return this.release();
    await this.store.forget(this.org, this.key, this.token);
  }
}

export type Begun =
  | { kind: "new"; session: IdemSession }
  | { kind: "resume"; session: IdemSession }
  | { kind: "done"; answer: StoredAnswer };

export class IdempotencyStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly ttlSeconds: number,
    /** How long a retry waits for the first request, still working, to answer. */
    private readonly waitMs: number,
  ) {}

  async begin(org: string, key: string, requestHash: string): Promise<Begun> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const token = randomUUID();
      const fresh: IdemRecord = { requestHash, state: "pending", createdAt: Date.now() };
      const lease = await this.redis.set(leaseKey(org, key), token, "PX", LEASE_MS, "NX");
      if (lease === "OK") {
        const created = await this.redis.set(recordKey(org, key), JSON.stringify(fresh), "EX", this.ttlSeconds, "NX");
        if (created === "OK") return { kind: "new", session: new IdemSession(this, org, key, token, fresh) };
        const record = await this.read(org, key);
        if (record) {
          this.checkSame(record, requestHash);
          if (record.state === "done") {
            await this.releaseLease(org, key, token);
            return { kind: "done", answer: record.answer! };
          }
          // The first request is gone (its lease expired): take over from what it recorded.
          return { kind: "resume", session: new IdemSession(this, org, key, token, record) };
        }
        await this.releaseLease(org, key, token);
        continue;
      }
      const record = await this.read(org, key);
      if (record) {
        this.checkSame(record, requestHash);
        if (record.state === "done") return { kind: "done", answer: record.answer! };
      }
      if (Date.now() >= deadline)
        throw new ApiError(
          409,
          "in-progress",
          "Request in progress",
          "A request with this Idempotency-Key is still being processed; retry shortly for its answer.",
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private checkSame(record: IdemRecord, requestHash: string): void {
    if (record.requestHash !== requestHash)
      throw new ApiError(
        422,
        "idempotency-mismatch",
        "Idempotency-Key reused",
        "This Idempotency-Key was used for a different request; use a new key for a new request.",
      );
  }

  async read(org: string, key: string): Promise<IdemRecord | null> {
    const raw = await this.redis.get(recordKey(org, key));
    return raw ? (JSON.parse(raw) as IdemRecord) : null;
  }

  /** Writes the record; `unanswered` says whether it is on the sweep's list (added before its tx is broadcast). */
  async write(org: string, key: string, json: string, unanswered: boolean): Promise<void> {
    await this.redis.set(recordKey(org, key), json, "EX", this.ttlSeconds);
    const member = `${org.toLowerCase()}:${key}`;
    if (unanswered) await this.redis.sadd(UNANSWERED, member);
    else await this.redis.srem(UNANSWERED, member);
  }

  /** The records waiting for an answer (at most `count`), as [org, key]. */
  async unanswered(count: number): Promise<[string, string][]> {
    const members = await this.redis.srandmember(UNANSWERED, count);
    return members.map((m) => {
      const at = m.indexOf(":");
      return [m.slice(0, at), m.slice(at + 1)];
    });
  }

  async dropUnanswered(org: string, key: string): Promise<void> {
    await this.redis.srem(UNANSWERED, `${org.toLowerCase()}:${key}`);
  }

  /** Whether a live request holds the key now. */
  async held(org: string, key: string): Promise<boolean> {
    return (await this.redis.exists(leaseKey(org, key))) === 1;
  }

  async renewLease(org: string, key: string, token: string): Promise<void> {
    const current = await this.redis.get(leaseKey(org, key)).catch(() => null);
    if (current === token) await this.redis.pexpire(leaseKey(org, key), LEASE_MS).catch(() => undefined);
  }

  async releaseLease(org: string, key: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, leaseKey(org, key), token).catch(() => undefined);
  }

  async forget(org: string, key: string, token: string): Promise<void> {
    await this.redis.del(recordKey(org, key));
    await this.dropUnanswered(org, key);
    await this.releaseLease(org, key, token);
  }
}
