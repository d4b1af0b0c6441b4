import { expect } from "chai";
import express, { type Request, type Response } from "express";
import { rateLimit } from "express-rate-limit";
import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { AddressInfo } from "node:net";
import type { ApiContext } from "../backend/api/context";
import { problemHandler } from "../backend/api/errors";
import { limitsPassed, rateLimits, startKeyLimit, startLimit, type Limiter } from "../backend/api/ratelimit";
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

/** express-rate-limit's draft-8 partition key: the first 12 hex digits of the counted key's SHA-256, in base64. */
const partition = (key: string) =>
  Buffer.from(createHash("sha256").update(key).digest("hex").slice(0, 12)).toString("base64");

/** An app serving `limited` at /: every count started, then awaited, as app.ts and ApiRouter do. */
async function serve(
  limited: (req: Request, res: Response) => void,
  setup: (app: express.Express) => void = () => undefined,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  setup(app);
  app.get("/", (req, res, next) => {
    limited(req, res);
    limitsPassed(res).then(() => void res.json({ ok: true }), next);
  });
  app.use(problemHandler);
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The headers a limiter answers with, and its status. */
const limitHeaders = (r: globalThis.Response) => ({
  status: r.status,
  rateLimit: r.headers.get("ratelimit"),
  policy: r.headers.get("ratelimit-policy"),
  retryAfter: r.headers.get("retry-after"),
});

/** The heap in use after a full collection (gc exposed the way Node's own tests do when not started with it). */
function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  return process.memoryUsage().heapUsed;
}

