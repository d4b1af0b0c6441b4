import { expect } from "chai";
import fc from "fast-check";
import { call, codePath, startApi, type ApiHarness } from "./helpers/api";

const PROBLEM = /^application\/problem\+json/;

describe("API: hostile input", function () {
  let h: ApiHarness;

  before(async function () {
    h = await startApi();
  });
  after(async function () {
    await h?.close();
  });

  const expectProblem = (r: { status: number; headers: Headers; body: unknown }, status: number, slug: string) => {
    expect(r.status, JSON.stringify(r.body)).to.equal(status);
    expect(r.headers.get("content-type")).to.match(PROBLEM);
    expect((r.body as { type: string }).type).to.equal(`urn:drugtrace:problem:${slug}`);
  };

  it("refuses an oversized body with 413", async function () {
    const codes = Array.from({ length: 1000 }, () => "8".repeat(300));
    expectProblem(
      await call(h, "/v1/codes/verify", { key: h.keys.pharmacy, body: { codes } }),
      413,
      "payload-too-large",
    );
  });

  it("refuses 10,000 codes in one verify with a 400 that names the field", async function () {
    const codes = Array.from({ length: 10_000 }, (_, i) => String(86123450000000000000n + BigInt(i)));
    const r = await call<{ field: string }>(h, "/v1/codes/verify", { key: h.keys.pharmacy, body: { codes } });
    expectProblem(r, 400, "validation");
    expect(r.body.field).to.equal("codes");
  });

  it("refuses invalid JSON (400), other content types (415) and bodies that are not the declared shape (400)", async function () {
    const key = h.keys.pharmacy;
    const json = { "content-type": "application/json" };
    expectProblem(
      await call(h, "/v1/codes/verify", { key, rawBody: '{"codes": [', headers: json }),
      400,
      "invalid-json",
    );
    expectProblem(
      await call(h, "/v1/codes/verify", {
        key,
        rawBody: "codes=1",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      }),
      415,
      "unsupported-media-type",
    );
    expectProblem(
      await call(h, "/v1/codes/verify", { key, rawBody: '{"codes":["1"]}', headers: { "content-type": "text/plain" } }),
      415,
      "unsupported-media-type",
    );
    expectProblem(
      await call(h, "/v1/codes/verify", { key, rawBody: '"a string"', headers: json }),
      400,
      "invalid-json",
    );
    expectProblem(await call(h, "/v1/codes/verify", { key, body: { codes: "861234" } }), 400, "validation");
    expectProblem(await call(h, "/v1/codes/verify", { key, body: { codes: [1, 2] } }), 400, "validation");
    expectProblem(await call(h, "/v1/codes/verify", { key, body: { codes: ["1"], extra: true } }), 400, "validation");
    expectProblem(await call(h, "/v1/codes/verify", { key, method: "POST" }), 400, "validation");
  });

  it("answers injection strings, NUL bytes, 10 kB codes and path traversal with a clear 200 or 400", async function () {
    const hostile = [
      "' OR '1'='1' --",
      "<script>alert(1)</script>",
      "${jndi:ldap://127.0.0.1/a}",
      "*\r\nFLUSHALL\r\n",
      "8612345\u0000000000001",
      "\u0000",
      "x".repeat(10_000),
      "../../../../etc/passwd",
      "..%2F..%2Fetc%2Fpasswd",
      "%",
      "\u001d\u001d",
      "]d2",
      "(01)",
      "https://id.gs1.org/01/",
    ];
    for (const code of hostile) {
      const r = await call(h, codePath(code), { key: h.keys.pharmacy });
      expect([200, 400], code).to.include(r.status);
      if (r.status === 400) expect(r.headers.get("content-type")).to.match(PROBLEM);
      const pub = await call(h, codePath(code, "/v1/public/codes/"));
      expect([200, 400], code).to.include(pub.status);
    }
    expect(await h.redis.dbsize()).to.be.greaterThan(0); // nothing flushed
    // A traversal the client does not encode never leaves /v1/codes: the URL is normalised first.
    expect((await call(h, "/v1/codes/../../etc/passwd", { key: h.keys.pharmacy })).status).to.equal(404);
    const long = await call<{ code: string }>(h, codePath("9".repeat(10_000)), { key: h.keys.pharmacy });
    expect(long.status).to.equal(400);
    expect(long.body.code.length).to.be.lessThan(200);
  });

  it("never answers a random string with a 5xx, on any route that takes a code (fast-check)", async function () {
    this.timeout(300_000);
    const key = h.keys.insurer;
    const pharmacy = h.s.pharmacy.address;
    const code = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.fullUnicodeString({ maxLength: 60 }),
      fc.stringOf(
        fc.constantFrom("0", "1", "8", "(", ")", "]", "d", "2", "\u001d", "/", "%", "A", "a", " ", "\u0000"),
        {
          maxLength: 60,
        },
      ),
      fc.stringMatching(/^8\d{18,21}$/),
    );
    await fc.assert(
      fc.asyncProperty(code, async (raw) => {
        const replies = await Promise.all([
          call(h, codePath(raw), { key }),
          call(h, codePath(raw, "/v1/public/codes/")),
          call(h, "/v1/codes/verify", { key, body: { codes: [raw] } }),
          call(h, "/v1/claims/check", { key, body: { claimRef: "fc-claim", pharmacy, lines: [{ code: raw }] } }),
        ]);
        for (const r of replies) {
          expect(r.status, `${JSON.stringify(raw)}: ${r.text.slice(0, 300)}`).to.be.lessThan(500);
          if (r.status >= 400) expect(r.headers.get("content-type")).to.match(PROBLEM);
        }
      }),
      { numRuns: Number(process.env.API_FUZZ_RUNS ?? 150), seed: Number(process.env.API_FUZZ_SEED ?? 20_250_701) },
    );
  });
});
