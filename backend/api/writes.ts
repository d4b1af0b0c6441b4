/**
 * The write pipeline every write route uses: the caller's key, Idempotency-Key, simulation (a doomed call is
 * answered with the contract's custom error and never sent), batching of calls that can share a transaction,
 * sending through the per-signer nonce manager, and read-your-writes (the answer shows the index once it has
 * passed the transaction's block, or is a 202 naming where to look).
 */
import type { Interface } from "ethers";
import { z } from "zod";
import { codeHash, CodeFormatError, parseCode } from "../codes/parse";
import { decodeRef, encodeRef, Level, packRefs, unpackRefs, type ItemRef } from "../codes/refs";
import { LedgerRefusal, Submitter, type DecodedError, type TxReceipt } from "../chain/submit";
import { META } from "../index/keys";
import type { ApiContext, Caller } from "./context";
import { ApiError, echo, toApiError, type ProblemExtras } from "./errors";
import { IDEMPOTENCY_KEY, IdempotencyStore, requestHashOf, type PlannedCall } from "./idempotency";
import type { RouteHandler, RouteInput, RouteResponse } from "./openapi";
import { problemSchema } from "./openapi";
import { describeFor, gatherFacts } from "./scan";

// ---- what a route asks the pipeline to do ----

export interface WriteCall {
  /** A DrugLedger function, e.g. "dispense". */
  method: string;
  args: unknown[];
  /**
   * Calls of one organisation with the same key arriving within API_WRITE_BATCH_MS (or while the previous batch of
   * that key is being signed) share one transaction. Either their packed ref lists (argument `refsArg`) are
   * concatenated, every other argument being the same (put it in the key); or (`many`) each call's arguments become
   * one element of the array that the ledger function `many` takes (e.g. settle's into settleClaims).
   */
  batch?: { key: string; refsArg: number; many?: undefined } | { key: string; many: string; refsArg?: undefined };
}

/** At most this many requests share a transaction (a bound on its gas; the node refuses more than 2^24). */
const MAX_BATCH_REQUESTS = 100;

export interface WritePlan {
  calls: WriteCall[];
  /** The refs the request named, with the codes it named them by (to name codes in refusals and answers). */
  codes: Map<bigint, string>;
}

export interface WriteSettings {
  API_WRITE_BATCH_MS: number;
  API_WRITE_WAIT_MS: number;
  IDEMPOTENCY_TTL_SECONDS: number;
  TX_REPLACE_AFTER_MS: number;
  TX_RECORD_TTL_SECONDS: number;
}

// ---- answers ----

const orgRefSchema = z.object({ id: z.number().int(), name: z.string() }).nullable();
const txSchema = z.object({
  txHash: z.string(),
  method: z.string(),
  block: z.number().int().optional(),
  gasUsed: z.number().int().optional(),
  batchedRequests: z
    .number()
    .int()
    .optional()
    .openapi({ description: "Requests that shared this transaction (1 when it was this request's alone)" }),
});
export const itemStateSchema = z
  .object({
    code: z.string(),
    level: z.enum(["unit", "case", "pallet"]),
    status: z.string().openapi({ description: "GS1 CBV disposition, as the scan reports it" }),
    statusReason: z.string().optional(),
    holder: orgRefSchema,
    inTransit: z.object({ shipmentId: z.number().int() }).nullable(),
    dispensing: z
      .object({
        prescriptionHash: z.string().nullable(),
        split: z.object({ dispensed: z.number().int(), packQuantity: z.number().int() }).nullable(),
      })
      .nullable(),
    settlement: z
      .object({
        insurer: orgRefSchema,
        claimId: z.string().nullable(),
        split: z.object({ settled: z.number().int() }).nullable(),
      })
      .nullable(),
  })
  .openapi("ItemState");
export const writeResultSchema = z
  .object({
    status: z.literal("mined"),
    transactions: z.array(txSchema),
    shipmentId: z.number().int().optional(),
    items: z.array(itemStateSchema).openapi({ description: "The items as the index shows them after the write" }),
  })
  .openapi("WriteResult");
export const writePendingSchema = z
  .object({
    status: z.literal("pending"),
    transactions: z.array(txSchema),
    location: z.string().openapi({ description: "GET it for the transaction's status; retry with the same key" }),
  })
  .openapi("WritePending");
