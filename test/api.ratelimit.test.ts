import { expect } from "chai";
import express from "express";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { ApiContext } from "../backend/api/context";
import { problemHandler } from "../backend/api/errors";
import { limitsPassed, rateLimits, startKeyLimit, startLimit } from "../backend/api/ratelimit";
import { connectRedis, scanAllKeys, type RedisClient } from "../backend/store/redis";
import { startTopology, TOPOLOGIES } from "./helpers/indexer";

/**
 * The limiters' counts travel together (one Lua script per turn of the event loop): this checks that counts batched
 * so still add up per counter, per limiter and per window, on one Redis and on a cluster (the counters share a hash
 * tag, so that one script may touch any of them).
 */
const LIMITS = {
  API_RATE_WINDOW_SECONDS: 60,
  API_RATE_LIMIT_PER_ADDRESS: 8,
  API_RATE_LIMIT_PER_KEY: 3,
  API_PUBLIC_RATE_LIMIT_PER_ADDRESS: 2,
};

for (const topology of TOPOLOGIES) {
  describe(`API rate limits on a ${topology}`, function () {
    this.timeout(60_000);
    let redis: RedisClient;
    let stop: () => Promise<void>;
    let url: string;
    let close: () => Promise<void>;

    before(async function () {
      ({ redis, stop } = await startTopology(topology));
      const ctx = {
        redis,
        config: LIMITS,
      } as unknown as ApiContext;
      const limits = rateLimits(ctx);
      const app = express();
      // As app.ts and ApiRouter do: every count started without waiting, then all awaited.
      app.get("/keyed/:key", (req, res, next) => {
        startLimit(limits.perAddress, req, res);
        startKeyLimit(ctx, req.params.key, req, res);
        limitsPassed(res).then(() => void res.json({ ok: true }), next);
      });
      app.get("/public", (req, res, next) => {
        startLimit(limits.publicPerAddress, req, res);
        limitsPassed(res).then(() => void res.json({ ok: true }), next);
      });
      app.use(problemHandler);
      const server = app.listen(0, "127.0.0.1");
      await new Promise((r) => server.once("listening", r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = () => new Promise<void>((r) => server.close(() => r()));
    });

    after(async function () {
      await close();
      redis.disconnect();
      await stop();
    });

    const statuses = async (path: string, n: number): Promise<number[]> =>
      (await Promise.all(Array.from({ length: n }, () => fetch(url + path)))).map((r) => r.status).sort();

    it("counts requests arriving together exactly, per key and per address, in one slot", async function () {
      // Five at once with key a: three pass its limit of 3. Then key b: three more pass, until the address's 8.
      expect(await statuses("/keyed/a", 5)).to.deep.equal([200, 200, 200, 429, 429]);
      expect(await statuses("/keyed/b", 4)).to.deep.equal([200, 200, 200, 429]);
      // The address has now been counted 9 times: anything more is refused, whatever the key.
      expect(await statuses("/keyed/c", 1)).to.deep.equal([429]);
      const limited = await fetch(`${url}/keyed/d`);
      expect(limited.headers.get("ratelimit-policy")).to.match(/q=8; w=60/);
      const keys = await scanAllKeys(redis, "svc:{rl}:*");
      expect(keys.sort()).to.deep.equal(
        ["svc:{rl}:ip:127.0.0.1", "svc:{rl}:key:a", "svc:{rl}:key:b", "svc:{rl}:key:c", "svc:{rl}:key:d"].sort(),
      );
      const ttl = await redis.pttl("svc:{rl}:key:a");
      expect(ttl).to.be.within(1, 60_000);
    });

    it("keeps each limiter's own limit when their counts share a script", async function () {
      const [keyed, pub] = await Promise.all([statuses("/keyed/e", 2), statuses("/public", 3)]);
      expect(keyed).to.deep.equal([429, 429]); // the address is spent (previous test)
      expect(pub).to.deep.equal([200, 200, 429]);
    });

    it("sends each limiter's draft-8 RateLimit and RateLimit-Policy headers, and Retry-After when refused", async function () {
      // As express-rate-limit words them: the policy's name is its quota and window, pk the partition key's hash.
      const partition = (key: string) =>
        Buffer.from(createHash("sha256").update(key).digest("hex").slice(0, 12)).toString("base64");
      const policies =
        `"8-in-1min"; q=8; w=60; pk=:${partition("127.0.0.1")}:, ` + `"3-in-1min"; q=3; w=60; pk=:${partition("g")}:`;
      await redis.del("svc:{rl}:ip:127.0.0.1");
      const passed = await fetch(`${url}/keyed/g`);
      expect(passed.status).to.equal(200);
      expect(passed.headers.get("ratelimit")).to.match(/^"8-in-1min"; r=7; t=(59|60), "3-in-1min"; r=2; t=(59|60)$/);
      expect(passed.headers.get("ratelimit-policy")).to.equal(policies);
      expect(passed.headers.get("retry-after")).to.equal(null);
      for (let i = 0; i < 2; i++) expect((await fetch(`${url}/keyed/g`)).status).to.equal(200);
      const refused = await fetch(`${url}/keyed/g`);
      expect(refused.status).to.equal(429);
      expect(refused.headers.get("content-type")).to.match(/^application\/problem\+json/);
      expect(await refused.json()).to.deep.include({
        type: "urn:drugtrace:problem:rate-limited",
        detail: "More than 3 requests with this API key in 60 s; slow down.",
      });
      expect(refused.headers.get("ratelimit")).to.match(/^"8-in-1min"; r=4; t=(59|60), "3-in-1min"; r=0; t=(59|60)$/);
      expect(refused.headers.get("ratelimit-policy")).to.equal(policies);
      expect(refused.headers.get("retry-after")).to.match(/^(59|60)$/);
    });

    it("answers 503 while Redis is away (never lets traffic through unmetered)", async function () {
      const broken = connectRedis({ url: "redis://127.0.0.1:1" }, undefined, 500);
      const ctx = {
        redis: broken,
        config: LIMITS,
      } as unknown as ApiContext;
      const limits = rateLimits(ctx);
      const app = express();
      app.get("/", (req, res, next) => {
        startLimit(limits.perAddress, req, res);
        limitsPassed(res).then(() => void res.json({ ok: true }), next);
      });
      app.use(problemHandler);
      const server = app.listen(0, "127.0.0.1");
      await new Promise((r) => server.once("listening", r));
      try {
        const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
        expect(r.status).to.equal(503);
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        broken.disconnect();
      }
    });
  });
}
