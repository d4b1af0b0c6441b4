import { expect } from "chai";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { ApiKeyStore, KEY_PREFIX } from "../backend/api/keys";
import type { RedisClient } from "../backend/store/redis";
import { IndexStore } from "../backend/index/store";
import { call, codePath, startApi, type ApiHarness } from "./helpers/api";
import { idOf } from "./helpers/ledger";

describe("API: who may call what", function () {
  let h: ApiHarness;

  before(async function () {
    h = await startApi();
  });
  after(async function () {
    await h?.close();
  });

  const scanPath = () => codePath(h.s.codes.inPharmacyStock);

  it("refuses a request without a key, with a malformed one, and with a forged one (401 problem+json)", async function () {
    const none = await call(h, scanPath());
    expect(none.status).to.equal(401);
    expect(none.headers.get("www-authenticate")).to.match(/^Bearer/);
    expect(none.body).to.deep.include({ type: "urn:drugtrace:problem:unauthorized", status: 401 });
    const malformed = await call(h, scanPath(), { headers: { authorization: "Bearer nope" } });
    expect(malformed.status).to.equal(401);
    const real = h.keys.pharmacy;
    const forged = real.slice(0, -4) + (real.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect((await call(h, scanPath(), { key: forged })).status).to.equal(401);
    expect((await call(h, scanPath(), { headers: { authorization: "Token " + real } })).status).to.equal(401);
  });

  it("takes the key as a Bearer token or as the password of HTTP Basic", async function () {
    expect((await call(h, scanPath(), { key: h.keys.pharmacy })).status).to.equal(200);
    const basic = Buffer.from(`anything:${h.keys.pharmacy}`).toString("base64");
    expect((await call(h, scanPath(), { headers: { authorization: `Basic ${basic}` } })).status).to.equal(200);
  });

  it("refuses an account that is not an onboarded organisation (403)", async function () {
    const r = await call(h, scanPath(), { key: h.keys.outsider });
    expect(r.status).to.equal(403);
    expect(r.body).to.deep.include({ type: "urn:drugtrace:problem:forbidden" });
  });

  it("stores keys hashed, never in clear, under svc:keys:*, and revokes them", async function () {
    const store = new ApiKeyStore(h.redis, 0);
    const issued = await store.issue(h.s.pharmacy.address, "counter 3");
    const stored = await h.redis.hgetall(KEY_PREFIX + issued.keyId);
    // The secret is everything after the id (base64url may itself hold "_").
    const secret = issued.key.slice(`dtk_${issued.keyId}_`.length);
    expect(secret).to.have.length(43);
    expect(JSON.stringify(stored)).to.not.include(secret);
    expect(stored.hash).to.match(/^[0-9a-f]{64}$/);
    expect((await store.list()).map((k) => k.keyId)).to.include(issued.keyId);
    // The app's store remembers verifications for API_KEY_CACHE_SECONDS: a fresh store sees the revocation at once.
    expect(await store.revoke(issued.keyId)).to.equal(true);
    expect(await store.verify(issued.key)).to.equal(null);
    expect(await store.revoke("000000000000")).to.equal(false);
  });

  it("keeps service data (keys) when the index is wiped for a rebuild", async function () {
    const before = await h.redis.keys("svc:*");
    expect(before.length).to.be.greaterThan(0);
    const scratch = new ApiKeyStore(h.redis);
    const issued = await scratch.issue(h.s.regulator.address, "rebuild check");
    // Wipe what `index:rebuild` wipes, on a copy of the keyspace, by checking the pattern rather than wiping ours.
    const wiped = new IndexStore(h.redis);
    const indexKeys = (await h.redis.keys("*")).filter((k) => !k.startsWith("svc:"));
    expect(indexKeys.length).to.be.greaterThan(0);
    await wiped.wipe();
    expect(await scratch.verify(issued.key)).to.not.equal(null);
    expect((await h.redis.keys("svc:*")).length).to.be.greaterThanOrEqual(before.length);
    await h.reindex();
  });

  it("refuses a suspended organisation, and lets it back in once reinstated", async function () {
    await h.s.ledger.connect(h.s.regulator).suspend(h.s.otherPharmacy.address, "inspection");
    await h.reindex();
    const r = await call(h, scanPath(), { key: h.keys.otherPharmacy });
    expect(r.status).to.equal(403);
    expect((r.body as { detail: string }).detail).to.include("suspended");
    await h.s.ledger.connect(h.s.regulator).reinstate(h.s.otherPharmacy.address);
    await h.reindex();
    expect((await call(h, scanPath(), { key: h.keys.otherPharmacy })).status).to.equal(200);
  });

  describe("dashboards", function () {
    it("a batch: its maker and the regulator see counts by status; others are refused", async function () {
      for (const who of ["regulator", "maker"] as const) {
        const r = await call<{ units: number; byStatus: Record<string, number>; runs: unknown[] }>(h, "/v1/batches/1", {
          key: h.keys[who],
        });
        expect(r.status, r.text).to.equal(200);
        expect(r.body.units).to.equal(40 + 4 + 1);
        const total = Object.values(r.body.byStatus).reduce((a, b) => a + b, 0);
        expect(total).to.equal(r.body.units);
        expect(r.body.byStatus.in_transit).to.equal(20);
      }
      expect((await call(h, "/v1/batches/1", { key: h.keys.otherMaker })).status).to.equal(403);
      expect((await call(h, "/v1/batches/1", { key: h.keys.pharmacy })).status).to.equal(403);
      expect((await call(h, "/v1/batches/999", { key: h.keys.regulator })).status).to.equal(404);
      expect((await call(h, "/v1/batches/abc", { key: h.keys.regulator })).status).to.equal(400);
    });

    it("a participant: its own dashboard and the regulator's view; nobody else's", async function () {
      const pharmacyId = Number(await idOf(h.s.ledger, h.s.pharmacy));
      const own = await call<{ participant: { name: string }; counters: Record<string, number>; recent: unknown[] }>(
        h,
        "/v1/participants/me",
        { key: h.keys.pharmacy },
      );
      expect(own.status).to.equal(200);
      expect(own.body.participant.name).to.equal("Pharmacy");
      expect(own.body.counters.unitsDispensed).to.be.greaterThan(0);
      expect(own.body.recent.length).to.be.greaterThan(0);
      expect((await call(h, `/v1/participants/${pharmacyId}`, { key: h.keys.regulator })).status).to.equal(200);
      expect((await call(h, `/v1/participants/${pharmacyId}`, { key: h.keys.otherPharmacy })).status).to.equal(403);
      expect((await call(h, "/v1/participants/me", { key: h.keys.regulator })).status).to.equal(400);
    });

    it("network totals for any key", async function () {
      const r = await call<{ totals: Record<string, number> }>(h, "/v1/network", { key: h.keys.insurer });
      expect(r.status).to.equal(200);
      expect(r.body.totals.participants).to.equal(7);
      expect(r.body.totals.codes).to.be.greaterThan(40);
    });
  });
});

describe("API keys: the stored hash", function () {
  const account = "0x" + "ab".repeat(20);
  /** The few hash and set commands the key store sends, kept in a map. */
  const fakeRedis = () => {
    const hashes = new Map<string, Record<string, string>>();
    return {
      hashes,
      redis: {
        hset: async (key: string, fields: Record<string, string> | string, value?: string) => {
          const record = hashes.get(key) ?? {};
          Object.assign(record, typeof fields === "string" ? { [fields]: value } : fields);
          hashes.set(key, record);
          return 1;
        },
        hgetall: async (key: string) => ({ ...(hashes.get(key) ?? {}) }),
        sadd: async () => 1,
        exists: async (key: string) => (hashes.has(key) ? 1 : 0),
      } as unknown as RedisClient,
    };
  };
  const createHashHex = (key: string) => createHash("sha256").update(key).digest("hex");

  /** Issues, verifies and remembers keys with `Store`; keys stored as the service always stored them verify. */
  async function checkStore(Store: typeof ApiKeyStore) {
    const { hashes, redis } = fakeRedis();
    const store = new Store(redis);
    const issued = await store.issue(account, "hash check");
    expect(hashes.get(KEY_PREFIX + issued.keyId)!.hash).to.equal(createHashHex(issued.key));
    // A key stored before (createHash's hex digest), as Redis holds it: it verifies, and is then remembered.
    const keyId = "0123456789ab";
    const old = `dtk_${keyId}_${"A".repeat(43)}`;
    hashes.set(KEY_PREFIX + keyId, {
      hash: createHashHex(old),
      name: "old",
      account,
      createdAt: "2025-01-01T00:00:00Z",
    });
    for (const key of [issued.key, old]) {
      expect(store.remembered(key)).to.equal(undefined);
      const record = await store.verify(key);
      expect(record).to.not.equal(null);
      expect(store.remembered(key)).to.deep.equal(record);
    }
    const forged = old.slice(0, -1) + "B";
    expect(await store.verify(forged)).to.equal(null);
    expect(store.remembered(forged)).to.equal(null);
  }

  it("is createHash's SHA-256 with Node's one-shot crypto.hash: stored keys still verify and are remembered", async function () {
    await checkStore(ApiKeyStore);
  });

  it("is the same without crypto.hash (Node before 20.12): createHash is used", async function () {
    const require = createRequire(__filename);
    const crypto = require("node:crypto") as { hash?: unknown };
    const oneShot = crypto.hash;
    const path = require.resolve("../backend/api/keys");
    const cached = require.cache[path];
    crypto.hash = undefined;
    delete require.cache[path];
    try {
      const { ApiKeyStore: WithoutOneShot } = require(path) as { ApiKeyStore: typeof ApiKeyStore };
      expect(WithoutOneShot).to.not.equal(ApiKeyStore);
      await checkStore(WithoutOneShot);
    } finally {
      crypto.hash = oneShot;
      require.cache[path] = cached;
    }
  });
});
