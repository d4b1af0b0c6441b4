/**
 * Commissioning jobs: a batch's codes, planned into runs (backend/chain/commission-plan.ts), submitted one run a
 * transaction through the write pipeline and followed until the index shows them. A job lives in Redis
 * (`svc:job:{<id>}`: its summary, each run's state, and each run's code hashes and witness until it is done), so
 * that it survives the API process: any API process resumes an unfinished job once the lease of the process that
 * ran it (`svc:job:{<id>}:lease`) has lapsed. A run is submitted under the idempotency key
 * `commission:<jobId>:<runIndex>`: a resumed job re-asks the pipeline for a run it may have sent, and the pipeline
 * answers with the transaction it recorded rather than sending a second one.
 */
import { createHash, randomBytes } from "node:crypto";
import type { CommissionPlan } from "../chain/commission-plan";
import type { RunShape } from "../codes/run";
import { META } from "../index/keys";
import type { Logger } from "../log";
import type { RedisClient } from "../store/redis";
import type { LedgerChain } from "../chain/client";
import type { ApiContext, Caller } from "./context";
import { ApiError, toApiError } from "./errors";
import { runWrite } from "./writes";

/** A write made without an HTTP request (a job's run, the second step of an onboarding). */
export interface ProgrammaticCall {
  caller: Caller;
  method: string;
  args: unknown[];
  /** The pipeline's idempotency key: the same key is never submitted twice, also across restarts. */
  idempotencyKey: string;
}

export interface CallResult {
  status: "mined" | "pending";
  txHash: string;
  block?: number;
  gasUsed?: number;
}

/** What the job runner needs of the write pipeline. */
export interface RunWriter {
  submit(call: ProgrammaticCall): Promise<CallResult>;
}

/**
 * The write pipeline's core (writes.ts `runWrite`) for one call under an idempotency key: a new key simulates,
 * records and sends; a key whose first holder went away resumes from what it recorded, sending only what was never
 * signed; a finished key answers with its first result. Refusals are ApiErrors, as on the write routes.
 */
export function pipelineWriter(ctx: ApiContext): RunWriter {
  return {
    async submit({ caller, method, args, idempotencyKey }) {
      const data = ctx.writer.iface.encodeFunctionData(method, args);
      const requestHash = createHash("sha256").update(`${method}\n${data}`).digest("hex");
      const answer = await runWrite(
        ctx,
        caller,
        { idempotencyKey, requestHash },
        async () => ({ calls: [{ method, args }], codes: new Map() }),
        async (outcome) => {
          const tx = outcome.transactions[0]!;
          return { status: 200, body: { status: "mined", txHash: tx.txHash, block: tx.block, gasUsed: tx.gasUsed } };
        },
      );
      const body = answer.body as CallResult | { status: "pending"; transactions: { txHash: string }[] };
      return "transactions" in body ? { status: "pending", txHash: body.transactions[0]!.txHash } : body;
    },
  };
}

export const RUN_STATES = ["planned", "submitting", "submitted", "mined", "indexed", "failed"] as const;
export type RunState = (typeof RUN_STATES)[number];
export const JOB_STATES = ["running", "done", "failed"] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface JobRun {
  index: number;
  state: RunState;
  shape: RunShape;
  codes: number;
  /** First and last line of the upload the run's codes came from. */
  lines: { first: number; last: number };
  txHash?: string;
  block?: number;
  gasUsed?: number;
  runId?: number;
  /** Why the ledger refused the run (problem+json of the refusal), or the last transient error while retrying. */
  error?: Record<string, unknown>;
  /** Submission attempts (a resumed run is asked again under the same idempotency key). */
  attempts: number;
}

export interface JobMeta {
  jobId: string;
  org: string;
  participantId: number;
  batchId: number;
  createdAt: number;
  updatedAt: number;
  state: JobState;
  unitsPerCase: number;
  casesPerPallet: number;
  units: number;
  cases: number;
  pallets: number;
  codes: number;
  runCount: number;
}

export interface Job extends JobMeta {
  runs: JobRun[];
}

