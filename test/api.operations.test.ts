import { expect } from "chai";
import express, { type Router } from "express";
import { network } from "hardhat";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { createApp } from "../backend/api/app";
import { notFoundHandler, problemHandler } from "../backend/api/errors";
import { requestLog } from "../backend/api/request-log";
import type { RunningApi } from "../backend/api/service";
import { anotherApi, call, codePath, startApi, type ApiHarness } from "./helpers/api";

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every (method, path) the Express app answers, from its router stacks. */
function expressRoutes(router: { stack: Layer[] }): string[] {
  const out: string[] = [];
  for (const layer of router.stack) {
    if (layer.route)
      for (const m of Object.keys(layer.route.methods))
        out.push(`${m.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, "{$1}")}`);
    else if (layer.handle?.stack) out.push(...expressRoutes(layer.handle as { stack: Layer[] }));
  }
  return out;
}

describe("API: operating it", function () {
  let h: ApiHarness;
  const extra: RunningApi[] = [];

  /** Another API process over the same Redis and chain, with its own settings. */
  const another = async (overrides: Record<string, string>) => {
    const api = await anotherApi(h, overrides);
    extra.push(api);
    return api;
  };

  before(async function () {
    h = await startApi({}, { appendonly: true });
  });
  after(async function () {
    for (const api of extra) await api.close();
    await h?.close();
  });

  it("documents every route it serves in an OpenAPI 3.1 document, and renders it at /docs without a CDN", async function () {
    const doc = await call<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(h, "/openapi.json");
    expect(doc.status).to.equal(200);
    expect(doc.body.openapi).to.equal("3.1.0");
    const documented = Object.entries(doc.body.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const { app } = createApp(h.ctx);
    const served = expressRoutes((app as unknown as { router: Router & { stack: Layer[] } }).router);
    expect(served.length).to.be.greaterThan(10);
    // LMS answers other methods on its paths with 405 (router.all), which is behaviour, not another route.
    for (const route of served.filter((r) => !r.startsWith("_ALL "))) expect(documented, route).to.include(route);
    // And the other way: the walk reaches the /v1 routes behind the route table, so no documented route is unserved.
    for (const route of documented) expect(served, route).to.include(route);
    for (const route of [
      "GET /v1/codes/{code}",
      "POST /v1/codes/verify",
      "GET /v1/public/codes/{code}",
      "GET /healthz",
    ])
      expect(documented).to.include(route);
    const docs = await call(h, "/docs");
    expect(docs.status).to.equal(200);
    expect(docs.headers.get("content-type")).to.match(/text\/html/);
    expect(docs.text).to.include("/v1/codes/{code}");
    expect(docs.text).to.not.match(/<script|<link|src="http|href="http/);
  });

  it("reports health: chain, Redis and lag; 503 problem+json once the index is further behind than the setting", async function () {
    const ok = await call<{ status: string; index: { lagBlocks: number } }>(h, "/healthz");
    expect(ok.status, ok.text).to.equal(200);
    expect(ok.body.status).to.equal("ok");
    expect(ok.body.index.lagBlocks).to.equal(0);
    const strict = await another({ API_MAX_LAG_BLOCKS: "2" });
    for (let i = 0; i < 3; i++) await network.provider.send("evm_mine");
    const behind = await call<{ type: string; index: { lagBlocks: number; ok: boolean } }>(strict, "/healthz");
    expect(behind.status).to.equal(503);
    expect(behind.headers.get("content-type")).to.match(/^application\/problem\+json/);
    expect(behind.body.index).to.deep.include({ ok: false, lagBlocks: 3 });
    await h.reindex();
    expect((await call(strict, "/healthz")).status).to.equal(200);
  });

  it("exports request rate, latency by route and the indexer's lag to Prometheus", async function () {
    await call(h, codePath(h.s.codes.inPharmacyStock), { key: h.keys.pharmacy });
    const m = await call(h, "/metrics");
    expect(m.headers.get("content-type")).to.match(/^text\/plain/);
    expect(m.text).to.match(/http_requests_total\{method="GET",route="\/v1\/codes\/\{code\}",status="200"\} \d+/);
    expect(m.text).to.match(/indexer_lag_blocks \d+/);
    expect(m.text).to.match(/indexer_lag_seconds \d+/);
    // Every request counts once in the counter and in the histogram's count, whenever they are scraped.
    const scans = (text: string) =>
      ["http_requests_total", "http_request_duration_seconds_count"].map((name) =>
        Number(new RegExp(`^${name}\\{[^}]*route="/v1/codes/\\{code\\}",status="200"\\} (\\d+)$`, "m").exec(text)?.[1]),
      );
    const before = scans(m.text);
    expect(before.every((n) => n > 0)).to.equal(true);
    for (let i = 0; i < 3; i++) await call(h, codePath(h.s.codes.inPharmacyStock), { key: h.keys.pharmacy });
    const after = scans((await call(h, "/metrics")).text);
    expect(after).to.deep.equal(before.map((n) => n + 3));
  });

  it("counts every request once per label set, scraped during traffic or several times in a row", async function () {
    const path = codePath(h.s.codes.inPharmacyStock);
    const sets = [
      { route: "/v1/codes/{code}", status: 200, send: () => call(h, path, { key: h.keys.pharmacy }) },
      { route: "/v1/codes/{code}", status: 401, send: () => call(h, path) },
      { route: "unmatched", status: 404, send: () => call(h, "/v1/nothing-here", { key: h.keys.pharmacy }) },
    ];
    /** A label set's counter and its histogram's count, as one scrape reads them. */
    const counts = (text: string, route: string, status: number) =>
      ["http_requests_total", "http_request_duration_seconds_count"].map((name) => {
        const series = `${name}{method="GET",route="${route}",status="${status}"} `;
        const line = text.split("\n").find((l) => l.startsWith(series));
        return line ? Number(line.slice(series.length)) : 0;
      });
    const scrape = async () => (await call(h, "/metrics")).text;
    const before = await scrape();
    const requests: Promise<unknown>[] = [];
    const during: Promise<string>[] = [];
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      for (const set of sets) requests.push(set.send());
      if (i % 4 === 0) during.push(scrape());
    }
    await Promise.all(requests);
    const after = [await scrape(), await scrape(), await scrape()];
    for (const { route, status } of sets) {
      const [total, observed] = counts(before, route, status);
      // A scrape amid the traffic sees the counter and the histogram agree, and never fewer than before.
      for (const text of await Promise.all(during)) {
        const [t, o] = counts(text, route, status);
        expect(t, `${route} ${status} during`).to.equal(o);
        expect(t).to.be.within(total!, total! + rounds);
      }
      // Scrapes in a row, with no traffic between them: the same totals, each request counted once.
      for (const text of after)
        expect(counts(text, route, status), `${route} ${status}`).to.deep.equal([total! + rounds, observed! + rounds]);
    }
  });

  it("accepts and echoes X-Request-Id (a malformed one is replaced) and names it in problems", async function () {
    const mine = await call(h, codePath("bad\u0001"), {
      key: h.keys.pharmacy,
      headers: { "x-request-id": "scan-42.a:b" },
    });
    expect(mine.headers.get("x-request-id")).to.equal("scan-42.a:b");
    expect((mine.body as { instance: string }).instance).to.equal("urn:request:scan-42.a:b");
    const bad = await call(h, "/healthz", { headers: { "x-request-id": "no spaces allowed" } });
    expect(bad.headers.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
  });

  it("sends security headers, no CORS headers by default, and problem+json for unknown routes", async function () {
    const r = await call(h, codePath(h.s.codes.inPharmacyStock), {
      key: h.keys.pharmacy,
      headers: { origin: "https://evil.example" },
    });
    expect(r.headers.get("x-content-type-options")).to.equal("nosniff");
    expect(r.headers.get("content-security-policy")).to.include("default-src 'self'");
    expect(r.headers.get("strict-transport-security")).to.include("max-age");
    expect(r.headers.get("x-powered-by")).to.equal(null);
    expect(r.headers.get("access-control-allow-origin")).to.equal(null);
    const cors = await another({ API_CORS_ORIGINS: "https://pharmacy.example" });
    const allowed = await call(cors, "/healthz", { headers: { origin: "https://pharmacy.example" } });
    expect(allowed.headers.get("access-control-allow-origin")).to.equal("https://pharmacy.example");
    const missing = await call(h, "/v1/nothing-here", { key: h.keys.pharmacy });
    expect(missing.status).to.equal(404);
    expect(missing.body).to.deep.include({ type: "urn:drugtrace:problem:not-found" });
  });

  it("rate-limits per key and per address, counted in Redis so that limits hold across API processes", async function () {
    const a = await another({
      API_RATE_LIMIT_PER_KEY: "5",
      API_PUBLIC_RATE_LIMIT_PER_ADDRESS: "3",
      API_TRUST_PROXY: "true",
    });
    const b = await another({
      API_RATE_LIMIT_PER_KEY: "5",
      API_PUBLIC_RATE_LIMIT_PER_ADDRESS: "3",
      API_TRUST_PROXY: "true",
    });
    const key = (await h.ctx.keys.issue(h.s.pharmacy.address, "rate limit test")).key;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await call(i % 2 ? a : b, codePath(h.s.codes.inPharmacyStock), { key })).status);
    expect(statuses).to.deep.equal([200, 200, 200, 200, 200, 429]);
    const limited = await call(a, codePath(h.s.codes.inPharmacyStock), { key });
    expect(limited.body).to.deep.include({ type: "urn:drugtrace:problem:rate-limited" });
    expect(limited.headers.get("ratelimit-policy")).to.match(/5/);
    // A body the route's schema refuses (parsed early for its prefetch) waits for the counts: 429, not 400.
    const badClaim = await call(a, "/v1/claims/check", { key, body: { claimRef: "", lines: [] } });
    expect(badClaim.status).to.equal(429);
    const client = { "x-forwarded-for": `203.0.113.${Math.floor(Math.random() * 200) + 1}` };
    const pub: number[] = [];
    for (let i = 0; i < 4; i++)
      pub.push(
        (await call(i % 2 ? a : b, codePath(h.s.codes.inPharmacyStock, "/v1/public/codes/"), { headers: client }))
          .status,
      );
    expect(pub).to.deep.equal([200, 200, 200, 429]);
  });

  it("answers 503 problem+json while Redis is away, and normally once it is back", async function () {
    this.timeout(60_000);
    const path = codePath(h.s.codes.inPharmacyStock);
    expect((await call(h, path, { key: h.keys.pharmacy })).status).to.equal(200);
    await h.redisServer.kill();
    try {
      for (const p of [path, codePath(h.s.codes.inPharmacyStock, "/v1/public/codes/")]) {
        const away = await call(h, p, { key: h.keys.pharmacy });
        expect(away.status, away.text).to.equal(503);
        expect(away.headers.get("content-type")).to.match(/^application\/problem\+json/);
        expect(away.body).to.deep.include({ type: "urn:drugtrace:problem:unavailable" });
        expect(away.text).to.not.match(/ECONNREFUSED|ioredis|at .*\.ts/);
      }
      const verify = await call(h, "/v1/codes/verify", { key: h.keys.pharmacy, body: { codes: [h.s.codes.unknown] } });
      expect(verify.status).to.equal(503);
      const health = await call<{ redis: { ok: boolean } }>(h, "/healthz");
      expect(health.status).to.equal(503);
      expect(health.body.redis.ok).to.equal(false);
    } finally {
      await h.redisServer.start();
    }
    let back = 0;
    for (let i = 0; i < 100 && back !== 200; i++) {
      back = (await call(h, path, { key: h.keys.pharmacy })).status;
      if (back !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).to.equal(200);
    const scan = await call<{ verdict: string }>(h, path, { key: h.keys.pharmacy });
    expect(scan.body.verdict).to.equal("OK");
    expect((await call(h, "/healthz")).status).to.equal(200);
  });

  it("shuts down gracefully: in-flight requests finish, new connections are refused", async function () {
    const api = await another({});
    const codes = Array.from({ length: 1000 }, (_, i) => (i % 2 ? h.s.codes.inPharmacyStock : h.s.codes.unknown));
    const inFlight = call<{ results: unknown[] }>(api, "/v1/codes/verify", { key: h.keys.pharmacy, body: { codes } });
    await new Promise((r) => setTimeout(r, 20));
    const closed = api.close();
    const reply = await inFlight;
    expect(reply.status).to.equal(200);
    expect(reply.body.results).to.have.length(1000);
    await closed;
    let refused = false;
    await call(api, "/healthz").catch(() => (refused = true));
    expect(refused).to.equal(true);
  });
});

