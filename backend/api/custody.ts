/**
 * Custody over HTTP, for any holder (manufacturer, distributor, pharmacy): ship units, cases or pallets by their
 * scanned codes, receive all or part of a shipment (receipts of one delivery arriving together share a
 * transaction; a shipment that closes short records the discrepancy on chain), return to sender, decommission.
 */
import type { Router } from "express";
import { z } from "zod";
import { decodeRef, packRefs, unpackRefs } from "../codes/refs";
import { pharmacyRefSchema } from "./claims";
import type { ApiContext } from "./context";
import { ApiError } from "./errors";
import { codesField } from "./dispensing";
import { ApiRouter } from "./openapi";
import { resolveCodes, writeResponses, writeRoute, type WritePlan } from "./writes";

const HOLDERS = ["manufacturer", "distributor", "pharmacy"] as const;
export const DECOMMISSION_REASONS = ["destroyed", "damaged", "stolen", "sample"] as const;

const shipBody = z
  .object({
    to: pharmacyRefSchema.openapi({ description: "The recipient's on-chain account (0x…) or participant id" }),
    codes: codesField,
  })
  .strict();
const shipmentParams = z.object({ shipmentId: z.coerce.number().int().positive() });
const partBody = z
  .object({
    codes: codesField
      .optional()
      .openapi({ description: "What arrived (or goes back); leave out for everything still in transit" }),
  })
  .strict();
const decommissionBody = z.object({ codes: codesField, reason: z.enum(DECOMMISSION_REASONS) }).strict();

/** A participant's account, named by account or id; one the ledger does not know is a 422. */
async function accountOf(ctx: ApiContext, ref: string | number, field: string): Promise<string> {
  const p = typeof ref === "number" ? await ctx.reader.participant(ref) : await ctx.reader.participantByAccount(ref);
  if (!p) throw new ApiError(422, "validation", "Request is not valid", `${field}: no participant ${ref}`, { field });
  return p.account;
}

/** The codes named, or every item of the shipment still in transit under it (named by their refs). */
async function shipmentItems(ctx: ApiContext, shipmentId: number, codes: string[] | undefined) {
  if (codes) return resolveCodes(ctx, codes);
  const shipment = await ctx.reader.shipment(shipmentId);
  if (!shipment) throw new ApiError(422, "validation", "Request is not valid", `no shipment ${shipmentId}`);
  const refs: bigint[] = [];
  for (const ref of unpackRefs(shipment.items)) {
    const view = await ctx.reader.item(decodeRef(ref));
    if (view?.custody.inTransitShipment === shipmentId) refs.push(ref);
  }
  if (refs.length === 0)
    throw new ApiError(409, "conflict", "Conflict", `nothing of shipment ${shipmentId} is in transit any more`);
  const named = new Map(
    refs.map((r) => {
      const { runId, level, index } = decodeRef(r);
      return [r, `ref:${runId}.${level}.${index}`] as const;
    }),
  );
  return { refs, codes: named };
}

export function custodyRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "post",
      path: "/v1/shipments",
      summary: "Ship units, cases or pallets to another holder",
      description: "A case or pallet carries everything still in it. The items are in transit until received.",
      tags: ["custody"],
      access: HOLDERS,
      request: { body: shipBody },
      responses: writeResponses(201, "Shipped (the answer names the shipment)"),
    },
    writeRoute(
      ctx,
      async ({ body }): Promise<WritePlan> => {
        const to = await accountOf(ctx, body.to, "to");
        const { refs, codes } = await resolveCodes(ctx, body.codes);
        return { calls: [{ method: "ship", args: [to, packRefs(refs)] }], codes };
      },
      201,
    ),
  );
  api.route(
    {
      method: "post",
      path: "/v1/shipments/{shipmentId}/receive",
      summary: "Receive all or part of a shipment addressed to you",
      description:
        "What is not received stays in transit until received late or returned; a shipment that closes with fewer " +
        "items received than shipped records a ShipmentDiscrepancy. Receipts of one shipment arriving within " +
        "API_WRITE_BATCH_MS share one transaction.",
      tags: ["custody"],
      access: HOLDERS,
      request: { params: shipmentParams, body: partBody },
      responses: writeResponses(200, "Received"),
    },
    writeRoute(ctx, async ({ params, body }): Promise<WritePlan> => {
      const { refs, codes } = await shipmentItems(ctx, params.shipmentId, body.codes);
      return {
        calls: [
          {
            method: "receiveShipment",
            args: [params.shipmentId, packRefs(refs)],
            // Only named items batch: "everything" twice in one window would name the same items twice.
            ...(body.codes ? { batch: { key: `receive:${params.shipmentId}`, refsArg: 1 } } : {}),
          },
        ],
        codes,
      };
    }),
  );
  api.route(
    {
      method: "post",
      path: "/v1/shipments/{shipmentId}/return",
      summary: "Take items of your shipment back (a cancelled shipment, or what was not received)",
      tags: ["custody"],
      access: HOLDERS,
      request: { params: shipmentParams, body: partBody },
      responses: writeResponses(200, "Returned to sender"),
    },
    writeRoute(ctx, async ({ params, body }): Promise<WritePlan> => {
      const { refs, codes } = await shipmentItems(ctx, params.shipmentId, body.codes);
      return { calls: [{ method: "returnToSender", args: [params.shipmentId, packRefs(refs)] }], codes };
    }),
  );
  api.route(
    {
      method: "post",
      path: "/v1/decommission",
      summary: "Take units, cases or pallets you hold out of circulation for good, with a reason",
      tags: ["custody"],
      access: HOLDERS,
      request: { body: decommissionBody },
      responses: writeResponses(200, "Decommissioned"),
    },
    writeRoute(ctx, async ({ body }): Promise<WritePlan> => {
      const { refs, codes } = await resolveCodes(ctx, body.codes);
      const reason = DECOMMISSION_REASONS.indexOf(body.reason);
      return {
        calls: [
          {
            method: "decommission",
            args: [packRefs(refs), reason],
            batch: { key: `decommission:${reason}`, refsArg: 0 },
          },
        ],
        codes,
      };
    }),
  );
  return api.router;
}
