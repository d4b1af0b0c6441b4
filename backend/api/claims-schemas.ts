/** Zod schemas of the claim check's answer, shared by the JSON route and the NHSA 3505 envelope. */
import { z } from "zod";
import { CLAIM_REASONS, REPEAT_PATTERNS } from "./claims-check";
import "./openapi";

export const orgRefSchema = z.object({ id: z.number().int(), name: z.string(), region: z.string() }).openapi("OrgRef");

const earlierUseSchema = z
  .object({
    event: z.enum(["dispensed", "settled"]),
    at: z.string().datetime(),
    pharmacy: orgRefSchema.nullable(),
    insurer: orgRefSchema.nullable().optional(),
    claimRef: z.string().optional(),
    claimId: z.string().optional(),
    sameClaim: z.boolean().optional(),
  })
  .openapi("EarlierUse");

const lineReasonSchema = z
  .object({
    reason: z.enum(CLAIM_REASONS),
    detail: z.string(),
    pattern: z
      .object({
        pattern: z.enum(REPEAT_PATTERNS).openapi({
          description:
            "NHSA repeated-code patterns: SAME_INSTITUTION (swapping or billing without dispensing), RESOLD_PACK " +
            "(another pharmacy, long after), COPIED_CODE (another pharmacy, soon after)",
        }),
        secondsBetween: z.number().int(),
        regions: z.object({ earlier: z.string().nullable(), now: z.string().nullable() }),
        earlier: earlierUseSchema,
      })
      .optional(),
    quantities: z
      .object({
        requested: z.number(),
        dispensed: z.number(),
        settled: z.number(),
        available: z.number(),
        packQuantity: z.number(),
        settledByClaim: z.record(z.number()),
      })
      .optional(),
  })
  .openapi("ClaimLineReason");

const packSummarySchema = z
  .object({
    level: z.enum(["unit", "case", "pallet"]),
    product: z.object({ code: z.string(), name: z.string(), packQuantity: z.number() }).nullable(),
    lot: z.string().nullable(),
    expiresOn: z.string().nullable(),
    manufacturer: orgRefSchema.nullable(),
    recalled: z.boolean(),
    decommissioned: z.boolean(),
    dispensed: z
      .object({
        pharmacy: orgRefSchema.nullable(),
        at: z.string(),
        split: z.object({ dispensed: z.number(), packQuantity: z.number() }).nullable(),
      })
      .nullable(),
    settled: z
      .object({
        insurer: orgRefSchema.nullable(),
        at: z.string(),
        claimRef: z.string().nullable(),
        dosesSettled: z.number().nullable(),
      })
      .nullable(),
  })
  .openapi("PackSummary");

export const lineResultSchema = z
  .object({
    line: z.number().int(),
    code: z.string(),
    ok: z.boolean(),
    reasons: z.array(lineReasonSchema),
    quantity: z.number().optional(),
    pack: packSummarySchema.nullable(),
    alertId: z.string().optional(),
  })
  .openapi("ClaimLineResult");

export const claimCheckResultSchema = z
  .object({
    decision: z.enum(["APPROVE", "REJECT"]),
    claimRef: z.string(),
    claimId: z.string().nullable(),
    pharmacy: orgRefSchema,
    checkedAt: z.string().datetime(),
    lines: z.array(lineResultSchema),
  })
  .openapi("ClaimCheckResult");