export const jobKey = (jobId: string): string => `svc:job:{${jobId}}`;
const leaseKey = (jobId: string): string => `svc:job:{${jobId}}:lease`;
/** Unfinished jobs, for any API process to resume. */
export const OPEN_JOBS_KEY = "svc:job:open";
const FIELD = {
  meta: "meta",
  run: (i: number) => `run:${i}`,
  codes: (i: number) => `codes:${i}`,
  witness: (i: number) => `witness:${i}`,
};

/** Finished jobs are kept this long for their callers to read. */
const KEEP_FINISHED_SECONDS = 7 * 24 * 3600;

export const idempotencyKeyOf = (jobId: string, runIndex: number): string => `commission:${jobId}:${runIndex}`;

export class JobStore {
  constructor(private readonly redis: RedisClient) {}

  async create(org: string, participantId: number, batchId: number, plan: CommissionPlan): Promise<Job> {
    const now = Date.now();
    const meta: JobMeta = {
      jobId: randomBytes(9).toString("base64url"),
      org: org.toLowerCase(),
      participantId,
      batchId,
      createdAt: now,
      updatedAt: now,
      state: "running",
      unitsPerCase: plan.unitsPerCase,
      casesPerPallet: plan.casesPerPallet,
      units: plan.units,
      cases: plan.cases,
      pallets: plan.pallets,
      codes: plan.codes,
      runCount: plan.runs.length,
    };
    const runs: JobRun[] = plan.runs.map((r) => ({
      index: r.index,
      state: "planned",
      shape: r.shape,
      codes: r.payload.hashes.length,
      lines: { first: Math.min(...r.lines), last: Math.max(...r.lines) },
      attempts: 0,
    }));
    const fields: (string | Buffer)[] = [FIELD.meta, JSON.stringify(meta)];
    for (const r of plan.runs) {
      fields.push(FIELD.run(r.index), JSON.stringify(runs[r.index]));
      fields.push(FIELD.codes(r.index), r.payload.codes, FIELD.witness(r.index), r.payload.witness);
    }
    // One HSET: a job is there whole or not at all. Listed as open once it is.
    await this.redis.hset(jobKey(meta.jobId), ...fields);
    await this.redis.sadd(OPEN_JOBS_KEY, meta.jobId);
    return { ...meta, runs };
  }

  async get(jobId: string): Promise<Job | null> {
    const [meta, ...runs] = await this.redis.hmget(
      jobKey(jobId),
      FIELD.meta,
      ...Array.from({ length: await this.runCount(jobId) }, (_, i) => FIELD.run(i)),
    );
    if (!meta) return null;
    return { ...(JSON.parse(meta) as JobMeta), runs: runs.map((r) => JSON.parse(r!) as JobRun) };
  }

  private async runCount(jobId: string): Promise<number> {
    const meta = await this.redis.hget(jobKey(jobId), FIELD.meta);
    return meta ? (JSON.parse(meta) as JobMeta).runCount : 0;
  }

  /** A run's calldata: packed code hashes and uniqueness witness. */
  async payload(jobId: string, index: number): Promise<{ codes: Buffer; witness: Buffer }> {
    const [codes, witness] = await this.redis.hmgetBuffer(jobKey(jobId), FIELD.codes(index), FIELD.witness(index));
    if (!codes || !witness) throw new Error(`job ${jobId} has no payload for run ${index}`);
    return { codes, witness };
  }

  async saveRun(jobId: string, run: JobRun): Promise<void> {
    await this.redis.hset(jobKey(jobId), FIELD.run(run.index), JSON.stringify(run));
  }

  async saveMeta(meta: JobMeta): Promise<void> {
    await this.redis.hset(jobKey(meta.jobId), FIELD.meta, JSON.stringify({ ...meta, updatedAt: Date.now() }));
  }

