import { expect } from "chai";
import { request as httpRequest } from "node:http";
import type { RunningApi } from "../backend/api/service";
import { anotherApi, codePath, startApi, type ApiHarness } from "./helpers/api";

/** A reply as the wire carried it: no URL normalisation (fetch resolves "..", "."), headers exactly as sent. */
interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: { type?: string; field?: string; detail?: string } & Record<string, unknown>;
}

/** One request over node:http, the path sent as written; `chunks` are sent with Transfer-Encoding: chunked. */
function raw(
  api: { url: string },
  method: string,
  path: string,
  options: { key?: string; headers?: Record<string, string>; body?: string; chunks?: string[] } = {},
): Promise<RawReply> {
  const { hostname, port } = new URL(api.url);
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.body !== undefined) headers["content-length"] ??= String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        const json = /json/.test(String(res.headers["content-type"] ?? "")) && text !== "";
        resolve({ status: res.statusCode!, headers: res.headers, text, body: json ? JSON.parse(text) : {} });
      });
    });
    req.on("error", reject);
    if (options.chunks) for (const chunk of options.chunks) req.write(chunk);
    req.end(options.body);
  });
}

const PROBLEM = /^application\/problem\+json/;
const expectProblem = (r: RawReply, status: number, slug: string) => {
  expect(r.status, r.text).to.equal(status);
  expect(r.headers["content-type"]).to.match(PROBLEM);
  expect(r.body.type).to.equal(`urn:drugtrace:problem:${slug}`);
};