/** A response as the limiter sees one: headers in a map, nothing sent yet. */
function fakeResponse(locals: Record<string, unknown>): Response & { headers: Map<string, unknown> } {
  const headers = new Map<string, unknown>();
  return {
    headers,
    headersSent: false,
    locals,
    getHeader: (name: string) => headers.get(name.toLowerCase()),
    setHeader: (name: string, value: unknown) => headers.set(name.toLowerCase(), value),
  } as unknown as Response & { headers: Map<string, unknown> };
}

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
        expect(r.headers.get("content-type")).to.match(/^application\/problem\+json/);
        expect(r.headers.get("retry-after")).to.equal("5");
        expect(r.headers.get("ratelimit")).to.equal(null);
        expect(await r.json()).to.deep.include({ type: "urn:drugtrace:problem:unavailable" });
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        broken.disconnect();
      }
    });
    it("words every window's headers exactly as express-rate-limit 8's own middleware does, passed and refused", async function () {
      // Seconds, minutes, hours and days, whole and not, on either side of each unit's boundary.
      const windows = [1, 30, 59, 60, 90, 3599, 3600, 5400, 7200, 86_399, 86_400, 129_600, 172_800];
      const theirs = new Map(
        windows.map((w) => [
          w,
          rateLimit({
            windowMs: w * 1000,
            limit: 1,
            standardHeaders: "draft-8",
            legacyHeaders: false,
            keyGenerator: (req) => String(req.query.key),
            validate: false,
            handler: (_req, res) => void res.status(429).json({}),
          }),
        ]),
      );
      const ours = new Map(
        windows.map((w) => [
          w,
          {
            redis,
            config: { ...LIMITS, API_RATE_WINDOW_SECONDS: w, API_RATE_LIMIT_PER_KEY: 1 },
          } as unknown as ApiContext,
        ]),
      );
      const reference = await serve((req, res) => {
        const outcome = new Promise<unknown>((resolve) =>
          theirs.get(Number(req.query.w))!(req, res, resolve as express.NextFunction),
        );
        res.locals.limits = [outcome];
      });
      const lean = await serve((req, res) =>
        startKeyLimit(ours.get(Number(req.query.w))!, String(req.query.key), req, res),
      );
      try {
        for (const w of windows) {
          const key = `words-${w}-${Date.now()}`;
          for (const attempt of ["passed", "refused"]) {
            const expected = limitHeaders(await fetch(`${reference.url}?w=${w}&key=${key}`));
            const got = limitHeaders(await fetch(`${lean.url}?w=${w}&key=${key}`));
            expect(got, `${w} s, ${attempt}`).to.deep.equal(expected);
          }
        }
      } finally {
        await reference.close();
        await lean.close();
      }
    });

    it("starts a key's count again once its window ended, and says so in its headers", async function () {
      const ctx = {
        redis,
        config: { ...LIMITS, API_RATE_WINDOW_SECONDS: 1, API_RATE_LIMIT_PER_KEY: 1 },
      } as unknown as ApiContext;
      const app = await serve((req, res) => startKeyLimit(ctx, "window-reset", req, res));
      try {
        const first = limitHeaders(await fetch(app.url));
        expect(first).to.deep.include({ status: 200, rateLimit: '"1-in-1sec"; r=0; t=1', retryAfter: null });
        expect(first.policy).to.equal(`"1-in-1sec"; q=1; w=1; pk=:${partition("window-reset")}:`);
        expect(limitHeaders(await fetch(app.url))).to.deep.include({
          status: 429,
          rateLimit: '"1-in-1sec"; r=0; t=1',
          retryAfter: "1",
        });
        await new Promise((r) => setTimeout(r, 1100));
        expect(limitHeaders(await fetch(app.url))).to.deep.include({ status: 200, rateLimit: '"1-in-1sec"; r=0; t=1' });
        expect(await redis.get("svc:{rl}:key:window-reset")).to.equal("1");
      } finally {
        await app.close();
      }
    });

    it("holds a limit across two API processes counting at once (each its own limiters and batches)", async function () {
      const config = { ...LIMITS, API_RATE_LIMIT_PER_KEY: 7 };
      const processes = await Promise.all(
        [0, 1].map(() => {
          const ctx = { redis, config } as unknown as ApiContext;
          return serve((req, res) => startKeyLimit(ctx, "shared-x", req, res));
        }),
      );
      try {
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(processes[i % 2]!.url)));
        const statuses = replies.map((r) => r.status);
        expect(statuses.filter((s) => s === 200)).to.have.length(7);
        expect(statuses.filter((s) => s === 429)).to.have.length(13);
        // Each count is told once: the remaining counts of the passed requests are 6..0, each seen once.
        const remaining = replies
          .filter((r) => r.status === 200)
          .map((r) => Number(/r=(\d+)/.exec(r.headers.get("ratelimit") ?? "")?.[1]))
          .sort();
        expect(remaining).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
        expect(await redis.get("svc:{rl}:key:shared-x")).to.equal("20");
      } finally {
        for (const p of processes) await p.close();
      }
    });

    it("names each process's own limit and window for the same key (policies are kept per limiter)", async function () {
      const tight = { redis, config: { ...LIMITS, API_RATE_LIMIT_PER_KEY: 4, API_RATE_WINDOW_SECONDS: 30 } };
      const loose = { redis, config: { ...LIMITS, API_RATE_LIMIT_PER_KEY: 9, API_RATE_WINDOW_SECONDS: 90 } };
      const apps = await Promise.all(
        [tight, loose].map((ctx) => serve((req, res) => startKeyLimit(ctx as unknown as ApiContext, "both", req, res))),
      );
      try {
        const pk = partition("both");
        for (let round = 0; round < 2; round++) {
          expect((await fetch(apps[0]!.url)).headers.get("ratelimit-policy")).to.equal(
            `"4-in-30sec"; q=4; w=30; pk=:${pk}:`,
          );
          expect((await fetch(apps[1]!.url)).headers.get("ratelimit-policy")).to.equal(
            `"9-in-1.5min"; q=9; w=90; pk=:${pk}:`,
          );
        }
      } finally {
        for (const app of apps) await app.close();
      }
    });

    it("counts IPv6 clients per /56 (express-rate-limit's ipKeyGenerator), IPv4-mapped ones by their IPv4 address", async function () {
      const ctx = { redis, config: { ...LIMITS, API_RATE_LIMIT_PER_ADDRESS: 2 } } as unknown as ApiContext;
      const app = await serve(
        (req, res) => startLimit(rateLimits(ctx).perAddress, req, res),
        (app) => app.set("trust proxy", true),
      );
      const from = async (address: string) =>
        limitHeaders(await fetch(app.url, { headers: { "x-forwarded-for": address } }));
      try {
        expect((await from("2001:db8:1:100::1")).status).to.equal(200);
        const second = await from("2001:db8:1:1ff:ffff::2"); // the same /56
        expect(second.status).to.equal(200);
        expect(second.policy).to.equal(`"2-in-1min"; q=2; w=60; pk=:${partition("2001:db8:1:100::/56")}:`);
        expect((await from("2001:db8:1:1ab::3")).status).to.equal(429);
        expect((await from("2001:db8:1:200::1")).status).to.equal(200); // the next /56
        expect((await from("::ffff:198.51.100.7")).status).to.equal(200);
        expect((await from("198.51.100.7")).status).to.equal(200);
        const refused = await from("::ffff:198.51.100.7");
        expect(refused).to.deep.include({ status: 429 });
        expect(refused.policy).to.equal(`"2-in-1min"; q=2; w=60; pk=:${partition("198.51.100.7")}:`);
        const counted = (await scanAllKeys(redis, "svc:{rl}:ip:*")).sort();
        expect(counted).to.include.members([
          "svc:{rl}:ip:2001:db8:1:100::/56",
          "svc:{rl}:ip:2001:db8:1:200::/56",
          "svc:{rl}:ip:198.51.100.7",
        ]);
      } finally {
        await app.close();
      }
    });

    it("names each key's own partition in its policy past the 10,000 keys whose policy is kept, long keys too", async function () {
      this.timeout(120_000);
      const ctx = { redis, config: LIMITS } as unknown as ApiContext;
      const perKey: Limiter = rateLimits(ctx).perKey;
      const keys = Array.from({ length: 10_050 }, (_, i) => `many-${i}`);
      // A hostile X-Forwarded-For behind "trust proxy: true" makes an address as long as a header may be.
      keys.push("x".repeat(8_000), "y".repeat(8_000));
      const count = async (key: string) => {
        const res = fakeResponse({ limitedKeyId: key });
        expect(await perKey({} as Request, res)).to.equal(undefined);
        return res.headers.get("ratelimit-policy");
      };
      const policies = await Promise.all(keys.map(count));
      // And again, the first ones after the kept policies were let go.
      policies.push(...(await Promise.all(keys.slice(0, 50).map(count))));
      const expected = [...keys, ...keys.slice(0, 50)].map((k) => `"3-in-1min"; q=3; w=60; pk=:${partition(k)}:`);
      expect(policies).to.deep.equal(expected);
    });
    it("keeps no client's X-Forwarded-For alive in the policies it remembers (an address sliced from a long header)", async function () {
      this.timeout(60_000);
      const ctx = { redis, config: LIMITS } as unknown as ApiContext;
      const perAddress = rateLimits(ctx).perAddress;
      const before = heapAfterGc();
      const counts: Promise<unknown>[] = [];
      for (let i = 0; i < 2_000; i++) {
        // As Express's req.ip behind one trusted proxy: the proxy's last entry, a slice of the header as received.
        const header = Buffer.from(`${"junk".repeat(3_750)}, 198.51.${100 + (i >> 7)}.${100 + (i & 127)}`).toString();
        const ip = header.slice(header.lastIndexOf(" ") + 1);
        counts.push(perAddress({ ip } as Request, fakeResponse({})));
      }
      expect(await Promise.all(counts)).to.satisfy((outcomes: unknown[]) => outcomes.every((o) => o === undefined));
      // 2,000 headers of 15 kB are 30 MB: none of it may stay.
      expect(heapAfterGc() - before).to.be.below(5e6);
    });
  });
}
