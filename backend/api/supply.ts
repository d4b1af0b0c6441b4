/**
 * Supply figures: where a product's units went and how fast pharmacies dispense them, per region and day, read
 * from the counters the indexer keeps per product (`su:{productId}`, see `backend/index/keys.ts`), and the
 * outlook computed from them and the stock counters (`backend/supply/`): days of cover and risk per product and
 * region, the forecast, where stock could come from and what may expire unsold. The figures are commercial: the
 * regulator sees every product, a manufacturer its own products only.
 */
import type { Router } from "express";
import { z } from "zod";
import type { ApiContext, Caller } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";
import { SUPPLY_FIELD, supplyKey, utcDay } from "../index/keys";
import type { ProductRecord } from "../index/events";
import { dispensedByRegion } from "../supply/read";
import { allProducts, productOutlookOf, productSummaries, supplyAsOf } from "../supply";

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
/** `?days=N`: a window of UTC days ending today, 30 unless given. */
const daysQuery = (what: string) =>
  z.object({
    days: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_CONSUMPTION_DAYS)
      .default(30)
      .openapi({ type: "integer", description: `${what}, ending today (UTC); 30 unless given` }),
  });
const consumptionQuery = daysQuery("Days in the window");

const units = z.number().int();
const stockSchema = z
  .object({
    manufacturer: units,
    distributor: units,
    pharmacy: units,
    inTransit: units.openapi({ description: "0 per region: the counters do not say where a shipment goes" }),
    recalled: units.openapi({ description: "Units of recalled batches (not counted above)" }),
    expired: units.openapi({ description: "Units past expiry (not counted above)" }),
  })
  .openapi("SupplyStock", { description: "Usable units (not recalled, not expired) by holder type" });

const regionSchema = z
  .object({
    region: z.string(),
    stock: stockSchema,
    ratePerDay: z.number().openapi({ description: "Recent units dispensed a day (method: README, Supply figures)" }),
    baselinePerDay: z.number().nullable().openapi({ description: "The rate's baseline; null for a new series" }),
    daysOfCover: z
      .number()
      .nullable()
      .openapi({ description: "(distributor + pharmacy) / ratePerDay; null: no demand" }),
    risk: z.enum(["ok", "low", "critical", "no_demand"]),
    surge: z.boolean().openapi({ description: "The rate is well above its baseline" }),
    surplusUnits: units.openapi({ description: "Units the region could give and stay at the threshold" }),
  })
  .openapi("SupplyRegion");

const productSummarySchema = z.object({
  productId: units,
  productCode: z.string(),
  name: z.string(),
  manufacturerId: units,
  thresholdDays: z.number().openapi({ description: "Days of cover below which the product is short" }),
  inTransit: units.openapi({ description: "Units in transit between holders, all regions" }),
  regions: z.array(regionSchema),
});

const overviewSchema = z
  .object({
    generatedAt: z.string().datetime().openapi({ description: "The moment the figures are as of" }),
    thresholdDays: z.number().openapi({ description: "The default threshold (products may have their own)" }),
    products: z.array(productSummarySchema),
  })
  .openapi("SupplyOverview");

const holderRole = z.enum(["manufacturer", "distributor", "pharmacy"]);
const sourceSchema = z
  .discriminatedUnion("kind", [
    z.object({
      kind: z.literal("region"),
      region: z.string(),
      daysOfCover: z.number().nullable(),
      surplusUnits: units,
      holders: z.array(z.object({ holderId: units, name: z.string(), role: holderRole, units })),
    }),
    z.object({
      kind: z.literal("manufacturer"),
      manufacturerId: units,
      units,
      batches: z.array(z.object({ batchId: units, lot: z.string(), expiresOn: z.string(), units })),
    }),
  ])
  .openapi("SupplySource", {
    description: "Regions with a surplus, most cover first; then the manufacturer's batches, soonest expiry first",
  });

