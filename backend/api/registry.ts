/**
 * The registry over HTTP. Regulator: onboard an organisation (with a manufacturer's code prefixes), assign and
 * revoke prefixes, suspend and reinstate, lift a recall, set the return window. Manufacturer: register a product
 * and a batch, recall a batch (the regulator too). Every write goes through the write pipeline (writes.ts:
 * simulation, the ledger's errors as 4xx, the organisation's key, Idempotency-Key, read-your-writes); answers add
 * the record as the index shows it after the write, found from the transaction's events, so that a replayed
 * answer says the same.
 */
import { getAddress, isAddress } from "ethers";
import type { Router } from "express";
import { z, type ZodTypeAny } from "zod";
import type { ParticipantRecord } from "../index/events";
import type { ApiContext } from "./context";
import { ROLE_BY_NUMBER } from "./context";
import { ApiError, problems, toApiError } from "./errors";
import { pipelineWriter } from "./jobs";
import { productSchema } from "./records";
import { ApiRouter, type RouteInput, type RouteSpec } from "./openapi";
import { batchView, productView } from "./scan";
import {
  itemsAnswer,
  writeResponses,
  writeResultSchema,
  writeRoute,
  type WriteOutcome,
  type WritePlan,
} from "./writes";

const ROLE_NUMBER = { manufacturer: 1, distributor: 2, pharmacy: 3, insurer: 4 } as const;
/** As Products.sol checks them: `CN:` and 1-7 digits, or `GS1:` and 4-12 digits. */
export const CODE_PREFIX = /^(?:CN:\d{1,7}|GS1:\d{4,12})$/;

const prefixSchema = z
  .string()
  .regex(CODE_PREFIX, "a code prefix is CN:<1-7 digits> or GS1:<4-12 digits>")
  .openapi({ example: "CN:861" });
const text = (max: number) => z.string().trim().min(1).max(max);
const reasonBody = z.object({ reason: text(500) }).strict();

/** A date (YYYY-MM-DD, UTC midnight) or an ISO date-time, as unix seconds. */
const dateSchema = z
  .string()
  .refine((s) => /^\d{4}-\d{2}-\d{2}(?:T.*)?$/.test(s) && !Number.isNaN(Date.parse(s)), "a date, YYYY-MM-DD")
  .transform((s) => Math.floor(Date.parse(s) / 1000))
  .openapi({ type: "string", example: "2026-01-31" });

const onboardBody = z
  .object({
    account: z.string().refine((a) => isAddress(a), "an account address, 0x and 40 hex digits"),
    role: z.enum(["manufacturer", "distributor", "pharmacy", "insurer"]),
    name: text(200),
    licence: text(100),
    region: text(20).openapi({ description: "Administrative region code, e.g. a 6-digit Chinese division code" }),
    codePrefixes: z.array(prefixSchema).max(100).optional().openapi({ description: "Manufacturers only" }),
  })
  .strict();
const productBody = z
  .object({
    productCode: z
      .string()
      .regex(/^(?:\d{7}|\d{14})$/, "a 7-digit drug identification code or a GTIN-14")
      .openapi({ example: "8612345" }),
    name: text(200),
    approvalNumber: text(100),
    packageSpec: text(200),
    packQuantity: z.number().int().min(1).max(0xffffffff),
  })
  .strict();
const batchBody = z
  .object({
    productId: z.number().int().min(1).max(0xffffffff),
    lot: text(20).openapi({ description: "Lot as printed (GS1 AI 10), at most 20 characters" }),
    manufacturedOn: dateSchema,
    expiresOn: dateSchema,
  })
  .strict();

const participantParam = z.object({
  participant: z.string().openapi({ description: "The organisation's account (0x...) or participant id" }),
});
const batchParam = z.object({ batchId: z.coerce.number().int().min(1).max(0xffffffff).openapi({ type: "integer" }) });

const participantSchema = z
  .object({
    id: z.number().int(),
    account: z.string(),
    role: z.string(),
    name: z.string(),
    licence: z.string(),
    region: z.string(),
    suspended: z.boolean(),
    suspensionReason: z.string().optional(),
    codePrefixes: z.array(z.string()),
  })
  .openapi("Participant");
const batchSchema = z
  .object({
    id: z.number().int(),
    productId: z.number().int(),
    lot: z.string(),
    manufacturedOn: z.string(),
    expiry: z.string(),
    recalled: z.boolean(),
    recalls: z.array(z.record(z.unknown())),
  })
  .openapi("RegisteredBatch");

function participantView(p: ParticipantRecord) {
  return {
    id: p.id,
    account: getAddress(p.account),
    role: ROLE_BY_NUMBER[p.role] ?? "none",
    name: p.name,
    licence: p.licence,
    region: p.region,
    suspended: p.suspended,
    ...(p.suspensionReason ? { suspensionReason: p.suspensionReason } : {}),
    codePrefixes: p.codePrefixes ?? [],
  };
}

const only = (method: string, args: unknown[]): WritePlan => ({ calls: [{ method, args }], codes: new Map() });