describe("API: how a request reaches its route", function () {
  let h: ApiHarness;
  const extra: RunningApi[] = [];
  let code: string;

  /** Another API process over the same Redis and chain, with its own settings. */
  const another = async (overrides: Record<string, string>) => {
    const api = await anotherApi(h, overrides);
    extra.push(api);
    return api;
  };

  before(async function () {
    h = await startApi();
    code = h.s.codes.inPharmacyStock;
  });
  after(async function () {
    for (const api of extra) await api.close();
    await h?.close();
  });

  it("matches paths as Express does: in any case, with a trailing slash", async function () {
    const key = h.keys.pharmacy;
    for (const path of [
      codePath(code),
      codePath(code, "/V1/CODES/"),
      codePath(code, "/v1/Codes/") + "/",
      "/v1/network",
      "/v1/network/",
      "/V1/NETWORK",
    ]) {
      const r = await raw(h, "GET", path, { key });
      expect(r.status, `${path}: ${r.text}`).to.equal(200);
    }
    // The public check: no key needed, and a key it is sent is nobody's business.
    const pub = await raw(h, "GET", codePath(code, "/V1/Public/Codes/"));
    expect(pub.status, pub.text).to.equal(200);
    expect((await raw(h, "GET", codePath(code, "/v1/public/codes/"), { key: "not-a-key" })).status).to.equal(200);
  });

  it("answers 404 problem+json for /v1 alone, unknown /v1 paths, encoded, empty and traversing segments", async function () {
    const key = h.keys.pharmacy;
    for (const path of [
      "/v1",
      "/v1/",
      "/v1/nothing-here",
      "/v1/nothing/at/all",
      "/V1/NOTHING",
      `/v1//codes/${code}`,
      `/v1/%63odes/${code}`,
      `/v1/codes%2F${code}`,
      "/v1/./network",
      `/v1/x/../codes/${code}`,
      "/v1/codes/../network",
      "/v1/codes/../../etc/passwd",
    ]) {
      const r = await raw(h, "GET", path, { key });
      expectProblem(r, 404, "not-found");
      // An unmatched request reaches no route, and is never authenticated: 404 without a key too.
      expectProblem(await raw(h, "GET", path), 404, "not-found");
    }
  });

  it("answers HEAD as GET without a body, OPTIONS with the methods allowed, and LMS's other methods with 405", async function () {
    const key = h.keys.pharmacy;
    const head = await raw(h, "HEAD", codePath(code), { key });
    expect(head.status).to.equal(200);
    expect(head.headers["content-type"]).to.match(/^application\/json/);
    expect(head.text).to.equal("");
    expect((await raw(h, "HEAD", codePath(code))).status).to.equal(401);
    // The router answers OPTIONS from every route matching the path, across the routers that declared them.
    const verify = await raw(h, "OPTIONS", "/v1/codes/verify");
    expect(verify.status).to.equal(200);
    expect(verify.headers.allow).to.equal("GET, HEAD, POST");
    const batches = await raw(h, "OPTIONS", "/V1/BATCHES");
    expect(batches.status).to.equal(200);
    expect(batches.headers.allow).to.equal("GET, HEAD, POST");
    expectProblem(await raw(h, "OPTIONS", "/v1/nothing-here"), 404, "not-found");
    // LMS's paths take GET only (router.all after the GET route): OPTIONS, POST, PUT and DELETE are 405, in any case.
    for (const [method, path] of [
      ["OPTIONS", "/v1/lms/checkConnectivity"],
      ["POST", "/V1/LMS/CHECKCONNECTIVITY"],
      ["DELETE", "/v1/lms/gtin/04012345678901/lot/L1/ser/S1"],
      ["PUT", "/v1/lms/verify/gtin/04012345678901/lot/L1/ser/S1/"],
    ]) {
      const r = await raw(h, method!, path!, { key });
      expectProblem(r, 405, "method-not-allowed");
      expect(r.headers.allow).to.equal("GET, HEAD");
    }
  });

  it("keeps the declared order among a path's routes: GET /v1/codes/verify is a scan, POST is the batch verify", async function () {
    const key = h.keys.pharmacy;
    const scan = await raw(h, "GET", "/v1/codes/verify", { key });
    expect([200, 400], scan.text).to.include(scan.status);
    expect(scan.body).to.not.have.property("results");
    const body = JSON.stringify({ codes: [code] });
    const batch = await raw(h, "POST", "/v1/codes/verify", {
      key,
      body,
      headers: { "content-type": "application/json" },
    });
    expect(batch.status, batch.text).to.equal(200);
    expect(batch.body.results).to.have.length(1);
  });

  it("reads JSON bodies whole or chunked, refuses other types (415) and oversized ones (413)", async function () {
    const key = h.keys.pharmacy;
    const json = { "content-type": "application/json" };
    const body = JSON.stringify({ codes: [code] });
    const chunked = await raw(h, "POST", "/v1/codes/verify", {
      key,
      headers: json,
      chunks: [body.slice(0, 5), body.slice(5)],
    });
    expect(chunked.status, chunked.text).to.equal(200);
    expect(chunked.body.results).to.have.length(1);
    const plain = await raw(h, "POST", "/v1/codes/verify", { key, body, headers: { "content-type": "text/plain" } });
    expectProblem(plain, 415, "unsupported-media-type");
    const csvElsewhere = await raw(h, "POST", "/v1/codes/verify", {
      key,
      body,
      headers: { "content-type": "text/csv" },
    });
    expectProblem(csvElsewhere, 415, "unsupported-media-type");
    const big = JSON.stringify({ codes: Array.from({ length: 1000 }, () => "8".repeat(300)) });
    expectProblem(
      await raw(h, "POST", "/v1/codes/verify", { key, body: big, headers: json }),
      413,
      "payload-too-large",
    );
    const bigChunked = await raw(h, "POST", "/v1/codes/verify", { key, headers: json, chunks: [big] });
    expectProblem(bigChunked, 413, "payload-too-large");
  });

  it("reads an empty JSON body (Content-Length: 0) as {}, as Express's JSON parser does", async function () {
    // fetch and Node's http send `Content-Length: 0` on a POST without a body. Express's JSON parser reads that
    // as {}, so the route's schema names the field missing; an undefined body would name none.
    const empty = { "content-length": "0" };
    const claim = await raw(h, "POST", "/v1/claims/check", {
      key: h.keys.insurer,
      headers: { ...empty, "content-type": "application/json" },
    });
    expectProblem(claim, 400, "validation");
    expect(claim.body.field, claim.text).to.equal("claimRef");
    // No content type: no parser reads it, and the schema says the body is missing.
    const untyped = await raw(h, "POST", "/v1/claims/check", { key: h.keys.insurer, headers: empty });
    expectProblem(untyped, 400, "validation");
    expect(untyped.body.field).to.equal(undefined);
  });

  it("reads an empty CSV upload (Content-Length: 0) as an empty string, which the upload route answers itself", async function () {
    const empty = { "content-length": "0" };
    // The commissioning upload's own parser reads an empty CSV as "" (a string the schema takes): the route
    // itself answers (this deployment signs nothing for the maker), not a 400 for a missing body.
    const csv = await raw(h, "POST", "/v1/batches/1/commissions", {
      key: h.keys.maker,
      headers: { ...empty, "content-type": "text/csv" },
    });
    expectProblem(csv, 403, "no-signer");
  });

  it("reads a commissioning upload with its own parser whatever case its path was sent in, as Express routes it", async function () {
    for (const path of ["/V1/BATCHES/1/COMMISSIONS", "/v1/Batches/1/commissions/"]) {
      const csv = await raw(h, "POST", path, {
        key: h.keys.maker,
        headers: { "content-type": "text/csv" },
        body: "code,level\n",
      });
      expectProblem(csv, 403, "no-signer");
    }
  });

  it("counts each key once per request, and a refused key count wins over 403 and 400, remembered key or not", async function () {
    const settings = { API_RATE_LIMIT_PER_KEY: "3" };
    const [a, b] = [await another(settings), await another(settings)];
    const key = (await h.ctx.keys.issue(h.s.insurer.address, "dispatch per-key test")).key;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await raw(a, "GET", "/v1/network", { key })).status);
    expect(statuses).to.deep.equal([200, 200, 200]);
    // b has not seen the key: it verifies it, then counts it, before the role check (insurers may not verify).
    expectProblem(await raw(b, "GET", "/v1/lms/checkConnectivity", { key }), 429, "rate-limited");
    // a remembers the key and counts it with the checkpoint read.
    expectProblem(await raw(a, "GET", "/v1/lms/checkConnectivity", { key }), 429, "rate-limited");
    const badClaim = { key, body: "{}", headers: { "content-type": "application/json" } };
    expectProblem(await raw(b, "POST", "/v1/claims/check", badClaim), 429, "rate-limited");
    expectProblem(await raw(a, "POST", "/v1/claims/check", badClaim), 429, "rate-limited");
  });

  it("answers 429 once the address's count is refused, before 401, 400, 413, 415 and 404; operational routes stay open", async function () {
    const limited = await another({ API_RATE_LIMIT_PER_ADDRESS: "2", API_TRUST_PROXY: "true" });
    const client = { "x-forwarded-for": `198.51.100.${Math.floor(Math.random() * 200) + 1}` };
    const key = h.keys.pharmacy;
    for (let i = 0; i < 2; i++)
      expect((await raw(limited, "GET", codePath(code), { key, headers: client })).status).to.equal(200);
    const json = { ...client, "content-type": "application/json" };
    const big = JSON.stringify({ codes: Array.from({ length: 1000 }, () => "8".repeat(300)) });
    const refused: [string, string, Parameters<typeof raw>[3]][] = [
      ["GET", codePath(code), { headers: client }], // no key: 401
      ["GET", codePath(code), { key: "forged", headers: client }], // a bad key: 401
      ["GET", codePath(code, "/v1/public/codes/"), { headers: client }], // the public check
      ["POST", "/v1/codes/verify", { key, headers: json, body: "{" }], // invalid JSON: 400
      ["POST", "/v1/codes/verify", { key, headers: json, body: "{}" }], // a body the schema refuses: 400
      ["POST", "/v1/codes/verify", { key, headers: json, body: big }], // 413
      ["POST", "/v1/codes/verify", { key, headers: json, chunks: [big] }], // 413, chunked
      ["POST", "/v1/codes/verify", { key, headers: { ...client, "content-type": "text/plain" }, body: "x" }], // 415
      ["POST", "/v1/batches/1/commissions", { key: h.keys.maker, headers: json, body: "{}" }],
      ["GET", "/v1/nothing-here", { key, headers: client }], // 404
      ["GET", "/V1/NETWORK/", { headers: client }],
    ];
    for (const [method, path, options] of refused) {
      const r = await raw(limited, method, path, options);
      expectProblem(r, 429, "rate-limited");
    }
    for (const path of ["/healthz", "/openapi.json"])
      expect((await raw(limited, "GET", path, { headers: client })).status, path).to.equal(200);
  });

  it("labels metrics with the declared route, whatever case the path was sent in, and unmatched requests as such", async function () {
    const fresh = await another({});
    await raw(fresh, "GET", codePath(code, "/V1/CODES/"), { key: h.keys.pharmacy });
    await raw(fresh, "GET", "/v1/nothing-here", { key: h.keys.pharmacy });
    await raw(fresh, "POST", "/v1/lms/checkConnectivity", { key: h.keys.pharmacy });
    const metrics = (await raw(fresh, "GET", "/metrics")).text;
    expect(metrics).to.match(/http_requests_total\{method="GET",route="\/v1\/codes\/\{code\}",status="200"\} 1/);
    expect(metrics).to.match(/http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    expect(metrics).to.match(/http_requests_total\{method="POST",route="unmatched",status="405"\} 1/);
  });
});
