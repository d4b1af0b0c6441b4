/**
 * Claims and once-only settlement over HTTP.
 * - A pharmacy submits a claim to one insurer (`POST /v1/claims`): the service signs, with the pharmacy's key,
 *   the EIP-712 SettlementConsent the ledger requires, and keeps it for that insurer alone
 *   (`svc:consent:<insurer>:<claimRef>`), so that no other insurer can settle those units.
 * - The insurer settles it (`POST /v1/claims/settle`): the claim check first (backend/api/claims-check.ts), then
 *   `settle` for the whole packs and `settlePartial` per split-pack line, with the consents. Of two insurers (or two
 *   processes) racing on one code the ledger lets one through; the other is a 409 naming the winning claim and
 *   insurer, and an alert.
 * - The insurer reverses its own settlement with a reason (`POST /v1/claims/reverse`).
 */
import type { Router } from "express";
import { z } from "zod";
import { consentDomain, signConsent } from "../chain/consent";
import { decodeRef, Level, packRefs } from "../codes/refs";
import type { ParticipantRecord } from "../index/events";
import { checkClaim, claimRefBytes32, type ClaimCheckResult } from "./claims-check";
import { claimDeps, pharmacyOf, pharmacyRefSchema } from "./claims";
import type { ApiContext, Caller } from "./context";
import { ApiError, problems } from "./errors";
import { ApiRouter } from "./openapi";
import { resolveCodes, writeResponses, writeRoute, type WriteCall, type WritePlan } from "./writes";

const INSURER_ROLE = 4;
const MAX_LINES = 500;

const lineSchema = z
  .object({
    code: z.string().min(1).max(500),
    quantity: z.number().int().positive().max(100_000).optional().openapi({
      description: "Doses of a split pack (拆零); whole packs need none",
    }),
  })
  .strict();
const claimRefField = z.string().min(1).max(100).openapi({
  description: "The claim reference: a 0x-prefixed bytes32 as on chain, or a claim number (hashed)",
});
const submitBody = z
  .object({
    insurer: pharmacyRefSchema.openapi({ description: "The insurer's on-chain account (0x…) or participant id" }),
    claimRef: claimRefField,
    lines: z.array(lineSchema).min(1).max(MAX_LINES),
  })
  .strict();
const settleBody = z
  .object({
    claimRef: claimRefField,
    pharmacy: pharmacyRefSchema.optional().openapi({ description: "Checked against the claim's pharmacy if given" }),
  })
  .strict();
const reverseBody = z
  .object({
    claimRef: claimRefField,
    pharmacy: pharmacyRefSchema,
    codes: z.array(z.string().min(1).max(500)).min(1).max(MAX_LINES),
    reason: z.string().min(1).max(500),
  })
  .strict();

const submittedSchema = z
  .object({
    claimRef: z.string(),
    claimRefHash: z.string(),
    insurer: z.object({ id: z.number().int(), name: z.string() }),
    pharmacy: z.object({ id: z.number().int(), name: z.string() }),
    wholePacks: z.number().int(),
    splitLines: z.number().int(),
  })
  .openapi("ClaimSubmitted");

/** What the pharmacy's claim gives its insurer: the lines, and the consents that let it (alone) settle them. */
interface StoredClaim {
  claimRef: string;
  claimRefHash: string;
  pharmacy: string;
  pharmacyId: number;
  lines: { code: string; quantity?: number }[];
  /** Whole packs, packed in line order, and the consent to settling exactly them. */
  units: string | null;
  unitsConsent: string | null;
  splits: { ref: string; quantity: number; consent: string }[];
  submittedAt: number;
}

const consentKey = (insurer: string, claimRefHash: string) => `svc:consent:${insurer.toLowerCase()}:${claimRefHash}`;

async function insurerOf(ctx: ApiContext, ref: string | number): Promise<ParticipantRecord> {
  const p = typeof ref === "number" ? await ctx.reader.participant(ref) : await ctx.reader.participantByAccount(ref);
  if (!p) throw problems.validation(`insurer: no participant ${ref} on the ledger`, "insurer");
  if (p.role !== INSURER_ROLE) throw problems.validation(`insurer: ${p.name} is not an insurer`, "insurer");
  return p;
}