function argOf(outcome: WriteOutcome, event: string, arg: string): number {
  const found = outcome.events.find((e) => e.name === event);
  if (!found) throw new Error(`the write emitted no ${event}`);
  return Number(found.args[arg]);
}

/** The write's answers, the mined one extended with the record (`name`) the route adds. */
function responses(success: 200 | 201, what: string, name: string, schema: ZodTypeAny): RouteSpec["responses"] {
  const all = writeResponses(success, what);
  return { ...all, [success]: { ...all[success]!, schema: writeResultSchema.extend({ [name]: schema }) } };
}

async function participantOf(ctx: ApiContext, participant: string): Promise<ParticipantRecord> {
  let record: ParticipantRecord | null;
  if (/^\d{1,10}$/.test(participant)) record = await ctx.reader.participant(Number(participant));
  else if (isAddress(participant)) record = await ctx.reader.participantByAccount(participant);
  else throw problems.validation("participant: an account (0x and 40 hex digits) or a participant id", "participant");
  if (!record) throw problems.notFound(`No participant ${participant}`, { field: "participant" });
  return record;
}

/** Prefixes another manufacturer holds, as the index knows them, refused before anything is sent. */
async function refuseTakenPrefixes(ctx: ApiContext, account: string, prefixes: readonly string[]): Promise<void> {
  const count = Number((await ctx.reader.totals()).participants ?? 0);
  const all = await Promise.all(Array.from({ length: count }, (_, i) => ctx.reader.participant(i + 1)));
  for (const p of all) {
    if (!p || p.account.toLowerCase() === account.toLowerCase()) continue;
    const taken = prefixes.find((prefix) => p.codePrefixes?.includes(prefix));
    if (taken)
      throw new ApiError(409, "conflict", "Code prefix taken", `${taken} is held by ${p.name} (participant ${p.id}).`, {
        field: "codePrefixes",
        holder: { id: p.id, name: p.name },
      });
  }
}