  /** A finished job drops its payloads, leaves the open list and expires in a week. */
  async finish(job: Job, state: "done" | "failed"): Promise<void> {
    const meta: JobMeta = { ...job, state, updatedAt: Date.now() };
    delete (meta as Partial<Job>).runs;
    const key = jobKey(job.jobId);
    const payloads = job.runs.flatMap((r) => [FIELD.codes(r.index), FIELD.witness(r.index)]);
    await this.redis.hset(key, FIELD.meta, JSON.stringify(meta));
    if (payloads.length > 0) await this.redis.hdel(key, ...payloads);
    await this.redis.expire(key, KEEP_FINISHED_SECONDS);
    await this.redis.srem(OPEN_JOBS_KEY, job.jobId);
  }

  openJobs(): Promise<string[]> {
    return this.redis.smembers(OPEN_JOBS_KEY);
  }

  /** Takes the job's lease for `ms`, or renews it when `token` holds it; false when another process does. */
  async lease(jobId: string, token: string, ms: number): Promise<boolean> {
    const taken = await this.redis.eval(LEASE_SCRIPT, 1, leaseKey(jobId), token, String(ms));
    return taken === 1;
  }

  async release(jobId: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, leaseKey(jobId), token);
  }
}

const LEASE_SCRIPT = `
local holder = redis.call("GET", KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0`;
const RELEASE_SCRIPT = `
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
return 0`;

export interface JobRunnerSettings {
  /** A job's lease: another process resumes the job this long after its runner stopped renewing it. */
  leaseMs: number;
  /** Runs of one job submitted at a time (the pipeline orders their nonces). */
  runsInFlight: number;
}

export interface JobDeps {
  redis: RedisClient;
  rpc: LedgerChain;
  log: Logger;
  writer: RunWriter;
}

