/**
 * Commissioning a batch's codes over HTTP: `POST /v1/batches/{batchId}/commissions` takes tens of thousands of
 * codes in one request (JSON, or text/csv `code,level` lines in packing order), checks every line with the scan
 * parser and against the index, and answers 202 with a job that submits the planned runs through the write
 * pipeline (backend/api/jobs.ts); `GET /v1/jobs/{jobId}` follows it.
 */
import { createHash } from "node:crypto";
import express, { type RequestHandler, type Router } from "express";
import { z } from "zod";
import { planCommission, readCsv, type LineError, type UploadLine } from "../chain/commission-plan";
import { codeHash } from "../codes/parse";
import { Level } from "../codes/refs";
import { codeSlot } from "../index/keys";
import { refFromBytes } from "../index/model";
import { DrugLedger__factory } from "../../typechain-types";
import type { ApiContext, Caller } from "./context";
import { ApiError, problems } from "./errors";
import { JOB_STATES, JobRunner, pipelineWriter, RUN_STATES, type Job } from "./jobs";
import { ApiRouter } from "./openapi";

/** Commissioning settings, read from the environment (merged into the API's configuration, as claims-config.ts). */
export const commissionSettingsSchema = z.object({
  /** Largest commissioning upload (JSON or CSV); other requests keep API_BODY_LIMIT. */
  COMMISSION_BODY_LIMIT: z.string().default("16mb"),
  /** Most codes (units, cases and pallets) one commissioning job takes. */
  COMMISSION_MAX_CODES: z.coerce.number().int().min(1).default(200_000),
  /** Bad lines listed in a refusal (all are counted). */
  COMMISSION_MAX_REPORTED_ERRORS: z.coerce.number().int().min(1).default(1_000),
  /** Another API process resumes a job this long after its runner stopped renewing its lease. */
  JOB_LEASE_MS: z.coerce.number().int().min(100).default(15_000),
  /** Runs of one job in the pipeline at a time. */
  JOB_RUNS_IN_FLIGHT: z.coerce.number().int().min(1).max(16).default(2),
});
export type CommissionSettings = z.infer<typeof commissionSettingsSchema>;