export function registryRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  const writer = pipelineWriter(ctx);
  const deadline = () => Date.now() + ctx.config.API_WRITE_WAIT_MS;

  /** A write route (writes.ts) whose answer also carries `name`: `record(...)`, as the index shows it after the write. */
  function write<P, Q, B>(
    spec: RouteSpec,
    name: string,
    schema: ZodTypeAny,
    prepare: (input: RouteInput<P, Q, B>) => Promise<WritePlan>,
    record: (outcome: WriteOutcome, input: RouteInput<P, Q, B>) => Promise<unknown>,
    success: 200 | 201 = 200,
  ): void {
    const handler = writeRoute<P, Q, B>(ctx, prepare, success, async (outcome, input) => ({
      ...(await itemsAnswer(ctx, input.caller!, outcome)),
      [name]: await record(outcome, input),
    }));
    api.route({ ...spec, responses: responses(success, spec.summary, name, schema) }, handler as never);
  }

  const participantNow = async (account: string) => participantView((await ctx.reader.participantByAccount(account))!);
  const batchNow = async (batchId: number) => {
    const batch = (await ctx.reader.batch(batchId))!;
    return { ...batchView(batch)!, productId: batch.productId, recalls: batch.recalls };
  };

  write<unknown, unknown, z.infer<typeof onboardBody>>(
    {
      method: "post",
      path: "/v1/participants",
      summary: "Onboard an organisation (and assign a manufacturer its code prefixes)",
      description:
        "Onboards, then assigns `codePrefixes` in a second transaction. A prefix another manufacturer holds is " +
        "refused before anything is sent.",
      tags: ["registry"],
      access: ["regulator"],
      request: { body: onboardBody },
      responses: {},
    },
    "participant",
    participantSchema,
    async ({ body }) => {
      if (body.codePrefixes?.length && body.role !== "manufacturer")
        throw problems.validation("codePrefixes: only manufacturers hold code prefixes", "codePrefixes");
      if (body.codePrefixes?.length) await refuseTakenPrefixes(ctx, body.account, body.codePrefixes);
      return only("onboard", [body.account, ROLE_NUMBER[body.role], body.name, body.licence, body.region]);
    },
    async (outcome, { body, caller }) => {
      if (body.codePrefixes?.length) {
        const id = argOf(outcome, "ParticipantOnboarded", "participantId");
        try {
          // Keyed by the onboarding's transaction: a retried request never assigns twice.
          const result = await writer.submit({
            caller: caller!,
            method: "assignCodePrefixes",
            args: [body.account, body.codePrefixes],
            idempotencyKey: `prefixes:${outcome.transactions[0]!.txHash}`,
          });
          if (result.status === "mined") await ctx.writer.waitIndexed(result.block!, deadline());
        } catch (err) {
          const refused = toApiError(err);
          throw new ApiError(
            refused.status,
            refused.type,
            refused.title,
            `Onboarded as participant ${id}, but its code prefixes were not assigned: ${refused.detail}`,
            { ...refused.extras, participantId: id },
          );
        }
      }
      return participantNow(body.account);
    },
    201,
  );

  write<z.infer<typeof participantParam>, unknown, { prefixes: string[] }>(
    {
      method: "post",
      path: "/v1/participants/{participant}/code-prefixes",
      summary: "Assign code prefixes to a manufacturer",
      tags: ["registry"],
      access: ["regulator"],
      request: {
        params: participantParam,
        body: z.object({ prefixes: z.array(prefixSchema).min(1).max(100) }).strict(),
      },
      responses: {},
    },
    "participant",
    participantSchema,
    async ({ params, body }) => {
      const p = await participantOf(ctx, params.participant);
      await refuseTakenPrefixes(ctx, p.account, body.prefixes);
      return only("assignCodePrefixes", [p.account, body.prefixes]);
    },
    async (_outcome, { params }) => participantNow((await participantOf(ctx, params.participant)).account),
  );

  write<{ prefix: string }, unknown, unknown>(
    {
      method: "delete",
      path: "/v1/code-prefixes/{prefix}",
      summary: "Take a code prefix back from its manufacturer (its registered products stay)",
      tags: ["registry"],
      access: ["regulator"],
      request: { params: z.object({ prefix: prefixSchema }) },
      responses: {},
    },
    "participant",
    participantSchema.nullable(),
    async ({ params }) => only("revokeCodePrefix", [params.prefix]),
    async (outcome) => {
      const p = await ctx.reader.participant(argOf(outcome, "CodePrefixRevoked", "manufacturerId"));
      return p ? participantView(p) : null;
    },
  );

  for (const [action, method] of [
    ["suspend", "suspend"],
    ["reinstate", "reinstate"],
  ] as const)
    write<z.infer<typeof participantParam>, unknown, { reason?: string }>(
      {
        method: "post",
        path: `/v1/participants/{participant}/${action}`,
        summary:
          action === "suspend"
            ? "Suspend an organisation: it writes and receives nothing until reinstated"
            : "Reinstate a suspended organisation",
        tags: ["registry"],
        access: ["regulator"],
        request: { params: participantParam, ...(action === "suspend" ? { body: reasonBody } : {}) },
        responses: {},
      },
      "participant",
      participantSchema,
      async ({ params, body }) => {
        const p = await participantOf(ctx, params.participant);
        return only(method, action === "suspend" ? [p.account, body!.reason] : [p.account]);
      },
      async (_outcome, { params }) => participantNow((await participantOf(ctx, params.participant)).account),
    );

  write<unknown, unknown, { days: number }>(
    {
      method: "put",
      path: "/v1/settings/return-window",
      summary: "Set the return window, in days (at most 90; dispensings keep the window in force when made)",
      tags: ["registry"],
      access: ["regulator"],
      request: { body: z.object({ days: z.number().int().min(0).max(0xffff) }).strict() },
      responses: {},
    },
    "returnWindowDays",
    z.number().int(),
    async ({ body }) => only("setReturnWindow", [body.days]),
    async (outcome) => argOf(outcome, "ReturnWindowChanged", "returnWindowDays"),
  );

  write<unknown, unknown, z.infer<typeof productBody>>(
    {
      method: "post",
      path: "/v1/products",
      summary: "Register a product under one of the manufacturer's code prefixes",
      tags: ["registry"],
      access: ["manufacturer"],
      request: { body: productBody },
      responses: {},
    },
    "product",
    productSchema,
    async ({ body }) =>
      only("registerProduct", [body.productCode, body.name, body.approvalNumber, body.packageSpec, body.packQuantity]),
    async (outcome) => productView(await ctx.reader.product(argOf(outcome, "ProductRegistered", "productId"))),
    201,
  );

  write<unknown, unknown, z.infer<typeof batchBody>>(
    {
      method: "post",
      path: "/v1/batches",
      summary: "Register a batch (lot) of one of the manufacturer's products",
      tags: ["registry"],
      access: ["manufacturer"],
      request: { body: batchBody },
      responses: {},
    },
    "batch",
    batchSchema,
    async ({ body }) => only("registerBatch", [body.productId, body.lot, body.manufacturedOn, body.expiresOn]),
    async (outcome) => batchNow(argOf(outcome, "BatchRegistered", "batchId")),
    201,
  );

  write<z.infer<typeof batchParam>, unknown, { reason: string }>(
    {
      method: "post",
      path: "/v1/batches/{batchId}/recall",
      summary: "Recall a batch: its units can no longer be dispensed (its manufacturer, or the regulator)",
      tags: ["registry"],
      access: ["manufacturer", "regulator"],
      request: { params: batchParam, body: reasonBody },
      responses: {},
    },
    "batch",
    batchSchema,
    async ({ params, body }) => only("recallBatch", [params.batchId, body.reason]),
    async (_outcome, { params }) => batchNow(params.batchId),
  );

  write<z.infer<typeof batchParam>, unknown, { reason: string }>(
    {
      method: "post",
      path: "/v1/batches/{batchId}/lift-recall",
      summary: "Lift a batch's recall",
      tags: ["registry"],
      access: ["regulator"],
      request: { params: batchParam, body: reasonBody },
      responses: {},
    },
    "batch",
    batchSchema,
    async ({ params, body }) => only("liftRecall", [params.batchId, body.reason]),
    async (_outcome, { params }) => batchNow(params.batchId),
  );

  return api.router;
}
