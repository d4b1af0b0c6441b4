/**
 * Supply figures: where a product's units went and how fast pharmacies dispense them, per region and day, read
 * from the counters the indexer keeps per product (`su:{productId}`, see `backend/index/keys.ts`). The figures
 * are commercial: the regulator sees every product, a manufacturer its own products only.
 */
import type { Router } from "express";
import { z } from "zod";
import type { ApiContext, Caller } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";
import { SUPPLY_FIELD, supplyKey, utcDay } from "../index/keys";

const DAY_SECONDS = 86_400;
/** The longest window a consumption answer covers. */
export const MAX_CONSUMPTION_DAYS = 366;

const consumptionSchema = z
  .object({
    productId: z.number().int(),
    manufacturerId: z.number().int(),
    commissioned: z.number().int().openapi({ description: "Units commissioned of the product, all time" }),
    dispensed: z.number().int().openapi({ description: "Units dispensed (net of undone dispensing), all time" }),
    from: z.string().openapi({ description: "First UTC day of the window (YYYY-MM-DD)" }),
    to: z.string().openapi({ description: "Last UTC day of the window (today)" }),
    regions: z.array(
      z.object({
        region: z.string(),
        dispensed: z.number().int().openapi({ description: "Units dispensed in the region within the window" }),
        perDay: z.array(z.object({ day: z.string(), units: z.number().int() })),
      }),
    ),
    pharmacies: z.array(
      z.object({ pharmacyId: z.number().int(), dispensed: z.number().int().openapi({ description: "All time" }) }),
    ),
  })
  .openapi("SupplyConsumption");

const productParam = z.object({
  productId: z.coerce.number().int().min(1).max(0xffffffff).openapi({ type: "integer" }),
});
const consumptionQuery = z.object({
  days: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_CONSUMPTION_DAYS)
    .default(30)
    .openapi({ type: "integer", description: "Days in the window, ending today (UTC); 30 unless given" }),
});

type Consumption = z.infer<typeof consumptionSchema>;

/** Turns a product's raw supply counters into the per-region, per-day answer over the window's days. */
export function consumptionView(
  raw: Record<string, string>,
  window: { from: string; to: string },
): Pick<Consumption, "commissioned" | "dispensed" | "regions" | "pharmacies"> {
  const regions = new Map<string, Map<string, number>>();
  const pharmacies: Consumption["pharmacies"] = [];
  const dayPrefix = SUPPLY_FIELD.dispensedOn("", "").slice(0, 2);
  const pharmacyPrefix = SUPPLY_FIELD.dispensedBy(0).slice(0, -1);
  for (const [field, value] of Object.entries(raw)) {
    if (field.startsWith(pharmacyPrefix)) {
      pharmacies.push({ pharmacyId: Number(field.slice(pharmacyPrefix.length)), dispensed: Number(value) });
    } else if (field.startsWith(dayPrefix)) {
      // d:{region}:{day}: a region may itself hold ':', the day never does.
      const day = field.slice(field.lastIndexOf(":") + 1);
      const region = field.slice(dayPrefix.length, field.lastIndexOf(":"));
      if (day < window.from || day > window.to) continue;
      let days = regions.get(region);
      if (!days) regions.set(region, (days = new Map()));
      days.set(day, Number(value));
    }
  }
  return {
    commissioned: Number(raw[SUPPLY_FIELD.commissioned] ?? 0),
    dispensed: Number(raw[SUPPLY_FIELD.dispensed] ?? 0),
    regions: [...regions]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([region, days]) => {
        const perDay = [...days].sort(([a], [b]) => a.localeCompare(b)).map(([day, units]) => ({ day, units }));
        return { region, dispensed: perDay.reduce((sum, d) => sum + d.units, 0), perDay };
      }),
    pharmacies: pharmacies.sort((a, b) => a.pharmacyId - b.pharmacyId),
  };
}

function maySee(caller: Caller, manufacturerId: number): boolean {
  return caller.role === "regulator" || caller.participantId === manufacturerId;
}

export function supplyRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "get",
      path: "/v1/supply/products/{productId}/consumption",
      summary: "A product's units commissioned and dispensed, and dispensing per pharmacy region and UTC day",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { params: productParam, query: consumptionQuery },
      responses: { 200: { description: "The product's consumption", schema: consumptionSchema } },
    },
    async ({ params, query, caller }) => {
      const productId = params.productId as number;
      const product = await ctx.reader.product(productId);
      if (!product) throw problems.notFound(`No product ${productId}`, { field: "productId" });
      if (!maySee(caller!, product.manufacturerId))
        throw problems.forbidden("A product's supply figures are its manufacturer's and the regulator's.");
      const now = Math.floor(Date.now() / 1000);
      const window = { from: utcDay(now - ((query.days as number) - 1) * DAY_SECONDS), to: utcDay(now) };
      const raw = await ctx.reader.redis.hgetall(supplyKey(productId));
      return { productId, manufacturerId: product.manufacturerId, ...window, ...consumptionView(raw, window) };
    },
  );
  return api.router;
}