export function loadCommissionSettings(env: NodeJS.ProcessEnv = process.env): CommissionSettings {
  const parsed = commissionSettingsSchema.safeParse(env);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid commissioning settings: ${issues}`);
  }
  return parsed.data;
}

const settingsCache = new WeakMap<ApiContext, CommissionSettings>();
export function commissionSettings(ctx: ApiContext): CommissionSettings {
  let settings = settingsCache.get(ctx);
  if (!settings) settingsCache.set(ctx, (settings = commissionSettingsSchema.parse(ctx.config)));
  return settings;
}

const runners = new WeakMap<ApiContext, JobRunner>();
/** The context's job runner (one per API process, over the context's write pipeline). */
export function jobRunnerOf(ctx: ApiContext): JobRunner {
  let runner = runners.get(ctx);
  if (!runner) {
    const settings = commissionSettings(ctx);
    runner = new JobRunner(
      { redis: ctx.redis, rpc: ctx.rpc, log: ctx.log, writer: pipelineWriter(ctx) },
      { leaseMs: settings.JOB_LEASE_MS, runsInFlight: settings.JOB_RUNS_IN_FLIGHT },
    );
    runners.set(ctx, runner);
  }
  return runner;
}

// Case-insensitive, as Express matches the route: an upload to /V1/BATCHES/… reaches it with its own parser.
const COMMISSION_PATH = /^\/v1\/batches\/[^/]+\/commissions\/?$/i;

/**
 * Reads commissioning uploads (JSON or text/csv, up to COMMISSION_BODY_LIMIT) before the service's JSON-only body
 * parser; app.ts mounts it in the `/v1` chain. Every other request passes untouched.
 */
export function commissionUploadParser(ctx: ApiContext): RequestHandler {
  const limit = commissionSettings(ctx).COMMISSION_BODY_LIMIT;
  const json = express.json({ limit, strict: true });
  const csv = express.text({ type: "text/csv", limit });
  return (req, res, next) => {
    if (req.method !== "POST" || !COMMISSION_PATH.test(req.baseUrl + req.path)) return next();
    if (req.is("application/json")) return json(req, res, next);
    if (req.is("text/csv")) return csv(req, res, next);
    next();
  };
}

// ---- schemas ----

const uploadLineSchema = z.object({
  code: z.string().openapi({ description: "The code as printed or scanned" }),
  level: z.string().openapi({ description: "unit, case or pallet" }),
});
const uploadSchema = z.union([
  z
    .object({
      codes: z
        .array(uploadLineSchema)
        .min(1)
        .openapi({
          description:
            "Codes in packing order: each case's units then the case, each pallet's cases then the pallet. " +
            "Line numbers in refusals are 1-based positions in this list.",
        }),
    })
    .strict()
    .openapi("CommissionUpload"),
  z.string().openapi({
    description: "As text/csv: one `code,level` line per code in packing order (an optional `code,level` header)",
  }),
]);

const lineErrorSchema = z
  .object({
    line: z.number().int(),
    reason: z.string(),
    detail: z.string(),
    codeReason: z.string().optional(),
    hints: z.array(z.string()).optional(),
  })
  .openapi("UploadLineError");

const runViewSchema = z.object({
  index: z.number().int(),
  state: z.enum(RUN_STATES),
  units: z.number().int(),
  codes: z.number().int(),
  lines: z.object({ first: z.number().int(), last: z.number().int() }),
  txHash: z.string().optional(),
  block: z.number().int().optional(),
  runId: z.number().int().optional(),
  gasUsed: z.number().int().optional(),
  error: z.record(z.unknown()).optional(),
});

export const jobSchema = z
  .object({
    jobId: z.string(),
    batchId: z.number().int(),
    status: z.enum(JOB_STATES),
    createdAt: z.string(),
    updatedAt: z.string(),
    unitsPerCase: z.number().int(),
    casesPerPallet: z.number().int(),
    codes: z.object({
      total: z.number().int(),
      units: z.number().int(),
      cases: z.number().int(),
      pallets: z.number().int(),
      indexed: z.number().int(),
    }),
    runs: z.object({
      planned: z.number().int(),
      submitted: z.number().int(),
      mined: z.number().int(),
      indexed: z.number().int(),
      failed: z.number().int(),
    }),
    gasUsed: z.number().int(),
    errors: z.array(z.object({ run: z.number().int() }).passthrough()),
    runList: z.array(runViewSchema),
  })
  .openapi("CommissionJob");

const invalidUploadSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    errorCount: z.number().int().optional().openapi({ description: "Bad lines (all counted)" }),
    errors: z.array(lineErrorSchema).optional().openapi({ description: "Bad lines, by line number" }),
  })
  .openapi("InvalidUpload");

const iso = (ms: number) => new Date(ms).toISOString();

export function jobView(job: Job): z.infer<typeof jobSchema> {
  const count = (...states: string[]) => job.runs.filter((r) => states.includes(r.state)).length;
  return {
    jobId: job.jobId,
    batchId: job.batchId,
    status: job.state,
    createdAt: iso(job.createdAt),
    updatedAt: iso(Math.max(job.updatedAt, job.createdAt)),
    unitsPerCase: job.unitsPerCase,
    casesPerPallet: job.casesPerPallet,
    codes: {
      total: job.codes,
      units: job.units,
      cases: job.cases,
      pallets: job.pallets,
      indexed: job.runs.filter((r) => r.state === "indexed").reduce((n, r) => n + r.codes, 0),
    },
    runs: {
      planned: job.runs.length,
      submitted: count("submitted", "mined", "indexed"),
      mined: count("mined", "indexed"),
      indexed: count("indexed"),
      failed: count("failed"),
    },
    gasUsed: job.runs.reduce((n, r) => n + (r.gasUsed ?? 0), 0),
    errors: job.runs.filter((r) => r.error).map((r) => ({ run: r.index, lines: r.lines, ...r.error })),
    runList: job.runs.map((r) => ({
      index: r.index,
      state: r.state,
      units: r.shape.unitCount,
      codes: r.codes,
      lines: r.lines,
      ...(r.txHash ? { txHash: r.txHash } : {}),
      ...(r.block !== undefined ? { block: r.block } : {}),
      ...(r.runId !== undefined ? { runId: r.runId } : {}),
      ...(r.gasUsed !== undefined ? { gasUsed: r.gasUsed } : {}),
      ...(r.error ? { error: r.error } : {}),
    })),
  };
}

// ---- checks ----

function invalidUpload(ctx: ApiContext, detail: string, errors: LineError[]): ApiError {
  const max = commissionSettings(ctx).COMMISSION_MAX_REPORTED_ERRORS;
  const shown = errors.length > max ? ` (the first ${max} are listed)` : "";
  return new ApiError(422, "validation", "Upload has lines that cannot be commissioned", detail + shown, {
    errorCount: errors.length,
    errors: errors.slice(0, max),
  });
}

/** Lines of the body: JSON list positions, or CSV lines (with the CSV's own line errors). */
function uploadLines(body: unknown): { lines: UploadLine[]; errors: LineError[] } {
  if (typeof body === "string") return readCsv(body);
  const codes = (body as { codes: { code: string; level: string }[] }).codes;
  return { lines: codes.map((c, i) => ({ line: i + 1, code: c.code, level: c.level })), errors: [] };
}

const LEVEL_NAMES: Record<Level, string> = { [Level.Unit]: "unit", [Level.Case]: "case", [Level.Pallet]: "pallet" };

/** Codes the index already knows (in any run): commissioning them again would make copies, never answers. */
async function alreadyCommissioned(ctx: ApiContext, codes: { hash: Buffer; line: number }[]): Promise<LineError[]> {
  const buckets = new Map<string, { fields: Buffer[]; lines: number[] }>();
  for (const { hash, line } of codes) {
    const slot = codeSlot(hash, ctx.config.CODE_BUCKET_BITS);
    let bucket = buckets.get(slot.key);
    if (!bucket) buckets.set(slot.key, (bucket = { fields: [], lines: [] }));
    bucket.fields.push(Buffer.from(slot.field, "latin1"));
    bucket.lines.push(line);
  }
  const found = await Promise.all(
    [...buckets].map(async ([key, b]) => ({ b, refs: await ctx.redis.hmgetBuffer(key, ...b.fields) })),
  );
  const errors: LineError[] = [];
  for (const { b, refs } of found)
    refs.forEach((raw, i) => {
      if (!raw) return;
      const ref = refFromBytes(raw.toString("latin1"));
      errors.push({
        line: b.lines[i]!,
        reason: "ALREADY_COMMISSIONED",
        detail: `commissioned before, as ${LEVEL_NAMES[ref.level]} ${ref.index} of run ${ref.runId}`,
      });
    });
  return errors.sort((a, b) => a.line - b.line);
}

async function maxRunCodes(ctx: ApiContext): Promise<number> {
  const ledger = DrugLedger__factory.connect(ctx.rpc.address, ctx.rpc.provider);
  return Number(await ledger.maxRunCodes());
}

/** The batch, if the caller may commission codes of it. */
async function commissionableBatch(ctx: ApiContext, caller: Caller, batchId: number) {
  const batch = await ctx.reader.batch(batchId);
  if (!batch) throw problems.notFound(`No batch ${batchId}`, { field: "batchId" });
  const product = await ctx.reader.product(batch.productId);
  if (batch.manufacturerId !== caller.participantId || product?.manufacturerId !== caller.participantId)
    throw problems.forbidden(`Batch ${batchId} is not a batch of a product of yours: only its maker commissions it.`);
  if (batch.recalled) throw problems.conflict(`Batch ${batchId} is recalled: no codes are commissioned into it.`);
  return { batch, product };
}

/** An Idempotency-Key names one upload: the same key again answers with its job; with another body, 422. */
async function jobOfKey(ctx: ApiContext, caller: Caller, key: string | undefined, requestHash: string) {
  if (!key) return { claim: async () => undefined, jobId: null as string | null };
  const redisKey = `svc:job:idem:${caller.account}:${key}`;
  const raw = await ctx.redis.get(redisKey);
  if (raw) {
    const seen = JSON.parse(raw) as { requestHash: string; jobId: string };
    if (seen.requestHash !== requestHash)
      throw new ApiError(422, "validation", "Idempotency key reused", "This Idempotency-Key named another upload.", {
        field: "Idempotency-Key",
      });
    return { claim: async () => undefined, jobId: seen.jobId };
  }
  return {
    jobId: null,
    claim: async (jobId: string) => {
      await ctx.redis.set(redisKey, JSON.stringify({ requestHash, jobId }), "EX", 7 * 24 * 3600, "NX");
    },
  };
}

const batchParams = z.object({
  batchId: z.coerce.number().int().min(1).max(0xffffffff).openapi({ type: "integer" }),
});
const jobParams = z.object({ jobId: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/) });

export function commissioningRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  jobRunnerOf(ctx).startSweeping();
  api.route(
    {
      method: "post",
      path: "/v1/batches/{batchId}/commissions",
      summary: "Commission a batch's codes with their cases and pallets: a job of as many runs as the ledger needs",
      description:
        "JSON `{codes: [{code, level}]}` or text/csv `code,level` lines, in packing order (each case's units then " +
        "the case; each pallet's cases then the pallet). Every code is read with the scan parser; units must name " +
        "the batch's product, cases and pallets that name a product or company must fall under the maker's code " +
        "prefixes, and no code may be commissioned already. Any bad line refuses the whole upload (422, every " +
        "line listed by number). A good upload is split into runs of at most the ledger's maxRunCodes on pallet " +
        "boundaries (case boundaries when not palletised) and answered 202 with the job; follow it at " +
        "`GET /v1/jobs/{jobId}`. An Idempotency-Key header makes a retried upload answer with the same job.",
      tags: ["commissioning"],
      access: ["manufacturer"],
      request: { params: batchParams, body: uploadSchema },
      responses: {
        202: { description: "The job, started", schema: jobSchema },
        404: { description: "No such batch" },
        409: { description: "The batch is recalled" },
        413: { description: "More codes than one job takes (COMMISSION_MAX_CODES)" },
        422: { description: "Bad lines, each with its number", schema: invalidUploadSchema },
      },
    },
    async ({ params, body, caller, req, res }) => {
      const runner = jobRunnerOf(ctx);
      if (!ctx.writer.holdsKeyOf(caller!.account))
        throw new ApiError(
          403,
          "no-signer",
          "No signing key",
          `This deployment holds no signing key for ${caller!.account}.`,
        );
      const settings = commissionSettings(ctx);
      const { batch, product } = await commissionableBatch(ctx, caller!, params.batchId);
      const requestHash = createHash("sha256")
        .update(`${batch.id}\n`)
        .update(typeof body === "string" ? body : JSON.stringify(body))
        .digest("hex");
      const idem = await jobOfKey(ctx, caller!, req.header("idempotency-key"), requestHash);
      const earlier = idem.jobId ? await runner.store.get(idem.jobId) : null;
      if (earlier) {
        res.status(202).location(`/v1/jobs/${earlier.jobId}`);
        return jobView(earlier);
      }
      const { lines, errors } = uploadLines(body);
      if (lines.length + errors.length > settings.COMMISSION_MAX_CODES)
        throw new ApiError(
          413,
          "payload-too-large",
          "Job too large",
          `${lines.length + errors.length} lines, above the ${settings.COMMISSION_MAX_CODES} codes one job takes: split the batch into several uploads.`,
        );
      const maker = await ctx.reader.participant(caller!.participantId!);
      const domain = ctx.config.CODE_HASH_DOMAIN;
      const outcome = planCommission(
        lines,
        {
          productCode: product!.productCode,
          prefixes: maker?.codePrefixes ?? [],
          maxRunCodes: await maxRunCodes(ctx),
          domain,
        },
        errors,
      );
      if (!outcome.ok) {
        if (outcome.errors.length === 0)
          throw new ApiError(422, "validation", "Upload cannot be commissioned", outcome.detail);
        // Every bad line at once: the readable codes are also looked up in the index.
        const hashed = outcome.readable.map((c) => ({ line: c.line, hash: codeHash(c.normalised, domain) }));
        const all = [...outcome.errors, ...(await alreadyCommissioned(ctx, hashed))].sort((a, b) => a.line - b.line);
        throw invalidUpload(ctx, `${all.length} of ${lines.length + errors.length} lines are not valid`, all);
      }
      const planned = outcome.plan.runs.flatMap((r) =>
        r.payload.hashes.map((hash, i) => ({ hash, line: r.lines[i]! })),
      );
      const known = await alreadyCommissioned(ctx, planned);
      if (known.length > 0) throw invalidUpload(ctx, `${known.length} codes are commissioned already`, known);
      const job = await runner.store.create(caller!.account, caller!.participantId!, batch.id, outcome.plan);
      await idem.claim(job.jobId);
      void runner.start(job.jobId);
      res.status(202).location(`/v1/jobs/${job.jobId}`);
      return jobView(job);
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/jobs/{jobId}",
      summary: "A commissioning job's progress: runs planned, submitted, mined and indexed, codes, errors",
      tags: ["commissioning"],
      access: ["manufacturer", "regulator"],
      request: { params: jobParams },
      responses: { 200: { description: "The job", schema: jobSchema }, 404: { description: "No such job" } },
    },
    async ({ params, caller }) => {
      const job = await jobRunnerOf(ctx).store.get(params.jobId);
      // Another organisation's job is not found, not forbidden: job ids say nothing to outsiders.
      if (!job || (caller!.role !== "regulator" && job.org !== caller!.account.toLowerCase()))
        throw problems.notFound(`No job ${params.jobId}`, { field: "jobId" });
      return jobView(job);
    },
  );
  return api.router;
}