const outlookSchema = productSummarySchema
  .extend({
    generatedAt: z.string().datetime(),
    perDay: z.array(z.object({ day: z.string(), units })).openapi({ description: "National, today last (so far)" }),
    ratePerDay: z.number(),
    trendPerDay: z.number().openapi({ description: "Least-squares slope of daily units over the complete days" }),
    forecast: z.array(z.object({ day: z.string(), expected: z.number(), low: z.number(), high: z.number() })),
    method: z.string(),
    sources: z.array(sourceSchema),
    expiryRisk: z.array(
      z.object({
        holderId: units,
        name: z.string(),
        role: holderRole,
        region: z.string(),
        batchId: units,
        lot: z.string(),
        expiresOn: z.string(),
        daysToExpiry: units,
        units,
        unitsAtRisk: units,
      }),
    ),
  })
  .openapi("SupplyOutlook");

const outlookQuery = daysQuery("Days of history in perDay");

type Consumption = z.infer<typeof consumptionSchema>;

/** Turns a product's raw supply counters into the per-region, per-day answer over the window's days. */
export function consumptionView(
  raw: Record<string, string>,
  window: { from: string; to: string },
): Pick<Consumption, "commissioned" | "dispensed" | "regions" | "pharmacies"> {
  const pharmacies: Consumption["pharmacies"] = [];
  const pharmacyPrefix = SUPPLY_FIELD.dispensedBy(0).slice(0, -1);
  for (const [field, value] of Object.entries(raw))
    if (field.startsWith(pharmacyPrefix))
      pharmacies.push({ pharmacyId: Number(field.slice(pharmacyPrefix.length)), dispensed: Number(value) });
  const inWindow = (days: Map<string, number>) =>
    new Map([...days].filter(([day]) => day >= window.from && day <= window.to));
  const regions = [...dispensedByRegion(raw)]
    .map(([region, days]) => [region, inWindow(days)] as const)
    .filter(([, days]) => days.size > 0);
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

/** The product, when the caller may see its supply figures (404 when there is none, 403 when not theirs). */
async function visibleProduct(ctx: ApiContext, caller: Caller, productId: number): Promise<ProductRecord> {
  const product = await ctx.reader.product(productId);
  if (!product) throw problems.notFound(`No product ${productId}`, { field: "productId" });
  if (!maySee(caller, product.manufacturerId))
    throw problems.forbidden("A product's supply figures are its manufacturer's and the regulator's.");
  return product;
}

const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();

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
      const product = await visibleProduct(ctx, caller!, productId);
      const now = Math.floor(Date.now() / 1000);
      const window = { from: utcDay(now - ((query.days as number) - 1) * DAY_SECONDS), to: utcDay(now) };
      const raw = await ctx.reader.redis.hgetall(supplyKey(productId));
      return { productId, manufacturerId: product.manufacturerId, ...window, ...consumptionView(raw, window) };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/supply/overview",
      summary: "Stock, dispensing rate, days of cover and risk per product and region",
      description:
        "Every product (a manufacturer: its own) per region of its holders and dispensing pharmacies. Usable stock " +
        "excludes recalled and expired batches; days of cover = (distributor + pharmacy) / ratePerDay.",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      responses: { 200: { description: "The supply overview", schema: overviewSchema } },
    },
    async ({ caller }) => {
      const products = (await allProducts(ctx.reader)).filter((p) => maySee(caller!, p.manufacturerId));
      const asOf = await supplyAsOf(ctx.reader);
      return {
        generatedAt: iso(asOf),
        thresholdDays: ctx.config.SUPPLY_MIN_DAYS_OF_COVER,
        products: await productSummaries(ctx.reader, ctx.config, products, asOf),
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/supply/products/{productId}/outlook",
      summary: "A product's dispensing per day, forecast with its band, cover per region, sources and expiry risk",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { params: productParam, query: outlookQuery },
      responses: { 200: { description: "The product's supply outlook", schema: outlookSchema } },
    },
    async ({ params, query, caller }) => {
      const product = await visibleProduct(ctx, caller!, params.productId as number);
      const asOf = await supplyAsOf(ctx.reader);
      const outlook = await productOutlookOf(ctx.reader, ctx.config, product, asOf, query.days as number);
      return {
        ...outlook,
        generatedAt: iso(asOf),
        sources: outlook.sources.map((s) =>
          s.kind === "manufacturer"
            ? { ...s, batches: s.batches.map((b) => ({ ...b, expiresOn: utcDay(b.expiresOn) })) }
            : s,
        ),
        expiryRisk: outlook.expiryRisk.map((r) => ({ ...r, expiresOn: utcDay(r.expiresOn) })),
      };
    },
  );
  return api.router;
}
