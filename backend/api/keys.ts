/**
 * API keys, issued per organisation and mapped to its on-chain account. A key is `dtk_<id>_<secret>`: the id
 * finds its record, the secret is 32 random bytes, and only the SHA-256 of the whole key is stored (a key has
 * 256 bits of entropy, so a fast hash is enough: there is nothing to guess). The clear key is shown once, when
 * it is issued. Records live under `svc:keys:*`, service data that `npm run index:rebuild` never touches.
 */
import { createHash, hash, randomBytes, timingSafeEqual } from "node:crypto";
import type { RedisClient } from "../store/redis";

export const KEY_PREFIX = "svc:keys:";
/** Set of every key id (SCAN-free listing on a single Redis and a cluster alike). */
export const KEY_IDS = "svc:keyids";

const KEY_FORMAT = /^dtk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyRecord {
  keyId: string;
  name: string;
  /** The organisation's on-chain account, lower-case hex. */
  account: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface IssuedKey extends ApiKeyRecord {
  /** The key in clear: shown once, never stored. */
  key: string;
}

/**
 * crypto.hash (Node 20.12 and later) hashes in one call: 0.7 µs for a key, where createHash's object, digest and
 * base64 of the Buffer took 3.7 µs, on every authenticated request ({@link ApiKeyStore.remembered}).
 */
const oneShot = typeof hash === "function";
const sha256 = (text: string): Buffer =>
  oneShot ? hash("sha256", text, "buffer") : createHash("sha256").update(text).digest();
const sha256Base64 = (text: string): string =>
  oneShot ? hash("sha256", text, "base64") : createHash("sha256").update(text).digest("base64");

export class ApiKeyStore {
  /** Verified keys by the SHA-256 of the key, so that a request costs no Redis round trip for its key. */
  private readonly verified = new Map<string, { record: ApiKeyRecord | null; until: number }>();

  constructor(
    private readonly redis: RedisClient,
    /** How long a verification (or refusal) is remembered; a revocation reaches other processes within it. */
    private readonly cacheMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  async issue(account: string, name: string): Promise<IssuedKey> {
    if (!/^0x[0-9a-fA-F]{40}$/.test(account)) throw new Error(`"${account}" is not a 0x-prefixed 20-byte account`);
    if (name.trim().length === 0 || name.length > 100) throw new Error("a key needs a name of 1 to 100 characters");
    const keyId = randomBytes(6).toString("hex");
    const key = `dtk_${keyId}_${randomBytes(32).toString("base64url")}`;
    const record: ApiKeyRecord = {
      keyId,
      name: name.trim(),
      account: account.toLowerCase(),
      createdAt: new Date(this.now()).toISOString(),
      revokedAt: null,
    };
    await this.redis.hset(KEY_PREFIX + keyId, {
      hash: sha256(key).toString("hex"),
      name: record.name,
      account: record.account,
      createdAt: record.createdAt,
    });
    await this.redis.sadd(KEY_IDS, keyId);
    return { ...record, key };
  }

  async list(): Promise<ApiKeyRecord[]> {
    const ids = (await this.redis.smembers(KEY_IDS)).sort();
    const records = await Promise.all(ids.map((id) => this.record(id)));
    return records.filter((r): r is ApiKeyRecord => r !== null).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Marks a key revoked (kept for audit); false when there is no such key. */
  async revoke(keyId: string): Promise<boolean> {
    if (!(await this.redis.exists(KEY_PREFIX + keyId))) return false;
    await this.redis.hset(KEY_PREFIX + keyId, "revokedAt", new Date(this.now()).toISOString());
    this.verified.clear();
    return true;
  }

  /**
   * What {@link verify} would answer from what it remembers, without Redis: undefined when the key was not
   * verified within the cache period.
   */
  remembered(key: string): ApiKeyRecord | null | undefined {
    if (!KEY_FORMAT.test(key)) return null;
    const cached = this.verified.get(sha256Base64(key));
    return cached && cached.until > this.now() ? cached.record : undefined;
  }

  /** The record of a valid, unrevoked key; null for anything else. */
  async verify(key: string): Promise<ApiKeyRecord | null> {
    const match = KEY_FORMAT.exec(key);
    if (!match) return null;
    const digest = sha256(key);
    const cacheKey = digest.toString("base64");
    const cached = this.verified.get(cacheKey);
    const now = this.now();
    if (cached && cached.until > now) return cached.record;
    const raw = await this.redis.hgetall(KEY_PREFIX + match[1]!);
    const stored = raw.hash ? Buffer.from(raw.hash, "hex") : null;
    const valid = stored !== null && stored.length === digest.length && timingSafeEqual(stored, digest);
    const record = valid && !raw.revokedAt ? toRecord(match[1]!, raw) : null;
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(cacheKey, { record, until: now + this.cacheMs });
    return record;
  }

  private async record(keyId: string): Promise<ApiKeyRecord | null> {
    const raw = await this.redis.hgetall(KEY_PREFIX + keyId);
    return raw.hash ? toRecord(keyId, raw) : null;
  }
}

function toRecord(keyId: string, raw: Record<string, string>): ApiKeyRecord {
  return {
    keyId,
    name: raw.name ?? "",
    account: raw.account ?? "",
    createdAt: raw.createdAt ?? "",
    revokedAt: raw.revokedAt ?? null,
  };
}