export const refusalSchema = problemSchema
  .extend({
    error: z
      .object({ name: z.string(), args: z.record(z.string()) })
      .optional()
      .openapi({ description: "The ledger's custom error (ledger-refused)" }),
  })
  .openapi("LedgerRefusalProblem");

const problem = (description: string): RouteResponse => ({
  description,
  schema: refusalSchema,
  contentType: "application/problem+json",
});

/** What every write route answers beside its own: 200/201 mined, 202 pending, refusals. */
export function writeResponses(success: 200 | 201, what: string): Record<number, RouteResponse> {
  return {
    [success]: { description: `${what}: mined and indexed`, schema: writeResultSchema },
    202: { description: "Sent, not mined or not indexed yet: see Location", schema: writePendingSchema },
    403: problem("Role, suspension or consent refused by the ledger, or no signing key for the organisation"),
    409: problem("A state conflict the ledger refused (already dispensed, settled, in transit, ...)"),
    422: problem("Unknown code, or the ledger refused the request as invalid; or Idempotency-Key reused"),
  };
}

export const idempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .regex(IDEMPOTENCY_KEY)
    .optional()
    .openapi({ description: "Retries with the same key return the first answer and never submit twice (24 h)" }),
});

// ---- refusals ----

const CONFLICTS = new Set([
  "UnitAlreadySettled",
  "UnitAlreadyDispensed",
  "UnitDispensed",
  "UnitIsSettled",
  "UnitIsSplit",
  "UnitNotDispensed",
  "ItemInTransit",
  "NotInShipment",
  "ItemDecommissioned",
  "CaseOpened",
  "NotHolder",
  "AlreadySettledUnderClaim",
  "NotSettledByInsurer",
  "NotSettledUnderClaim",
  "ReturnWindowClosed",
  "UnitExpired",
  "UnitRecalled",
  "EnforcedPause",
]);
const FORBIDDEN = new Set([
  "AccessControlUnauthorizedAccount",
  "Suspended",
  "NotOnboarded",
  "CannotHoldGoods",
  "NotShipmentParty",
  "InvalidConsent",
  "DispensedByAnotherPharmacy",
]);
const REF_ARGS = new Set(["ref", "unit"]);

const statusOfRefusal = (name: string): number => (CONFLICTS.has(name) ? 409 : FORBIDDEN.has(name) ? 403 : 422);

// ---- the pipeline ----

interface BatchItem {
  org: string;
  call: WriteCall;
  data: string;
  onSigned: (hash: string, batchedRequests: number) => Promise<void>;
  resolve: (hash: string) => void;
  reject: (err: unknown) => void;
}

export class Writer {
  readonly idempotency: IdempotencyStore;
  private readonly batches = new Map<string, BatchItem[]>();
  /** Batch keys whose transaction is being simulated and signed, and those whose window closed meanwhile. */
  private readonly flushing = new Set<string>();
  private readonly waiting = new Set<string>();
  /**
   * Requests per organisation between arrival and the queueing of their calls (codes resolved through the index,
   * the Idempotency-Key recorded). A batch whose window closes while some are still there waits for them, up to
   * another API_WRITE_BATCH_MS: requests that arrive together share a transaction even when the machine is slow.
   */
  private readonly preparing = new Map<string, number>();
  /** Batch keys whose window closed while requests of their organisation were still being prepared. */
  private readonly held = new Map<string, symbol>();

  constructor(
    private readonly ctx: Pick<ApiContext, "redis" | "reader" | "log" | "alerts">,
    readonly submitter: Submitter,
    readonly settings: WriteSettings,
  ) {
    this.idempotency = new IdempotencyStore(ctx.redis, settings.IDEMPOTENCY_TTL_SECONDS, settings.API_WRITE_WAIT_MS);
  }

  get iface(): Interface {
    return this.submitter.iface;
  }

  holdsKeyOf(account: string): boolean {
    return this.submitter.signers.get(account) !== null;
  }

