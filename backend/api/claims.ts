/**
 * Claim check routes: `POST /v1/claims/check` (JSON) and `POST /v1/nhsa/3505` (the NHSA platform's sale record,
 * see nhsa.ts). Both are reads: nothing changes on chain; refused lines raise alerts.
 */
import type { Request, Router } from "express";
import { z } from "zod";
import type { ParticipantRecord } from "../index/events";
import { checkClaim, readCodes, type ClaimCheckDeps, type CodeReads } from "./claims-check";
import { claimCheckResultSchema } from "./claims-schemas";
import type { ApiContext, Caller } from "./context";
import { problems } from "./errors";
import { answer3505, claimRefOf, failure3505, linesOf, nhsa3505Answer, nhsa3505Body, read3505 } from "./nhsa";
import { ApiRouter } from "./openapi";

const PHARMACY_ROLE = 3;

/** A pharmacy named by its on-chain account or its participant id. */
export const pharmacyRefSchema = z
  .union([
    z.string().regex(/^0x[0-9a-fA-F]{40}$/, "an account is 0x and 40 hex digits"),
    z.coerce.number().int().positive(),
  ])
  .openapi({
    description: "The pharmacy's on-chain account (0x…) or participant id",
    example: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
  });

const MAX_LINES = 500;

const claimCheckBody = z
  .object({
    claimRef: z.string().min(1).max(100).openapi({
      description: "The insurer's claim reference: a 0x-prefixed bytes32 as on chain, or its own number (hashed)",
    }),
    pharmacy: pharmacyRefSchema,
    lines: z
      .array(
        z.object({
          code: z.string().max(500).openapi({ description: "As scanned: 20-digit, GS1 element string, Digital Link…" }),
          quantity: z.number().int().positive().max(100_000).optional().openapi({
            description: "Doses of a split pack (拆零); whole packs need none",
          }),
        }),
      )
      .min(1)
      .max(MAX_LINES),
  })
  .openapi("ClaimCheckRequest");

/**
 * The codes of a claim check's body, read ahead (RouteOptions.prefetch, which hands over the body as the schema
 * parsed it, once for both); undefined for a body its schema refuses.
 */
function prefetchClaimCodes(ctx: ApiContext, body: z.infer<typeof claimCheckBody> | undefined): CodeReads | undefined {
  if (!body) return undefined;
  return readCodes(
    ctx.reader,
    ctx.config.CODE_HASH_DOMAIN,
    body.lines.map((l) => l.code),
  );
}

/** The pharmacy a claim is for; a pharmacy that is not one on chain is a validation problem, not a line result. */
export async function pharmacyOf(ctx: ApiContext, ref: string | number, field: string): Promise<ParticipantRecord> {
  const found =
    typeof ref === "number" ? await ctx.reader.participant(ref) : await ctx.reader.participantByAccount(ref);
  if (!found) throw problems.validation(`${field}: no participant ${ref} on the ledger`, field);
  if (found.role !== PHARMACY_ROLE) throw problems.validation(`${field}: ${found.name} is not a pharmacy`, field);
  return found;
}

/** A pharmacy asks about its own sales; others say whose sale it is. */
async function salePharmacy(ctx: ApiContext, caller: Caller, named: string | number | undefined) {
  if (caller.role === "pharmacy") {
    if (named !== undefined) throw problems.forbidden("a pharmacy checks its own sales: leave out ?pharmacy=");
    return pharmacyOf(ctx, caller.participantId!, "caller");
  }
  if (named === undefined) throw problems.validation("name the pharmacy with ?pharmacy=<account or id>", "pharmacy");
  return pharmacyOf(ctx, named, "pharmacy");
}

export const claimDeps = (ctx: ApiContext): ClaimCheckDeps => ({
  reader: ctx.reader,
  alerts: ctx.alerts,
  settings: ctx.config,
  codeHashDomain: ctx.config.CODE_HASH_DOMAIN,
  log: ctx.log,
});

/** The insurer whose claim it is: the caller when it is an insurer (a regulator checks on nobody's behalf). */
export const insurerOf = (caller: Caller): number | null => (caller.role === "insurer" ? caller.participantId : null);

export function claimsRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "post",
      path: "/v1/claims/check",
      summary: "Check a claim before paying it",
      description:
        "Per line: is the pack known, dispensed by this pharmacy, unpaid (split packs: enough doses left), not " +
        "recalled or decommissioned? A pack dispensed or settled elsewhere names the earlier claim, insurer and " +
        "the NHSA repeated-code pattern. A bad line is a line result. A read: nothing changes on chain; every " +
        "refused line raises an alert.",
      tags: ["claims"],
      access: ["insurer", "regulator"],
      request: { body: claimCheckBody },
      responses: { 200: { description: "The decision and one result per line", schema: claimCheckResultSchema } },
    },
    async ({ body, caller, prefetched }) => {
      const pharmacy = await pharmacyOf(ctx, body.pharmacy, "pharmacy");
      return checkClaim(claimDeps(ctx), {
        claimRef: body.claimRef,
        pharmacy,
        insurerId: insurerOf(caller!),
        lines: body.lines,
        caller: caller!,
        ...(prefetched ? { reads: prefetched } : {}),
      });
    },
    {
      prefetch: (_req: Request, body: unknown) =>
        prefetchClaimCodes(ctx, body as z.infer<typeof claimCheckBody> | undefined),
    },
  );
  api.route(
    {
      method: "post",
      path: "/v1/nhsa/3505",
      summary: "Check a sale record in the NHSA platform's interface 3505 layout",
      description:
        "The same check as /v1/claims/check for a pharmacy's existing insurance interface: one claim line per " +
        "`drugtracinfo` code, a split sale (trdn_flag 1) asking for `sel_retn_cnt` doses, `manu_lotnum` and " +
        "`expy_end` checked against the batch. Answered in the platform's envelope with HTTP 200; a malformed " +
        "envelope is `infcode` -1 with `err_msg`. A pharmacy checks its own sales; an insurer or regulator names " +
        "the pharmacy with `?pharmacy=` (the platform's institution code `fixmedins_code` is not on the ledger).",
      tags: ["claims"],
      access: ["pharmacy", "insurer", "regulator"],
      request: { query: z.object({ pharmacy: pharmacyRefSchema.optional() }), body: nhsa3505Body },
      responses: { 200: { description: "The platform's answer envelope", schema: nhsa3505Answer } },
    },
    async ({ query, body, caller }) => {
      const received = Date.now();
      const read = read3505(body);
      if ("error" in read) return failure3505(read.msgid, read.error, received);
      const pharmacy = await salePharmacy(ctx, caller!, query.pharmacy);
      const result = await checkClaim(claimDeps(ctx), {
        claimRef: claimRefOf(read.envelope),
        pharmacy,
        insurerId: insurerOf(caller!),
        lines: linesOf(read.envelope),
        caller: caller!,
      });
      return answer3505(read.envelope, result, received);
    },
  );
  return api.router;
}
