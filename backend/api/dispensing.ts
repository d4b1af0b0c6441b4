/**
 * Pharmacies at the counter: dispense whole packs (a basket under one prescription shares a transaction with
 * other requests of the same prescription arriving together), dispense part of a split pack (拆零), and undo a
 * dispensing within the return window.
 */
import type { Router } from "express";
import { ZeroHash } from "ethers";
import { z } from "zod";
import { Level, packRefs } from "../codes/refs";
import { claimRefBytes32 } from "./claims-check";
import type { ApiContext } from "./context";
import { ApiRouter } from "./openapi";
import { resolveCodes, writeResponses, writeRoute, type WritePlan } from "./writes";

export const MAX_CODES = 500;

export const codesField = z
  .array(z.string().min(1).max(500))
  .min(1)
  .max(MAX_CODES)
  .openapi({ description: `Up to ${MAX_CODES} codes as scanned (20-digit, GS1 element string, Digital Link…)` });
const codeField = z.string().min(1).max(500).openapi({ description: "The pack's code as scanned" });
const quantityField = z.number().int().positive().max(100_000).openapi({ description: "Doses" });
const prescriptionField = z.string().min(1).max(200).optional().openapi({
  description: "The prescription's hash (0x + 64 hex digits) or its number, hashed here; no personal data",
});

const dispenseBody = z.object({ codes: codesField, prescriptionHash: prescriptionField }).strict();
const partialBody = z
  .object({ code: codeField, quantity: quantityField, prescriptionHash: prescriptionField })
  .strict();
const undoBody = z.object({ codes: codesField }).strict();
const undoPartialBody = z.object({ code: codeField, quantity: quantityField }).strict();

const rxHash = (rx: string | undefined): string => (rx ? claimRefBytes32(rx) : ZeroHash);

export function dispensingRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  const units = [Level.Unit];
  api.route(
    {
      method: "post",
      path: "/v1/dispense",
      summary: "Dispense whole packs to a patient",
      description:
        "The pharmacy must hold every pack; a pack is dispensed at most once, and expired, recalled, decommissioned " +
        "or in-transit packs are refused. Requests of one pharmacy with the same prescription arriving within " +
        "API_WRITE_BATCH_MS share one transaction; each gets its own answer.",
      tags: ["dispensing"],
      access: ["pharmacy"],
      request: { body: dispenseBody },
      responses: writeResponses(200, "Dispensed"),
    },
    writeRoute(ctx, async ({ body }): Promise<WritePlan> => {
      const { refs, codes } = await resolveCodes(ctx, body.codes, "codes", units);
      const rx = rxHash(body.prescriptionHash);
      return {
        calls: [{ method: "dispense", args: [packRefs(refs), rx], batch: { key: `dispense:${rx}`, refsArg: 0 } }],
        codes,
      };
    }),
  );
  api.route(
    {
      method: "post",
      path: "/v1/dispense/partial",
      summary: "Dispense part of a split pack (拆零)",
      description: "Parts add up to the product's pack quantity, after which the pack counts as dispensed.",
      tags: ["dispensing"],
      access: ["pharmacy"],
      request: { body: partialBody },
      responses: writeResponses(200, "Dispensed in part"),
    },
    writeRoute(ctx, async ({ body }): Promise<WritePlan> => {
      const { refs, codes } = await resolveCodes(ctx, [body.code], "code", units);
      return {
        calls: [{ method: "dispensePartial", args: [refs[0], body.quantity, rxHash(body.prescriptionHash)] }],
        codes,
      };
    }),
  );
  api.route(
    {
      method: "post",
      path: "/v1/dispense/undo",
      summary: "Undo a dispensing of whole packs (a return at the counter) within the return window",
      tags: ["dispensing"],
      access: ["pharmacy"],
      request: { body: undoBody },
      responses: writeResponses(200, "Dispensing undone"),
    },
    writeRoute(ctx, async ({ body }): Promise<WritePlan> => {
      const { refs, codes } = await resolveCodes(ctx, body.codes, "codes", units);
      return {
        calls: [{ method: "undoDispense", args: [packRefs(refs)], batch: { key: "undoDispense", refsArg: 0 } }],
        codes,
      };
    }),
  );
  api.route(
    {
      method: "post",
      path: "/v1/dispense/undo-partial",
      summary: "Take back doses of a split pack dispensed on its latest dispensing day, within the window",
      tags: ["dispensing"],
      access: ["pharmacy"],
      request: { body: undoPartialBody },
      responses: writeResponses(200, "Doses taken back"),
    },
    writeRoute(ctx, async ({ body }): Promise<WritePlan> => {
      const { refs, codes } = await resolveCodes(ctx, [body.code], "code", units);
      return { calls: [{ method: "undoDispensePartial", args: [refs[0], body.quantity] }], codes };
    }),
  );
  return api.router;
}