  /**
   * Marks a request of `org` as being prepared; the returned function (idempotent) says its calls are queued or
   * it will send none. Batches of `org` held for it are flushed once no request of `org` is being prepared.
   */
  startPreparing(org: string): () => void {
    const account = org.toLowerCase();
    this.preparing.set(account, (this.preparing.get(account) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.preparing.get(account) ?? 1) - 1;
      if (left > 0) return void this.preparing.set(account, left);
      this.preparing.delete(account);
      for (const key of [...this.held.keys()])
        if (key.toLowerCase().startsWith(`${account}:`)) {
          this.held.delete(key);
          this.flushWhenIdle(key);
        }
    };
  }

  /**
   * Simulates every call of a plan (nothing is sent if any would revert), then sends them (batched where they
   * can share a transaction), recording each hash in `calls` as it is signed. `queued` is told once every call is
   * in its batch queue or on its way.
   */
  async send(
    org: string,
    plan: WritePlan,
    calls: PlannedCall[],
    save: () => Promise<void>,
    queued: () => void = () => undefined,
  ): Promise<void> {
    const unbatched = plan.calls.map((c, i) => ({ c, i })).filter(({ c }) => !c.batch);
    if (unbatched.length > 0) {
      const refusals = await this.submitter.simulate(
        org,
        unbatched.map(({ i }) => calls[i]!.data),
      );
      const refused = refusals.find((r) => r !== null);
      if (refused) throw new LedgerRefusal(refused);
    }
    const sending = plan.calls.map(async (call, i) => {
      const planned = calls[i]!;
      const onSigned = async (hash: string, batchedRequests: number) => {
        planned.hash = hash;
        planned.batchedRequests = batchedRequests;
        await save();
      };
      if (call.batch) await this.enqueue({ org, call, data: planned.data, onSigned });
      else await this.sendOne(org, planned.data, (h) => onSigned(h, 1));
    });
    queued(); // every batched call was queued above, before the first await
    await Promise.all(sending);
  }

  /** Sends calls a crashed request planned but never signed (simulating them first). */
  async sendUnsigned(org: string, calls: PlannedCall[], save: () => Promise<void>): Promise<void> {
    const unsigned = calls.filter((c) => !c.hash);
    if (unsigned.length === 0) return;
    const refusals = await this.submitter.simulate(
      org,
      unsigned.map((c) => c.data),
    );
    const refused = refusals.find((r) => r !== null);
    if (refused) throw new LedgerRefusal(refused);
    await Promise.all(
      unsigned.map((c) =>
        this.sendOne(org, c.data, async (hash) => {
          c.hash = hash;
          c.batchedRequests = 1;
          await save();
        }),
      ),
    );
  }

  private async sendOne(org: string, data: string, onSigned: (hash: string) => Promise<void>): Promise<string> {
    const gas = await this.submitter.estimate(org, data);
    return this.submitter.send(org, data, gas, onSigned);
  }

