import { expect } from "chai";
import { ethers } from "hardhat";
import { jobRunnerOf } from "../backend/api/commissioning";
import { JobRunner, JobStore, pipelineWriter } from "../backend/api/jobs";
import {
  packingOrder,
  planCommission,
  prefixCovers,
  readCsv,
  type PlanContext,
  type UploadLine,
} from "../backend/chain/commission-plan";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { parseCode } from "../backend/codes/parse";
import { totalCodes, type RunShape } from "../backend/codes/run";
import { call, codePath } from "./helpers/api";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

const PRODUCT = "8612345";
const context = (overrides: Partial<PlanContext> = {}): PlanContext => ({
  productCode: PRODUCT,
  prefixes: ["CN:861", "GS1:690123"],
  maxRunCodes: 28_000,
  domain: "drugtrace:v1",
  ...overrides,
});
/** As a scanner prints them: no `CN:` or `X:` in front. */
const scanned = (normalised: string) => normalised.replace(/^(CN|X):/, "");

/** Upload lines of demo codes in packing order. */
function upload(shape: RunShape, serialBase = 1): UploadLine[] {
  const codes = demoRunCodes(PRODUCT, shape, serialBase).map(scanned);
  return packingOrder(codes, shape).map((l, i) => ({ line: i + 1, code: l.code, level: l.level }));
}
const csvOf = (lines: UploadLine[]) => lines.map((l) => `${l.code},${l.level}`).join("\n");