describe("API: the request log", function () {
  const lines: Array<{
    level: number;
    msg: string;
    req?: { id: string };
    res?: { statusCode: number };
    route?: string;
  }> = [];
  let url: string;
  let close: () => Promise<void>;
  let lateWrite: Promise<void>;

  before(async function () {
    const log = pino({ level: "debug", base: null }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const app = express();
    app.use(requestLog(app, log));
    app.get("/ok", (_req, res) => {
      res.locals.route = "/ok";
      res.json({ ok: true });
    });
    app.get("/boom", () => {
      throw new Error("a bug");
    });
    // Answers after its client has gone: the answer written late must not log the request again.
    app.get("/slow", (_req, res) => {
      res.locals.route = "/slow";
      lateWrite = new Promise((resolve) =>
        setTimeout(() => {
          res.status(201).json({ late: true });
          resolve();
        }, 200),
      );
    });
    app.use(notFoundHandler);
    app.use(problemHandler);
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise<void>((r) => server.close(() => r()));
  });
  after(async () => close());

  /** The request log's lines for one request id (not the 5xx's own "request failed" line). */
  const logged = (id: string) =>
    lines.filter((l) => l.req?.id === id && ["request completed", "request errored"].includes(l.msg));

  it("writes one line per request, at debug, info or error by its status, named by its request id", async function () {
    for (const [path, id] of [
      ["/ok", "ok-1"],
      ["/nothing", "missing-1"],
      ["/boom", "boom-1"],
      ["/ok", "ok-2"],
    ] as const)
      await (await fetch(url + path, { headers: { "x-request-id": id } })).text();
    await new Promise((r) => setTimeout(r, 50));
    const seen = (id: string) => logged(id).map((l) => ({ level: l.level, status: l.res?.statusCode, route: l.route }));
    expect(seen("ok-1")).to.deep.equal([{ level: 20, status: 200, route: "/ok" }]);
    expect(seen("ok-2")).to.deep.equal([{ level: 20, status: 200, route: "/ok" }]);
    expect(seen("missing-1")).to.deep.equal([{ level: 30, status: 404, route: "unmatched" }]);
    expect(seen("boom-1")).to.deep.equal([{ level: 50, status: 500, route: "unmatched" }]);
    expect(logged("boom-1")[0]!.msg).to.equal("request errored");
  });

  it("writes one line for a request whose client went away before the answer, and none when it is written late", async function () {
    const aborted = new AbortController();
    const reply = fetch(`${url}/slow`, { headers: { "x-request-id": "gone-1" }, signal: aborted.signal });
    await new Promise((r) => setTimeout(r, 50));
    aborted.abort();
    await reply.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(logged("gone-1")).to.have.length(1);
    await lateWrite;
    await new Promise((r) => setTimeout(r, 50));
    expect(logged("gone-1")).to.have.length(1);
    expect(logged("gone-1")[0]!.route).to.equal("/slow");
  });
});