/** The pharmacy's consents to `insurer` settling the claim's lines (whole packs together, split packs each). */
async function signClaim(
  ctx: ApiContext,
  caller: Caller,
  insurer: ParticipantRecord,
  body: z.infer<typeof submitBody>,
): Promise<StoredClaim> {
  const wallet = ctx.writer.submitter.signers.get(caller.account);
  if (!wallet)
    throw new ApiError(
      403,
      "no-signer",
      "No signing key",
      `This deployment holds no signing key for ${caller.account}.`,
    );
  const { refs } = await resolveCodes(
    ctx,
    body.lines.map((l) => l.code),
    "lines",
    [Level.Unit],
  );
  const domain = consentDomain(ctx.rpc.chainId, ctx.rpc.address);
  const claimRefHash = claimRefBytes32(body.claimRef);
  const whole = refs.filter((_, i) => body.lines[i]!.quantity === undefined);
  const units = whole.length > 0 ? packRefs(whole) : null;
  const sign = (unitsPacked: string, quantity: number) =>
    signConsent(wallet, domain, { insurer: insurer.account, claimRef: claimRefHash, units: unitsPacked, quantity });
  const splits = await Promise.all(
    body.lines.flatMap((l, i) =>
      l.quantity === undefined
        ? []
        : [
            sign(packRefs([refs[i]!]), l.quantity).then((consent) => ({
              ref: refs[i]!.toString(),
              quantity: l.quantity!,
              consent,
            })),
          ],
    ),
  );
  return {
    claimRef: body.claimRef,
    claimRefHash,
    pharmacy: caller.account,
    pharmacyId: caller.participantId!,
    lines: body.lines,
    units,
    unitsConsent: units ? await sign(units, 0) : null,
    splits,
    submittedAt: Date.now(),
  };
}

/** The first line the check refused because another claim settled it: the winner, for the 409. */
function settledElsewhere(result: ClaimCheckResult) {
  for (const line of result.lines) {
    const reason = line.reasons.find((r) => r.reason === "ALREADY_SETTLED");
    const earlier = reason?.pattern?.earlier;
    if (earlier)
      return {
        code: line.code,
        winner: {
          claimId: earlier.claimId ?? null,
          claimRef: earlier.claimRef ?? null,
          insurer: earlier.insurer ? { id: earlier.insurer.id, name: earlier.insurer.name } : null,
        },
      };
  }
  return null;
}

/** The claim check, then the settlement calls with the pharmacy's consents. */
async function planSettlement(ctx: ApiContext, caller: Caller, body: z.infer<typeof settleBody>): Promise<WritePlan> {
  const claimRefHash = claimRefBytes32(body.claimRef);
  const raw = await ctx.redis.get(consentKey(caller.account, claimRefHash));
  if (!raw)
    throw problems.notFound(`No claim ${body.claimRef} was submitted to you by a pharmacy`, { field: "claimRef" });
  const claim = JSON.parse(raw) as StoredClaim;
  const pharmacy = await pharmacyOf(ctx, claim.pharmacyId, "pharmacy");
  if (body.pharmacy !== undefined) {
    const named = await pharmacyOf(ctx, body.pharmacy, "pharmacy");
    if (named.id !== pharmacy.id)
      throw problems.validation(`pharmacy: claim ${body.claimRef} is ${pharmacy.name}'s`, "pharmacy");
  }
  const check = await checkClaim(claimDeps(ctx), {
    claimRef: claimRefHash,
    pharmacy,
    insurerId: caller.participantId,
    lines: claim.lines,
    caller: { ...caller },
  });
  if (check.decision !== "APPROVE") {
    const elsewhere = settledElsewhere(check);
    if (elsewhere)
      throw new ApiError(
        409,
        "ledger-refused",
        "UnitAlreadySettled",
        `${elsewhere.code} was settled under claim ${elsewhere.winner.claimRef ?? elsewhere.winner.claimId ?? "?"} by ${elsewhere.winner.insurer?.name ?? "an insurer"}`,
        { code: elsewhere.code, winner: elsewhere.winner, check },
      );
    throw new ApiError(422, "validation", "Claim check refused", "The claim check refused the claim; see check.", {
      check,
    });
  }
  const { codes } = await resolveCodes(
    ctx,
    claim.lines.map((l) => l.code),
    "lines",
  );
  const calls: WriteCall[] = [];
  if (claim.units)
    calls.push({
      method: "settle",
      args: [claimRefHash, claim.pharmacy, claim.units, claim.unitsConsent],
      // An insurer's claims arriving together share one settleClaims, each with its own consent.
      batch: { key: "settle", many: "settleClaims" },
    });
  for (const s of claim.splits)
    calls.push({ method: "settlePartial", args: [claimRefHash, claim.pharmacy, BigInt(s.ref), s.quantity, s.consent] });
  return { calls, codes };
}