  private enqueue(item: Omit<BatchItem, "resolve" | "reject">): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const key = `${item.org}:${item.call.batch!.key}`;
      const queue = this.batches.get(key);
      const entry = { ...item, resolve, reject };
      if (queue) return void queue.push(entry);
      this.batches.set(key, [entry]);
      const window = this.settings.API_WRITE_BATCH_MS;
      setTimeout(() => {
        if (!this.preparing.has(item.org.toLowerCase())) return this.flushWhenIdle(key);
        const hold = Symbol(key);
        this.held.set(key, hold);
        // Never held past a second window: a slow request of the organisation does not hold up the others.
        setTimeout(() => {
          if (this.held.get(key) !== hold) return; // flushed already
          this.held.delete(key);
          this.flushWhenIdle(key);
        }, window);
      }, window);
    });
  }

  /**
   * Flushes the key's queue, unless its previous batch is still being simulated and signed: then the queue keeps
   * collecting (requests arriving under concurrency share the next transaction) and is flushed when that one is
   * signed.
   */
  private flushWhenIdle(key: string): void {
    if (this.flushing.has(key)) return void this.waiting.add(key);
    const queued = this.batches.get(key) ?? [];
    const items = queued.splice(0, MAX_BATCH_REQUESTS);
    if (queued.length === 0) this.batches.delete(key);
    this.flushing.add(key);
    void this.flush(items).finally(() => {
      this.flushing.delete(key);
      if (this.batches.has(key) && (this.waiting.delete(key) || queued.length > 0)) this.flushWhenIdle(key);
    });
  }

  /**
   * One transaction for a batch: each item is simulated on its own first (a failing item gets its own refusal
   * and never sinks the others); if the combined call still reverts, each item goes in a transaction of its own.
   */
  private async flush(items: BatchItem[]): Promise<void> {
    const org = items[0]!.org;
    let ok: BatchItem[];
    try {
      const refusals = await this.submitter.simulate(
        org,
        items.map((i) => i.data),
      );
      ok = items.filter((item, i) => {
        if (refusals[i]) item.reject(new LedgerRefusal(refusals[i]!));
        return !refusals[i];
      });
    } catch (err) {
      for (const item of items) item.reject(err);
      return;
    }
    if (ok.length === 0) return;
    const alone = (item: BatchItem) =>
      this.sendOne(org, item.data, (h) => item.onSigned(h, 1)).then(item.resolve, item.reject);
    if (ok.length === 1) return void (await alone(ok[0]!));
    const merged = this.mergedData(ok);
    let gas: bigint;
    try {
      gas = await this.submitter.estimate(org, merged);
    } catch (err) {
      if (!(err instanceof LedgerRefusal)) {
        for (const item of ok) item.reject(err);
        return;
      }
      await Promise.all(ok.map(alone));
      return;
    }
    try {
      const hash = await this.submitter.send(org, merged, gas, async (h) => {
        await Promise.all(ok.map((item) => item.onSigned(h, ok.length)));
      });
      for (const item of ok) item.resolve(hash);
    } catch (err) {
      for (const item of ok) item.reject(err);
    }
  }

  /**
   * The items' call with their ref lists concatenated, sorted and de-duplicated (neighbours share storage words);
   * or, for a `many` batch, the one call taking every item's arguments.
   */
  private mergedData(items: BatchItem[]): string {
    const { method, args, batch } = items[0]!.call;
    if (batch!.many !== undefined)
      return this.iface.encodeFunctionData(batch!.many, [items.map((item) => item.call.args)]);
    const { refsArg } = batch!;
    const refs = new Set<bigint>();
    for (const item of items) for (const r of unpackRefs(item.call.args[refsArg] as string)) refs.add(r);
    const sorted = [...refs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const mergedArgs = [...args];
    mergedArgs[refsArg] = packRefs(sorted);
    return this.iface.encodeFunctionData(method, mergedArgs);
  }

  /**
   * Waits for every signed call to be mined (and checks none reverted), then for the index to pass them. A batched
   * transaction that reverted because of another request (a race lost between simulation and mining) does not sink
   * this one: if its call alone still passes, it is sent again on its own (recorded through `save` first).
   */
  async settle(
    org: string,
    calls: PlannedCall[],
    deadline: number,
    save: () => Promise<void>,
  ): Promise<{ receipts: (TxReceipt | null)[]; indexed: boolean }> {
    const receipts = await Promise.all(
      calls.map(async (c) => {
        const receipt = await this.submitter.waitMined(c.hash!, deadline);
        if (receipt?.status !== 0 || (c.batchedRequests ?? 1) <= 1) return receipt;
        const [refused] = await this.submitter.simulate(org, [c.data]);
        if (refused) throw new LedgerRefusal(refused, receipt.transactionHash);
        await this.sendOne(org, c.data, async (hash) => {
          c.hash = hash;
          c.batchedRequests = 1;
          await save();
        });
        return this.submitter.waitMined(c.hash!, deadline);
      }),
    );
    const reverted = receipts.findIndex((r) => r?.status === 0);
    if (reverted >= 0) {
      const c = calls[reverted]!;
      throw await this.submitter.refusalOf(org, c.data, receipts[reverted]!.transactionHash);
    }
    if (receipts.some((r) => !r)) return { receipts, indexed: false };
    const block = Math.max(...receipts.map((r) => r!.blockNumber));
    return { receipts, indexed: await this.waitIndexed(block, deadline) };
  }

  /** Whether the indexer's checkpoint reached `block` before `deadline`. */
  async waitIndexed(block: number, deadline: number): Promise<boolean> {
    for (;;) {
      const raw = await this.ctx.redis.get(META.checkpoint);
      if (raw && (JSON.parse(raw) as { number: number }).number >= block) {
        await this.ctx.reader.sync();
        return true;
      }
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

// ---- codes ----

/** Resolves scanned codes to refs through the index (the product rule); an unknown code is a 422 naming it. */
export async function resolveCodes(
  ctx: ApiContext,
  codes: readonly string[],
  field = "codes",
  levels?: readonly Level[],
): Promise<{ refs: bigint[]; codes: Map<bigint, string> }> {
  const seen = new Set<string>();
  const resolved = await Promise.all(
    codes.map(async (raw, i) => {
      let parsed;
      try {
        parsed = parseCode(raw);
      } catch (err) {
        if (err instanceof CodeFormatError)
          throw new ApiError(400, "invalid-code", "Code cannot be read", err.message, {
            field: `${field}.${i}`,
            code: echo(raw),
          });
        throw err;
      }
      if (seen.has(parsed.normalised))
        throw new ApiError(400, "validation", "Request is not valid", `${field}.${i}: the same code twice`, {
          field: `${field}.${i}`,
          code: echo(raw),
        });
      seen.add(parsed.normalised);
      const found = await ctx.reader.lookupCode(codeHash(parsed.normalised, ctx.config.CODE_HASH_DOMAIN));
      const { ref } = await ctx.reader.resolveCode(parsed, found);
      if (!ref || !(await ctx.reader.item(ref)))
        throw new ApiError(
          422,
          "unknown-code",
          "Unknown code",
          `${field}.${i}: no item of the ledger carries this code`,
          {
            field: `${field}.${i}`,
            code: echo(raw),
          },
        );
      if (levels && !levels.includes(ref.level))
        throw new ApiError(
          422,
          "validation",
          "Request is not valid",
          `${field}.${i}: a ${LEVELS[ref.level]} code where a ${levels.map((l) => LEVELS[l]).join(" or ")} is needed`,
          { field: `${field}.${i}`, code: echo(raw) },
        );
      return { ref: encodeRef(ref), raw: raw.trim() };
    }),
  );
  return { refs: resolved.map((r) => r.ref), codes: new Map(resolved.map((r) => [r.ref, r.raw])) };
}

const LEVELS = { [Level.Unit]: "unit", [Level.Case]: "case", [Level.Pallet]: "pallet" } as const;

// ---- the route helper ----

/** The calling organisation's key must be here: 403 no-signer otherwise. */
function requireSigner(ctx: ApiContext, caller: Caller): void {
  if (!ctx.writer.holdsKeyOf(caller.account))
    throw new ApiError(
      403,
      "no-signer",
      "No signing key",
      `This deployment holds no signing key for ${caller.account}; writes for it go through its own gateway.`,
    );
}

/** The ledger's refusal as problem+json: the error's name and args, refs named by the codes the request used. */
export async function refusalError(
  ctx: ApiContext,
  caller: Caller,
  refusal: LedgerRefusal,
  codes: Map<string, string>,
): Promise<ApiError> {
  const { name, args } = refusal.error;
  const extras: ProblemExtras = { error: { name, args } };
  const refArg = Object.keys(args).find((a) => REF_ARGS.has(a));
  const code = refArg ? codes.get(args[refArg]!) : undefined;
  if (code) extras.code = code;
  if (refusal.txHash) extras.txHash = refusal.txHash;
  let detail = `The ledger refused ${refusal.txHash ? "the mined transaction" : "the call (nothing was sent)"}: ${name}`;
  if (name === "UnitAlreadySettled" && refArg) {
    const winner = await winnerOf(ctx, decodeRef(BigInt(args[refArg]!)));
    extras.winner = winner;
    detail += ` — settled under claim ${winner.claimRef ?? winner.claimId ?? "?"} by ${winner.insurer?.name ?? `insurer ${args.insurerId}`}`;
    await raiseSettleAlert(ctx, caller, code ?? args[refArg]!, winner);
  }
  if (name === "NotHolder" && refArg)
    await raiseNotHolderAlert(ctx, caller, code ?? args[refArg]!, args[refArg]!, args);
  return new ApiError(statusOfRefusal(name), "ledger-refused", name, detail, extras);
}

interface Winner {
  claimId: string | null;
  claimRef: string | null;
  insurer: { id: number; name: string } | null;
  block: number | null;
}

/** Who settled `ref` first, from the index (waiting for it to catch up with the winning settlement). */
async function winnerOf(ctx: ApiContext, ref: ItemRef): Promise<Winner> {
  const deadline = Date.now() + ctx.config.API_WRITE_WAIT_MS;
  for (;;) {
    await ctx.reader.sync();
    const s = (await ctx.reader.item(ref))?.settlement;
    if (s || Date.now() >= deadline) {
      const insurer = s ? await ctx.reader.participant(s.insurerId) : null;
      return {
        claimId: s?.claimId ?? null,
        claimRef: s?.claimRef ?? null,
        insurer: insurer ? { id: insurer.id, name: insurer.name } : null,
        block: s?.block ?? null,
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function raiseSettleAlert(ctx: ApiContext, caller: Caller, code: string, winner: Winner): Promise<void> {
  try {
    await ctx.alerts.raise({
      source: "claim",
      reason: "ALREADY_SETTLED",
      code: { raw: code, normalised: null },
      reporter: { ...caller },
      participants: winner.insurer ? [winner.insurer.id] : [],
      snapshot: { refusedSettlement: true, winner },
    });
  } catch (err) {
    ctx.log.error({ err: (err as Error).message }, "could not raise the refused settlement's alert");
  }
}

/**
 * A write on an item the caller does not hold (a pharmacy selling a pack it never received, a distributor shipping
 * someone else's case): refused on chain, and a suspect pack for the regulator, the holder and the manufacturer.
 */
async function raiseNotHolderAlert(
  ctx: ApiContext,
  caller: Caller,
  code: string,
  ref: string,
  args: Record<string, string>,
): Promise<void> {
  try {
    const view = await ctx.reader.item(decodeRef(BigInt(ref)));
    const holderId = Number(args.holderId);
    await ctx.alerts.raise({
      source: "scan",
      reason: "NOT_IN_YOUR_CUSTODY",
      code: { raw: code, normalised: null },
      reporter: { ...caller },
      participants: holderId > 0 ? [holderId] : [],
      manufacturerId: view?.run.manufacturerId ?? null,
      snapshot: { refusedWrite: true, error: "NotHolder", holderId },
    });
  } catch (err) {
    ctx.log.error({ err: (err as Error).message }, "could not raise the refused write's alert");
  }
}

/** The items' state as the index shows it now, as the caller may see it. */
async function itemStates(ctx: ApiContext, caller: Caller, codes: Map<string, string>) {
  return Promise.all(
    [...codes].map(async ([ref, code]) => {
      const view = await ctx.reader.item(decodeRef(BigInt(ref)));
      if (!view) throw new Error(`indexed item ${ref} vanished`);
      const d = await describeFor(ctx.reader, caller, await gatherFacts(ctx.reader, view, []));
      return {
        code,
        level: d.level,
        status: d.status,
        ...(d.statusReason ? { statusReason: d.statusReason } : {}),
        holder: d.holder ? { id: d.holder.id, name: d.holder.name } : null,
        inTransit: d.inTransit ? { shipmentId: d.inTransit.shipmentId } : null,
        dispensing: d.dispensing
          ? { prescriptionHash: d.dispensing.prescriptionHash, split: d.dispensing.split }
          : null,
        settlement: d.settlement
          ? {
              insurer: d.settlement.insurer ? { id: d.settlement.insurer.id, name: d.settlement.insurer.name } : null,
              claimId: d.settlement.claimId,
              split: d.settlement.split ? { settled: d.settlement.split.settled } : null,
            }
          : null,
      };
    }),
  );
}

/** The shipment a ship transaction created, from its ShipmentCreated log. */
function shipmentIdOf(iface: Interface, receipts: (TxReceipt | null)[]): number | undefined {
  for (const r of receipts)
    for (const log of r?.logs ?? []) {
      const parsed = iface.parseLog(log);
      if (parsed?.name === "ShipmentCreated") return Number(parsed.args.shipmentId);
    }
  return undefined;
}

/** A ledger event of a write's transactions, its arguments as strings (bigints in decimal). */
export interface WriteEvent {
  name: string;
  args: Record<string, string>;
  txHash: string;
  logIndex: number;
}

/** What a write came to, before it is turned into an answer. */
export interface WriteOutcome {
  status: "mined" | "pending";
  transactions: { txHash: string; method: string; block?: number; gasUsed?: number; batchedRequests: number }[];
  receipts: (TxReceipt | null)[];
  /** The index has passed every transaction (read-your-writes); false on timeout. */
  indexed: boolean;
  events: WriteEvent[];
  /** Refs (decimal) → codes as the request named them. */
  codes: Map<string, string>;
}

export interface WriteAnswer {
  status: number;
  body: unknown;
  /** The first answer of an Idempotency-Key, replayed. */
  replayed?: boolean;
  headers?: Record<string, string>;
}

function eventsOf(iface: Interface, receipts: (TxReceipt | null)[]): WriteEvent[] {
  const out: WriteEvent[] = [];
  for (const r of receipts)
    for (const log of r?.logs ?? []) {
      const parsed = iface.parseLog(log);
      if (!parsed) continue;
      const args: Record<string, string> = {};
      parsed.fragment.inputs.forEach((input, i) => (args[input.name || String(i)] = String(parsed.args[i])));
      out.push({ name: parsed.name, args, txHash: r!.transactionHash, logIndex: Number(log.logIndex) });
    }
  return out;
}

/**
 * The core of every write, for routes and for programmatic writers (W2's job runner): authorises the signer,
 * honours the idempotency key, lets `prepare` check the request against the index and say what to call, sends,
 * waits for mining and indexing, and has `answer` turn the outcome into what is answered (and kept for retries).
 * A pending outcome (not mined or not indexed in API_WRITE_WAIT_MS) is answered 202 and not kept, so that a retry
 * finishes it. Refusals are ApiErrors (4xx kept for retries).
 */
export async function runWrite(
  ctx: ApiContext,
  caller: Caller,
  options: {
    idempotencyKey?: string | undefined;
    requestHash: string;
    /** The name in STORED_ANSWERS of the answer `answer` builds: lets the start-up sweep answer a crashed request. */
    answerAs?: string;
  },
  prepare: () => Promise<WritePlan>,
  answer: (outcome: WriteOutcome) => Promise<{ status: number; body: unknown }>,
): Promise<WriteAnswer> {
  requireSigner(ctx, caller);
  const key = options.idempotencyKey;
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
    throw new ApiError(400, "validation", "Request is not valid", "Idempotency-Key: 1-200 of A-Z a-z 0-9 . _ : -", {
      field: "Idempotency-Key",
    });
  const begun = key ? await ctx.writer.idempotency.begin(caller.account, key, options.requestHash) : null;
  if (begun?.kind === "done") {
    if (begun.answer.problem) {
      const replayed = problemFrom(begun.answer.status, begun.answer.body as Record<string, unknown>);
      replayedErrors.add(replayed);
      throw replayed;
    }
    return { status: begun.answer.status, body: begun.answer.body, replayed: true };
  }
  const session = begun?.session ?? null;
  const record = session?.record ?? { requestHash: "", state: "pending" as const, createdAt: Date.now() };
  const save = () => session?.save() ?? Promise.resolve();
  try {
    const deadline = Date.now() + ctx.config.API_WRITE_WAIT_MS;
    if (begun?.kind === "resume" && record.calls) {
      await ctx.writer.sendUnsigned(caller.account, record.calls, save);
    } else {
      const queued = ctx.writer.startPreparing(caller.account);
      try {
        const plan = await prepare();
        record.caller = caller;
        if (options.answerAs) record.answerAs = options.answerAs;
        record.codes = [...plan.codes].map(([ref, code]) => [ref.toString(), code]);
        record.calls = plan.calls.map((c) => ({
          method: c.method,
          data: ctx.writer.iface.encodeFunctionData(c.method, c.args),
        }));
        await save();
        await ctx.writer.send(caller.account, plan, record.calls, save, queued);
      } finally {
        queued();
      }
    }
    const calls = record.calls;
    const codes = new Map(record.codes ?? []);
    const settled = await ctx.writer.settle(caller.account, calls, deadline, save);
    const transactions = calls.map((c, i) => {
      const receipt = settled.receipts[i];
      return {
        txHash: receipt?.transactionHash ?? c.hash!,
        method: c.method,
        ...(receipt ? { block: receipt.blockNumber, gasUsed: receipt.gasUsed } : {}),
        batchedRequests: c.batchedRequests ?? 1,
      };
    });
    const outcome: WriteOutcome = {
      status: settled.indexed ? "mined" : "pending",
      transactions,
      receipts: settled.receipts,
      indexed: settled.indexed,
      events: eventsOf(ctx.writer.iface, settled.receipts),
      codes,
    };
    if (!settled.indexed) {
      await session?.release();
      const location = `/v1/tx/${transactions[0]!.txHash}`;
      return { status: 202, body: { status: "pending", transactions, location }, headers: { Location: location } };
    }
    const answered = await answer(outcome);
    await session?.finish(answered);
    return answered;
  } catch (err) {
    const error =
      err instanceof LedgerRefusal ? await refusalError(ctx, caller, err, new Map(record.codes ?? [])) : err;
    const api = toApiError(error);
    if (session) {
      if (api.status >= 400 && api.status < 500 && api.type !== "in-progress")
        await session.finish({ status: api.status, body: api.problem(), problem: true });
      else await session.abandon();
    }
    throw api;
  }
}

/** A write route's answer: the transactions and the named items' state as the index shows it now. */
export async function itemsAnswer(ctx: ApiContext, caller: Caller, outcome: WriteOutcome) {
  const shipmentId = shipmentIdOf(ctx.writer.iface, outcome.receipts);
  return {
    status: "mined",
    transactions: outcome.transactions,
    ...(shipmentId !== undefined ? { shipmentId } : {}),
    items: await itemStates(ctx, caller, outcome.codes),
  };
}

/**
 * Answers that can be built from the outcome and the caller alone, by name: what the start-up sweep uses to
 * answer, and keep for the retry, a request whose process died after sending its transactions.
 */
export const STORED_ANSWERS: Record<
  string,
  (ctx: ApiContext, caller: Caller, outcome: WriteOutcome) => Promise<{ status: number; body: unknown }>
> = {
  "items:200": async (ctx, caller, outcome) => ({ status: 200, body: await itemsAnswer(ctx, caller, outcome) }),
  "items:201": async (ctx, caller, outcome) => ({ status: 201, body: await itemsAnswer(ctx, caller, outcome) }),
};

/** Refusals that are an Idempotency-Key's first answer, replayed (the route says so in a header). */
const replayedErrors = new WeakSet<ApiError>();

/** A write route (see {@link runWrite}): answered with {@link itemsAnswer}, or `answer` for a route's own body. */
export function writeRoute<P, Q, B>(
  ctx: ApiContext,
  prepare: (input: RouteInput<P, Q, B>) => Promise<WritePlan>,
  success: 200 | 201 = 200,
  answer?: (outcome: WriteOutcome, input: RouteInput<P, Q, B>) => Promise<unknown>,
): RouteHandler<P, Q, B> {
  return async (input) => {
    const caller = input.caller!;
    let result: WriteAnswer;
    try {
      result = await runWrite(
        ctx,
        caller,
        {
          idempotencyKey: input.req.header("idempotency-key"),
          requestHash: requestHashOf(input.req.method, input.req.originalUrl, input.body),
          ...(answer ? {} : { answerAs: `items:${success}` }),
        },
        () => prepare(input),
        async (outcome) => ({
          status: success,
          body: answer ? await answer(outcome, input) : await itemsAnswer(ctx, caller, outcome),
        }),
      );
    } catch (err) {
      if (err instanceof ApiError && replayedErrors.has(err)) input.res.setHeader("Idempotent-Replayed", "true");
      throw err;
    }
    if (result.replayed) input.res.setHeader("Idempotent-Replayed", "true");
    for (const [name, value] of Object.entries(result.headers ?? {})) input.res.setHeader(name, value);
    input.res.status(result.status);
    return result.body;
  };
}

/** A stored problem answer, re-thrown so that the one problem handler writes it. */
function problemFrom(status: number, body: Record<string, unknown>): ApiError {
  const { type, title, detail, status: _s, instance: _i, ...extras } = body;
  void _s;
  void _i;
  const slug = String(type).replace(/^urn:drugtrace:problem:/, "") as ApiError["type"];
  return new ApiError(status, slug, String(title), String(detail), extras);
}

export type { DecodedError };