describe("commissioning plan: reading, checking and splitting an upload", function () {
  it("reads packing order back into the runs the contract expects, codes in contract order", function () {
    const shape = { unitCount: 250, unitsPerCase: 10, casesPerPallet: 4 };
    const outcome = planCommission(upload(shape), context());
    expect(outcome.ok).to.equal(true);
    const plan = outcome.ok ? outcome.plan : undefined!;
    expect(plan).to.include({ unitsPerCase: 10, casesPerPallet: 4, units: 250, cases: 25, pallets: 7 });
    expect(plan.runs).to.have.length(1);
    const expected = buildRun(demoRunCodes(PRODUCT, shape, 1), shape);
    expect(plan.runs[0]!.payload.root).to.equal(expected.root);
    expect(plan.runs[0]!.payload.codes.equals(expected.codes)).to.equal(true);
    expect(plan.runs[0]!.shape).to.deep.equal(shape);
  });

  it("splits on pallet boundaries under maxRunCodes, evenly, keeping every run's aggregation positional", function () {
    // 20 pallets of 10 cases of 100: 1,011 codes a pallet; a limit of 5,000 fits 4 pallets a run -> 5 runs of 4.
    const shape = { unitCount: 20_000, unitsPerCase: 100, casesPerPallet: 10 };
    const outcome = planCommission(upload(shape), context({ maxRunCodes: 5_000 }));
    expect(outcome.ok).to.equal(true);
    const runs = outcome.ok ? outcome.plan.runs : [];
    expect(runs.map((r) => r.shape.unitCount)).to.deep.equal([4000, 4000, 4000, 4000, 4000]);
    for (const r of runs) {
      expect(totalCodes(r.shape)).to.be.at.most(5_000);
      expect(r.payload.hashes).to.have.length(totalCodes(r.shape));
    }
    // Run 2's first unit is pallet 4's first unit: line 4 * 1011 + 1.
    expect(runs[1]!.lines[0]).to.equal(4 * 1011 + 1);
    const all = runs.flatMap((r) => r.lines);
    expect(new Set(all).size).to.equal(20_000 + 200 + 20);
  });

  it("splits on case boundaries when nothing is palletised, and anywhere when nothing is cased", function () {
    const cased = planCommission(
      upload({ unitCount: 1000, unitsPerCase: 30, casesPerPallet: 0 }),
      context({ maxRunCodes: 100 }),
    );
    expect(cased.ok).to.equal(true);
    const runs = cased.ok ? cased.plan.runs : [];
    expect(runs.every((r) => r.shape.unitCount % 30 === 0 || r === runs.at(-1))).to.equal(true);
    expect(runs.reduce((n, r) => n + r.shape.unitCount, 0)).to.equal(1000);
    const loose = planCommission(
      upload({ unitCount: 250, unitsPerCase: 0, casesPerPallet: 0 }),
      context({ maxRunCodes: 100 }),
    );
    expect(loose.ok && loose.plan.runs.map((r) => r.shape.unitCount)).to.deep.equal([84, 84, 82]);
  });

  it("the last case and pallet may be partial; one in the middle may not", function () {
    const ok = planCommission(upload({ unitCount: 95, unitsPerCase: 10, casesPerPallet: 3 }), context());
    expect(ok.ok).to.equal(true);
    const lines = upload({ unitCount: 40, unitsPerCase: 10, casesPerPallet: 0 });
    lines.splice(3, 1); // a unit of the first case missing
    const bad = planCommission(lines, context());
    expect(bad.ok).to.equal(false);
    expect(!bad.ok && bad.errors).to.deep.equal([
      {
        line: 11,
        reason: "UNEVEN_CASE",
        detail: "case holds 9 units, the others 10: every case but the last must hold the same",
      },
    ]);
  });

  it("reports every bad line with its number, and plans nothing", function () {
    const lines = upload({ unitCount: 20, unitsPerCase: 10, casesPerPallet: 2 });
    lines[0] = { ...lines[0]!, code: "8612345000000001123" }; // 19 digits: reads as no product's code
    lines[1] = { ...lines[1]!, level: "box" };
    lines[2] = { ...lines[2]!, code: "86999990000000010000" }; // another product
    lines[4] = { ...lines[4]!, code: lines[3]!.code }; // the same code twice
    const outcome = planCommission(lines, context());
    expect(outcome.ok).to.equal(false);
    const errors = outcome.ok ? [] : outcome.errors;
    expect(errors.map((e) => [e.line, e.reason])).to.deep.equal([
      [1, "NOT_A_PACK_CODE"],
      [2, "BAD_LEVEL"],
      [3, "WRONG_PRODUCT"],
      [5, "DUPLICATE_IN_UPLOAD"],
    ]);
    expect(errors[0]!.hints).to.include("LENGTH_19_EXPECTED_20");
    expect(errors[3]!.detail).to.equal("same code as line 4");
  });

  it("refuses case and pallet codes under a prefix the manufacturer does not hold", function () {
    const lines = upload({ unitCount: 4, unitsPerCase: 2, casesPerPallet: 0 });
    lines[2] = { ...lines[2]!, code: `(00)${withCheck("36999990000000001")}` };
    const outcome = planCommission(lines, context());
    expect(!outcome.ok && outcome.errors.map((e) => [e.line, e.reason])).to.deep.equal([[3, "PREFIX_NOT_ASSIGNED"]]);
    const covered = planCommission(lines, context({ prefixes: ["CN:861", "GS1:69999"] }));
    expect(covered.ok).to.equal(true);
  });

  it("reports units that end in no case, cases on no pallet, and empty containers", function () {
    const lines = upload({ unitCount: 20, unitsPerCase: 10, casesPerPallet: 2 });
    const trailing = [...lines.slice(0, -1), { line: 99, code: "86123459999999990001", level: "unit" }];
    const outcome = planCommission(trailing, context());
    expect(!outcome.ok && outcome.errors.map((e) => e.reason)).to.include.members(["NOT_IN_CASE"]);
    const empty = planCommission([{ line: 1, code: "CASE-1", level: "case" }], context());
    expect(!empty.ok && empty.errors[0]).to.include({ line: 1, reason: "EMPTY_CONTAINER" });
  });

  it("refuses a pallet that alone is above the run limit", function () {
    const outcome = planCommission(
      upload({ unitCount: 300, unitsPerCase: 100, casesPerPallet: 3 }),
      context({ maxRunCodes: 200 }),
    );
    expect(outcome.ok).to.equal(false);
    expect(!outcome.ok && outcome.detail).to.match(
      /one pallet with its contents is 304 codes, above the ledger's limit of 200/,
    );
  });

  it("reads CSV: header, blank lines, CRLF, quotes and line numbers as the file has them", function () {
    const { lines, errors } = readCsv(
      '\uFEFFcode,level\r\n86123450000000011234,unit\r\n\r\n"CASE-1",Case\r\nno comma here\r\n',
    );
    expect(lines).to.deep.equal([
      { line: 2, code: "86123450000000011234", level: "unit" },
      { line: 4, code: "CASE-1", level: "Case" },
    ]);
    expect(errors).to.deep.equal([
      { line: 5, reason: "BAD_LINE", detail: "expected `code,level` (unit, case or pallet)" },
    ]);
    const round = readCsv(csvOf(upload({ unitCount: 30, unitsPerCase: 10, casesPerPallet: 0 })));
    expect(planCommission(round.lines, context()).ok).to.equal(true);
  });

  it("matches prefixes as the ledger does: CN by the drug code's start, GS1 after the indicator digit", function () {
    expect(prefixCovers("CN:861", parseCode("86123450000000011234"))).to.equal(true);
    expect(prefixCovers("CN:862", parseCode("86123450000000011234"))).to.equal(false);
    expect(prefixCovers("GS1:690123", parseCode(`(01)${withCheck("1690123400001")}(21)A1`))).to.equal(true);
    expect(prefixCovers("GS1:690123", parseCode(`(01)${withCheck("0691234000001")}(21)A1`))).to.equal(false);
  });
});