/** Reversal calls: whole packs in one, each split pack on its own (all of its doses under the claim). */
async function planReversal(ctx: ApiContext, body: z.infer<typeof reverseBody>): Promise<WritePlan> {
  const pharmacy = await pharmacyOf(ctx, body.pharmacy, "pharmacy");
  const { refs, codes } = await resolveCodes(ctx, body.codes, "codes", [Level.Unit]);
  const claimRefHash = claimRefBytes32(body.claimRef);
  const views = await Promise.all(refs.map((r) => ctx.reader.item(decodeRef(r))));
  const whole = refs.filter((_, i) => !views[i]?.dispensing?.split);
  const calls: WriteCall[] = [];
  if (whole.length > 0)
    calls.push({ method: "reverseSettlement", args: [claimRefHash, pharmacy.account, packRefs(whole), body.reason] });
  refs.forEach((r, i) => {
    if (views[i]?.dispensing?.split)
      calls.push({ method: "reversePartialSettlement", args: [claimRefHash, pharmacy.account, r, body.reason] });
  });
  return { calls, codes };
}

export function settlementRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "post",
      path: "/v1/claims",
      summary: "Submit a claim to an insurer: the pharmacy's consent that it (and no other) settles these packs",
      description:
        "Signs, with the pharmacy's key, the EIP-712 SettlementConsent the ledger checks on settlement: whole packs " +
        "together, each split-pack line with its doses. Nothing is sent to the chain; the insurer settles with " +
        "POST /v1/claims/settle. Submitting the same claim again is answered the same; a different claim under " +
        "the same reference to the same insurer is a 409.",
      tags: ["claims"],
      access: ["pharmacy"],
      request: { body: submitBody },
      responses: { 201: { description: "Submitted", schema: submittedSchema } },
    },
    async ({ body, caller, res }) => {
      const insurer = await insurerOf(ctx, body.insurer);
      const claim = await signClaim(ctx, caller!, insurer, body);
      const key = consentKey(insurer.account, claim.claimRefHash);
      const stored = await ctx.redis.set(key, JSON.stringify(claim), "EX", ctx.config.CONSENT_TTL_SECONDS, "NX");
      if (stored !== "OK") {
        const earlier = JSON.parse((await ctx.redis.get(key)) ?? "{}") as Partial<StoredClaim>;
        const same =
          earlier.pharmacy === claim.pharmacy && JSON.stringify(earlier.lines) === JSON.stringify(claim.lines);
        if (!same)
          throw problems.conflict(`Claim ${body.claimRef} was already submitted to ${insurer.name} with other lines`, {
            field: "claimRef",
          });
      }
      res.status(201);
      return {
        claimRef: body.claimRef,
        claimRefHash: claim.claimRefHash,
        insurer: { id: insurer.id, name: insurer.name },
        pharmacy: { id: caller!.participantId!, name: (await ctx.reader.participant(caller!.participantId!))!.name },
        wholePacks: claim.units ? (claim.units.length - 2) / 18 : 0,
        splitLines: claim.splits.length,
      };
    },
  );
  api.route(
    {
      method: "post",
      path: "/v1/claims/settle",
      summary: "Settle a claim a pharmacy submitted to you: claim check, then once-only settlement on chain",
      description:
        "Runs the claim check on the submitted lines, then settles the whole packs in one transaction and each " +
        "split-pack line in its own, with the pharmacy's consents. A pack settled by another claim is a 409 " +
        "naming the winning claim and insurer (also when another process or insurer won the race on chain), " +
        "and raises an alert.",
      tags: ["claims"],
      access: ["insurer"],
      request: { body: settleBody },
      responses: writeResponses(200, "Settled (a claim the check refuses is a 422 whose `check` says why)"),
    },
    writeRoute(ctx, ({ body, caller }) => planSettlement(ctx, caller!, body)),
  );
  api.route(
    {
      method: "post",
      path: "/v1/claims/reverse",
      summary: "Reverse your own settlement of packs, with a reason",
      description:
        "Whole packs stay dispensed with their return window closed; a split pack's doses under the claim are released.",
      tags: ["claims"],
      access: ["insurer"],
      request: { body: reverseBody },
      responses: writeResponses(200, "Reversed"),
    },
    writeRoute(ctx, ({ body }) => planReversal(ctx, body)),
  );
  return api.router;
}