/** The maker a job writes for, as the pipeline authorises it. */
const jobCaller = (job: JobMeta): Caller => ({
  keyId: `job:${job.jobId}`,
  name: "commissioning job",
  account: job.org,
  participantId: job.participantId,
  role: "manufacturer",
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs the jobs of this process, and takes over those whose runner went away. */
export class JobRunner {
  readonly store: JobStore;
  private readonly token = randomBytes(12).toString("hex");
  private readonly active = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly deps: JobDeps,
    private readonly settings: JobRunnerSettings,
  ) {
    this.store = new JobStore(deps.redis);
  }

  /** Resumes open jobs now and then every lease period (a job whose runner died is picked up within that). */
  startSweeping(): void {
    if (this.sweeper) return;
    void this.resumeOpen();
    this.sweeper = setInterval(() => void this.resumeOpen(), this.settings.leaseMs);
    this.sweeper.unref();
  }

  /** Stops taking jobs and waits for the current runs to settle; their leases lapse for others to resume. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.allSettled(this.active.values());
  }

  async resumeOpen(): Promise<void> {
    try {
      for (const jobId of await this.store.openJobs()) this.start(jobId);
    } catch (err) {
      this.deps.log.warn({ err }, "could not list open commissioning jobs");
    }
  }

  /** Runs a job in the background, unless this process already does or another holds its lease. */
  start(jobId: string): Promise<void> {
    const running = this.active.get(jobId);
    if (running) return running;
    const run = this.drive(jobId)
      .catch((err) => this.deps.log.error({ err, jobId }, "commissioning job stopped"))
      .finally(() => this.active.delete(jobId));
    this.active.set(jobId, run);
    return run;
  }

  private async drive(jobId: string): Promise<void> {
    if (this.stopped || !(await this.store.lease(jobId, this.token, this.settings.leaseMs))) return;
    let leased = true;
    const renew = setInterval(
      () =>
        void this.store.lease(jobId, this.token, this.settings.leaseMs).then(
          (ok) => (leased = ok),
          () => undefined,
        ),
      Math.max(50, Math.floor(this.settings.leaseMs / 3)),
    );
    try {
      const job = await this.store.get(jobId);
      if (!job) return;
      const pending = job.runs.filter((r) => r.state !== "indexed" && r.state !== "failed");
      let failed = job.runs.some((r) => r.state === "failed");
      const next = () => (failed || this.stopped || !leased ? undefined : pending.shift());
      const lane = async () => {
        for (let run = next(); run; run = next()) {
          const outcome = await this.runOne(job, run, () => leased && !this.stopped);
          if (outcome === "failed") failed = true;
        }
      };
      await Promise.all(Array.from({ length: this.settings.runsInFlight }, lane));
      if (this.stopped || !leased) return;
      const done = job.runs.every((r) => r.state === "indexed");
      if (done || failed) await this.store.finish(job, done ? "done" : "failed");
    } finally {
      clearInterval(renew);
      await this.store.release(jobId, this.token).catch(() => undefined);
    }
  }

  /** Submits a run until the pipeline says it is mined (or refuses it), then waits for the index. */
  private async runOne(job: Job, run: JobRun, holding: () => boolean): Promise<"indexed" | "failed" | "stopped"> {
    const save = (changes: Partial<JobRun>) => {
      Object.assign(run, changes);
      return this.store.saveRun(job.jobId, run);
    };
    let backoff = 250;
    while (run.state !== "mined" && run.state !== "indexed") {
      if (!holding()) return "stopped";
      const payload = await this.store.payload(job.jobId, run.index);
      await save({ state: run.state === "planned" ? "submitting" : run.state, attempts: run.attempts + 1 });
      try {
        const result = await this.deps.writer.submit({
          caller: jobCaller(job),
          method: "commission",
          args: [
            job.batchId,
            run.shape.unitCount,
            run.shape.unitsPerCase,
            run.shape.casesPerPallet,
            payload.codes,
            payload.witness,
          ],
          idempotencyKey: idempotencyKeyOf(job.jobId, run.index),
        });
        if (result.status === "pending") {
          await save({ state: "submitted", txHash: result.txHash });
          await sleep(backoff);
          continue;
        }
        const runId = await this.runIdOf(result.txHash);
        delete run.error; // a transient error retried past is history
        await save({
          state: "mined",
          txHash: result.txHash,
          ...(result.block !== undefined ? { block: result.block } : {}),
          ...(result.gasUsed !== undefined ? { gasUsed: result.gasUsed } : {}),
          ...runId,
        });
      } catch (err) {
        const problem = toApiError(err);
        if (err instanceof ApiError && problem.status < 500) {
          await save({ state: "failed", error: problem.problem() });
          return "failed";
        }
        // The node or Redis away, or a bug: keep the run, report the error, retry with backoff.
        this.deps.log.warn({ err, jobId: job.jobId, run: run.index }, "commissioning run not submitted; retrying");
        await save({ error: problem.problem() });
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
    if (run.state === "mined") {
      if (!(await this.waitIndexed(run.block!, holding))) return "stopped";
      await save({ state: "indexed" });
    }
    return "indexed";
  }

  /** The run id and block of a mined commissioning transaction, from its receipt's UnitsCommissioned event. */
  private async runIdOf(txHash: string): Promise<{ runId: number; block: number; gasUsed: number }> {
    const receipt = await this.deps.rpc.provider.getTransactionReceipt(txHash);
    if (!receipt) throw new Error(`no receipt for mined transaction ${txHash}`);
    const iface = this.deps.rpc.iface;
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() !== this.deps.rpc.address) continue;
      const event = iface.parseLog(log);
      if (event?.name === "UnitsCommissioned")
        return { runId: Number(event.args.runId), block: receipt.blockNumber, gasUsed: Number(receipt.gasUsed) };
    }
    throw new Error(`transaction ${txHash} commissioned no run`);
  }

  /**
   * Waits until the indexer's checkpoint is at or past `block`; false when the lease was lost meanwhile. A read that
   * fails (Redis slow behind the indexer's commit of a large run, or away) is tried again rather than stopping the
   * job until another sweep resumes it.
   */
  private async waitIndexed(block: number, holding: () => boolean): Promise<boolean> {
    for (;;) {
      const raw = await this.deps.redis.get(META.checkpoint).catch((err: Error) => {
        this.deps.log.warn({ err: err.message, block }, "commissioning job: checkpoint not read; retrying");
        return null;
      });
      if (raw && (JSON.parse(raw) as { number: number }).number >= block) return true;
      if (!holding()) return false;
      await sleep(50);
    }
  }
}