/** A GS1 key (GTIN-14 or SSCC body) with its mod-10 check digit appended. */
function withCheck(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum += Number(body[body.length - 1 - i]) * (i % 2 === 0 ? 3 : 1);
  return body + String((10 - (sum % 10)) % 10);
}

type JobBody = {
  jobId: string;
  status: string;
  runs: { planned: number; submitted: number; mined: number; indexed: number; failed: number };
  codes: { total: number; indexed: number; units: number; cases: number; pallets: number };
  runList: { index: number; state: string; runId?: number; txHash?: string; units: number; codes: number }[];
  errors: unknown[];
  gasUsed: number;
};
type RefusalBody = {
  status: number;
  type: string;
  detail: string;
  errorCount?: number;
  errors?: { line: number; reason: string; detail: string }[];
};

describe("API: commissioning jobs", function () {
  this.timeout(120_000);
  let h: WriteHarness;
  let batchId: number;
  let serial = 500_000_000;
  const nextBase = () => (serial += 1_000_000);
  const csvUpload = (shape: RunShape, base = nextBase()) => csvOf(upload(shape, base));
  const postCsv = (key: string, csv: string, batch = batchId, headers: Record<string, string> = {}) =>
    call<Omit<JobBody, "errors" | "status"> & RefusalBody>(h, `/v1/batches/${batch}/commissions`, {
      key,
      rawBody: csv,
      headers: { "content-type": "text/csv", ...headers },
    });
  const jobCount = async () => (await h.redis.keys("svc:job:{*}")).length;
  async function waitDone(jobId: string, key = h.keys.maker): Promise<JobBody> {
    for (let i = 0; i < 600; i++) {
      const r = await call<JobBody>(h, `/v1/jobs/${jobId}`, { key });
      expect(r.status, r.text).to.equal(200);
      if (r.body.status !== "running") return r.body;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`job ${jobId} did not finish`);
  }
  const newBatch = async (lot: string) => {
    const today = new Date().toISOString().slice(0, 10);
    const expires = new Date(Date.now() + 500 * 86_400_000).toISOString().slice(0, 10);
    const r = await call<{ batch: { id: number } }>(h, "/v1/batches", {
      key: h.keys.maker,
      body: { productId: 1, lot, manufacturedOn: today, expiresOn: expires },
    });
    expect(r.status, r.text).to.equal(201);
    return r.body.batch.id;
  };

  before(async function () {
    h = await startWriteApi({ JOB_LEASE_MS: "1000" });
    batchId = await newBatch("LOT-COMM-1");
  });
  after(async function () {
    await h?.close();
  });

  let doneJob: JobBody;

  it("commissions a CSV of cases and pallets in as many runs as maxRunCodes requires, followed to the index", async function () {
    await h.s.ledger.connect(h.s.admin).setMaxRunCodes(600);
    try {
      // 10 pallets of 4 cases of 50 units: 205 codes a pallet, 2 pallets a run under 600 -> 5 runs.
      const shape = { unitCount: 2000, unitsPerCase: 50, casesPerPallet: 4 };
      const base = nextBase();
      const r = await postCsv(h.keys.maker, "code,level\n" + csvUpload(shape, base));
      expect(r.status, r.text).to.equal(202);
      expect(r.headers.get("location")).to.equal(`/v1/jobs/${r.body.jobId}`);
      expect(r.body.runs.planned).to.equal(5);
      expect(r.body.codes).to.deep.include({ total: 2050, units: 2000, cases: 40, pallets: 10 });
      const job = await waitDone(r.body.jobId);
      expect(job.status, JSON.stringify(job.errors)).to.equal("done");
      expect(job.runs).to.deep.equal({ planned: 5, submitted: 5, mined: 5, indexed: 5, failed: 0 });
      expect(job.codes.indexed).to.equal(2050);
      expect(job.gasUsed).to.be.greaterThan(0);
      for (const run of job.runList) {
        const onChain = await h.s.ledger.runOf(run.runId!);
        expect(Number(onChain.batchId)).to.equal(batchId);
        expect([Number(onChain.unitCount), Number(onChain.unitsPerCase), Number(onChain.casesPerPallet)]).to.deep.equal(
          [400, 50, 4],
        );
      }
      // Scans find the codes, with the aggregation the packing line reported.
      const codes = demoRunCodes(PRODUCT, shape, base).map(scanned);
      const unit = await call<{ verdict: string; level: string }>(h, codePath(codes[1234]!), { key: h.keys.maker });
      expect(unit.body).to.deep.include({ verdict: "OK", level: "unit" });
      const pallet = await call<{ level: string; contents: { units: number } }>(h, codePath(codes[2000 + 40 + 7]!), {
        key: h.keys.maker,
      });
      expect(pallet.body.level).to.equal("pallet");
      expect(pallet.body.contents.units).to.equal(200);
      doneJob = job;
    } finally {
      await h.s.ledger.connect(h.s.admin).setMaxRunCodes(28_000);
    }
  });

  it("takes JSON too, line numbers being positions in the list", async function () {
    const lines = upload({ unitCount: 30, unitsPerCase: 0, casesPerPallet: 0 }, nextBase());
    const r = await call<JobBody>(h, `/v1/batches/${batchId}/commissions`, {
      key: h.keys.maker,
      body: { codes: lines.map(({ code, level }) => ({ code, level })) },
    });
    expect(r.status, r.text).to.equal(202);
    expect((await waitDone(r.body.jobId)).status).to.equal("done");
    const bad = await call<RefusalBody>(h, `/v1/batches/${batchId}/commissions`, {
      key: h.keys.maker,
      body: {
        codes: [lines[0], { code: "not a code!", level: "unit" }].map((l) => ({ code: l!.code, level: l!.level })),
      },
    });
    expect(bad.status).to.equal(422);
    expect(bad.body.errors!.map((e) => [e.line, e.reason])).to.deep.equal([
      [1, "ALREADY_COMMISSIONED"],
      [2, "UNREADABLE_CODE"],
    ]);
  });

  it("refuses an upload with bad lines, every one named by its line number, and sends nothing", async function () {
    const nonce = await ethers.provider.getTransactionCount(h.s.maker.address);
    const jobs = await jobCount();
    const rows = csvUpload({ unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }).split("\n");
    rows[2] = "86123450000000,unit"; // 14 digits: a GTIN without AI reads as no product
    rows[5] = rows[5]!.replace(",unit", ",carton");
    rows[20] = "no comma";
    rows[30] = rows[29]!;
    const r = await postCsv(h.keys.maker, rows.join("\n"));
    expect(r.status, r.text).to.equal(422);
    expect(r.body.errors!.map((e) => [e.line, e.reason])).to.deep.equal([
      [3, "NOT_A_PACK_CODE"],
      [6, "BAD_LEVEL"],
      [21, "BAD_LINE"],
      [31, "DUPLICATE_IN_UPLOAD"],
    ]);
    expect(r.body.errorCount).to.equal(4);
    expect(await ethers.provider.getTransactionCount(h.s.maker.address)).to.equal(nonce);
    expect(await jobCount()).to.equal(jobs);
  });

  it("refuses codes commissioned already, and container codes under a prefix the maker does not hold", async function () {
    const shape = { unitCount: 20, unitsPerCase: 10, casesPerPallet: 0 };
    const base = nextBase();
    const first = await postCsv(h.keys.maker, csvUpload(shape, base));
    expect(first.status, first.text).to.equal(202);
    await waitDone(first.body.jobId);
    const again = await postCsv(h.keys.maker, csvUpload(shape, base));
    expect(again.status).to.equal(422);
    expect(again.body.errorCount).to.equal(22);
    expect(again.body.errors![0]).to.deep.include({ line: 1, reason: "ALREADY_COMMISSIONED" });
    const rows = csvUpload(shape).split("\n");
    rows[10] = `(00)${withCheck("36999990000000001")},case`;
    const foreign = await postCsv(h.keys.maker, rows.join("\n"));
    expect(foreign.body.errors, foreign.text).to.have.length(1);
    expect(foreign.body.errors![0]).to.include({ line: 11, reason: "PREFIX_NOT_ASSIGNED" });
    expect(foreign.body.errors![0]!.detail).to.match(
      /^case code names SSCC 3699999\d+, under none of the manufacturer's code prefixes \(CN:861, /,
    );
  });

  it("refuses callers who may not commission the batch, unknown and recalled batches, and oversized jobs", async function () {
    const csv = csvUpload({ unitCount: 10, unitsPerCase: 0, casesPerPallet: 0 });
    expect((await postCsv(h.keys.distributor, csv)).status).to.equal(403);
    expect((await postCsv(h.keys.regulator, csv)).status).to.equal(403);
    const other = await postCsv(h.keys.otherMaker, csv);
    expect(other.status).to.equal(403);
    expect((await postCsv(h.keys.maker, csv, 999_999)).status).to.equal(404);
    const recalled = await newBatch("LOT-COMM-RC");
    await call(h, `/v1/batches/${recalled}/recall`, { key: h.keys.maker, body: { reason: "test" } });
    expect((await postCsv(h.keys.maker, csv, recalled)).status).to.equal(409);
    const huge = await postCsv(h.keys.maker, "x,unit\n".repeat(200_001));
    expect(huge.status).to.equal(413);
    expect(huge.body.detail).to.match(/above the 200000 codes one job takes/);
    const plain = await call(h, `/v1/batches/${batchId}/commissions`, {
      key: h.keys.maker,
      rawBody: csv,
      headers: { "content-type": "text/plain" },
    });
    expect(plain.status).to.equal(415);
  });

  it("shows a job to its maker and the regulator only", async function () {
    expect((await call(h, `/v1/jobs/${doneJob.jobId}`, { key: h.keys.regulator })).status).to.equal(200);
    expect((await call(h, `/v1/jobs/${doneJob.jobId}`, { key: h.keys.otherMaker })).status).to.equal(404);
    expect((await call(h, `/v1/jobs/nosuchjob`, { key: h.keys.maker })).status).to.equal(404);
    expect((await call(h, `/v1/jobs/${doneJob.jobId}`, { key: h.keys.pharmacy })).status).to.equal(403);
  });

  it("answers a retried upload with the same job (Idempotency-Key), another body under the key with 422", async function () {
    const csv = csvUpload({ unitCount: 10, unitsPerCase: 0, casesPerPallet: 0 });
    const headers = { "idempotency-key": "upload-7" };
    const first = await postCsv(h.keys.maker, csv, batchId, headers);
    const again = await postCsv(h.keys.maker, csv, batchId, headers);
    expect(again.status).to.equal(202);
    expect(again.body.jobId).to.equal(first.body.jobId);
    expect(
      (await postCsv(h.keys.maker, csvUpload({ unitCount: 5, unitsPerCase: 0, casesPerPallet: 0 }), batchId, headers))
        .status,
    ).to.equal(422);
    await waitDone(first.body.jobId);
  });

  it("resumes a job after its runner stopped, and never submits a run twice", async function () {
    await h.s.ledger.connect(h.s.admin).setMaxRunCodes(300);
    try {
      const shape = { unitCount: 1000, unitsPerCase: 20, casesPerPallet: 5 }; // 101 codes a pallet, 2 a run: 5 runs
      const r = await postCsv(h.keys.maker, csvUpload(shape));
      expect(r.status, r.text).to.equal(202);
      // The process's runner goes away after its first run (as a process would on shutdown or crash).
      const first = jobRunnerOf(h.ctx);
      await first.stop();
      const stopped = (await call<JobBody>(h, `/v1/jobs/${r.body.jobId}`, { key: h.keys.maker })).body;
      expect(stopped.status).to.equal("running");
      expect(stopped.runs.indexed).to.be.lessThan(5);
      // A crash between sending a run and recording it: the job says "submitting" for a run the chain has.
      const sent = stopped.runList.find((run) => run.state === "indexed");
      const store = new JobStore(h.redis);
      if (sent) {
        const job = (await store.get(r.body.jobId))!;
        await store.saveRun(job.jobId, { ...job.runs[sent.index]!, state: "submitting" });
      }
      const nonce = await ethers.provider.getTransactionCount(h.s.maker.address);
      const second = new JobRunner(
        { redis: h.redis, rpc: h.ctx.rpc, log: h.ctx.log, writer: pipelineWriter(h.ctx) },
        { leaseMs: 1000, runsInFlight: 2 },
      );
      second.startSweeping();
      const job = await waitDone(r.body.jobId);
      await second.stop();
      expect(job.status).to.equal("done");
      expect(job.runs.indexed).to.equal(5);
      const notSent = 5 - stopped.runs.submitted;
      expect(await ethers.provider.getTransactionCount(h.s.maker.address)).to.equal(nonce + notSent);
      if (sent) expect(job.runList[sent.index]!.txHash).to.equal(sent.txHash);
      const events = await h.s.ledger.queryFilter(h.s.ledger.filters.UnitsCommissioned(undefined, batchId));
      const runIds = job.runList.map((run) => run.runId);
      expect(
        events.filter((e) => runIds.includes(Number((e as unknown as { args: { runId: bigint } }).args.runId))),
      ).to.have.length(5);
      expect(new Set(runIds).size).to.equal(5);
    } finally {
      await h.s.ledger.connect(h.s.admin).setMaxRunCodes(28_000);
    }
  });
});
