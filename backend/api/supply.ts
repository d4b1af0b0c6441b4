/**
 * Supply figures: where a product's units are and went and how fast pharmacies dispense them, per region and day,
 * read from the counters the indexer keeps per product (`su:{productId}`) and per batch (`sb:{batchId}`, see
 * `backend/index/keys.ts`), and the outlook computed from them (`backend/supply/`): days of cover and risk per
 * product and region, the forecast, where stock could come from and what may expire unsold. The figures are
 * commercial: the regulator sees every product, a manufacturer its own products only.
 */
import type { Router } from "express";
import { z } from "zod";
import { type ApiContext, type Caller, ROLE_BY_NUMBER } from "./context";
import { problems } from "./errors";
import { ApiRouter, problemResponse, problemSchema } from "./openapi";
import type { ParticipantRecord } from "../index/events";
import { dayOfNumber, SUPPLY_FIELD, supplyKey, utcDay, utcDayNumber } from "../index/keys";
import type { ProductRecord } from "../index/events";
import { dispensedByRegion, holderIdsOf } from "../supply/read";
import { allProducts, productOutlookOf, productSummaries, supplyAt, type SupplyAt } from "../supply";
import type { BatchStock } from "../index/query";
import { iso } from "../util/time";

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

/** `?day=YYYY-MM-DD`: a past UTC day, up to today, within the days the index keeps (SUPPLY_DAILY_RETENTION_DAYS). */
const dayParam = (description: string) =>
  z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, "a UTC day, YYYY-MM-DD")
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && utcDay(Date.parse(`${d}T00:00:00Z`) / 1000) === d, {
      message: "not a calendar day",
    })
    .optional()
    .openapi({
      description:
        `${description} (YYYY-MM-DD, up to today); now unless given. A day older than the index keeps ` +
        "(SUPPLY_DAILY_RETENTION_DAYS) is a 422 beyond-retention problem naming the oldest day kept.",
    });
const stockQuery = z.object({ day: dayParam("The UTC day whose closing stock to answer") });
const dayOfFigures = z
  .string()
  .nullable()
  .openapi({ description: "The past UTC day whose close the figures are of (YYYY-MM-DD); null: now (today included)" });

const unitCount = z.number().int();
const regionStockSchema = z
  .object({
    manufacturer: unitCount,
    distributor: unitCount,
    pharmacy: unitCount,
    inTransit: unitCount.openapi({
      description: "Usable units shipped to the region's distributors and pharmacies, not yet received (in cover)",
    }),
    recalled: unitCount.openapi({ description: "Units of recalled batches held in or bound for the region" }),
    expired: unitCount.openapi({ description: "Units past expiry held in or bound for the region" }),
  })
  .openapi("SupplyRegionStock", { description: "Usable units (not recalled, not expired) by holder type" });

const regionSchema = z
  .object({
    region: z.string(),
    stock: regionStockSchema,
    ratePerDay: z.number().openapi({ description: "Recent units dispensed a day (method: README, Supply figures)" }),
    baselinePerDay: z.number().nullable().openapi({ description: "The rate's baseline; null for a new series" }),
    daysOfCover: z
      .number()
      .nullable()
      .openapi({ description: "(distributor + pharmacy + inTransit) / ratePerDay; null: no demand" }),
    risk: z.enum(["ok", "low", "critical", "no_demand"]),
    surge: z.boolean().openapi({ description: "The rate is well above its baseline" }),
    surplusUnits: unitCount.openapi({
      description: "Units the region's holders could give and stay at the threshold (none of them still on the way)",
    }),
  })
  .openapi("SupplyRegion");

const productSummarySchema = z.object({
  productId: unitCount,
  productCode: z.string(),
  name: z.string(),
  manufacturerId: unitCount,
  thresholdDays: z.number().openapi({ description: "Days of cover below which the product is short" }),
  inTransit: unitCount.openapi({
    description: "Units in transit between holders, all regions (recalled, expired and bound for makers included)",
  }),
  regions: z.array(regionSchema),
});

const overviewSchema = z
  .object({
    generatedAt: z.string().datetime().openapi({ description: "The moment the figures are as of" }),
    day: dayOfFigures,
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
      surplusUnits: unitCount,
      holders: z.array(z.object({ holderId: unitCount, name: z.string(), role: holderRole, units: unitCount })),
    }),
    z.object({
      kind: z.literal("manufacturer"),
      manufacturerId: unitCount,
      units: unitCount,
      batches: z.array(z.object({ batchId: unitCount, lot: z.string(), expiresOn: z.string(), units: unitCount })),
    }),
  ])
  .openapi("SupplySource", {
    description: "Regions with a surplus, most cover first; then the manufacturer's batches, soonest expiry first",
  });

const outlookSchema = productSummarySchema
  .extend({
    generatedAt: z.string().datetime(),
    day: dayOfFigures,
    perDay: z
      .array(z.object({ day: z.string(), units: unitCount }))
      .openapi({ description: "National, today last (so far)" }),
    ratePerDay: z.number(),
    trendPerDay: z.number().openapi({ description: "Least-squares slope of daily units over the complete days" }),
    forecast: z.array(z.object({ day: z.string(), expected: z.number(), low: z.number(), high: z.number() })),
    method: z.string(),
    sources: z.array(sourceSchema),
    expiryRisk: z.array(
      z.object({
        holderId: unitCount,
        name: z.string(),
        role: holderRole,
        region: z.string(),
        batchId: unitCount,
        lot: z.string(),
        expiresOn: z.string(),
        daysToExpiry: unitCount,
        units: unitCount,
        unitsAtRisk: unitCount,
      }),
    ),
  })
  .openapi("SupplyOutlook");

const outlookQuery = daysQuery("Days of history in perDay").extend({
  day: dayParam("The UTC day the outlook is of, as it stood at its close"),
});
const overviewQuery = z.object({ day: dayParam("The UTC day the overview is of, as it stood at its close") });

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

const HOLDER_ROLES = ["manufacturer", "distributor", "pharmacy"] as const;
type HolderRole = (typeof HOLDER_ROLES)[number];
const units = (description: string) => z.number().int().openapi({ description });
const byRoleSchema = z.object(
  Object.fromEntries(HOLDER_ROLES.map((r) => [r, units(`Units held by ${r}s`)])) as Record<HolderRole, z.ZodNumber>,
);
const holderSchema = z.object({
  holderId: z.number().int(),
  name: z.string(),
  role: z.enum(HOLDER_ROLES),
  region: z.string(),
  units: units("Units held at rest (not in transit, dispensed or decommissioned)"),
});
const stockSchema = z
  .object({
    productId: z.number().int(),
    manufacturerId: z.number().int(),
    day: z
      .string()
      .nullable()
      .openapi({ description: "The UTC day whose closing stock this is (YYYY-MM-DD); null: stock now" }),
    commissioned: units(
      "Units commissioned (by the day asked for): held + inTransit + recalled + dispensed + decommissioned",
    ),
    held: units("Units held at rest, recalled batches left out"),
    inTransit: units("Units shipped and not yet received or taken back, recalled batches left out"),
    dispensed: units("Units dispensed: whole packs, and split packs from their first dose"),
    decommissioned: units("Units destroyed, damaged, stolen or taken as samples"),
    byHolder: z.array(holderSchema).openapi({ description: "Units held per holder, recalled batches left out" }),
    byRole: byRoleSchema,
    byRegion: z.array(
      z.object({
        region: z.string(),
        units: units("Units held in the region"),
        byRole: byRoleSchema,
        inTransit: units("Units on their way to the region's holders (receiver's participant region)"),
      }),
    ),
    recalled: z
      .object({
        held: units("Units of recalled batches held at rest"),
        inTransit: units("Units of recalled batches in transit"),
        byHolder: z.array(holderSchema),
      })
      .openapi({ description: "Stock of batches recalled (at the day asked for), apart from the rest" }),
    batches: z.array(
      z.object({
        batchId: z.number().int(),
        lot: z.string(),
        expiresOn: z.number().int().openapi({ description: "Unix seconds" }),
        recalled: z.boolean(),
        held: z.number().int(),
        inTransit: z.number().int(),
        dispensed: z.number().int(),
        decommissioned: z.number().int(),
      }),
    ),
  })
  .openapi("SupplyStock");

type Stock = z.infer<typeof stockSchema>;
type Holder = z.infer<typeof holderSchema>;

const emptyByRole = (): Record<HolderRole, number> => ({ manufacturer: 0, distributor: 0, pharmacy: 0 });
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/**
 * A product's stock from its batches' counters: by holder, holder role and holder region (each participant's own
 * record), in transit, dispensed and decommissioned, with recalled batches' stock apart.
 */
export function stockView(
  batches: readonly BatchStock[],
  participants: ReadonlyMap<number, ParticipantRecord>,
): Omit<Stock, "productId" | "manufacturerId" | "day"> {
  const holders = (recalled: boolean): Holder[] => {
    const perHolder = new Map<number, number>();
    for (const b of batches)
      if (b.recalled === recalled)
        for (const h of b.held) perHolder.set(h.holderId, (perHolder.get(h.holderId) ?? 0) + h.units);
    return [...perHolder]
      .sort(([a], [b]) => a - b)
      .map(([holderId, held]) => {
        const p = participants.get(holderId);
        const role = ROLE_BY_NUMBER[p?.role ?? 0];
        return {
          holderId,
          name: p?.name ?? "",
          role: HOLDER_ROLES.includes(role as HolderRole) ? (role as HolderRole) : "manufacturer",
          region: p?.region ?? "",
          units: held,
        };
      });
  };
  const byHolder = holders(false);
  const byRole = emptyByRole();
  const regions = new Map<string, { byRole: Record<HolderRole, number>; inTransit: number }>();
  const regionOf = (name: string) => {
    let region = regions.get(name);
    if (!region) regions.set(name, (region = { byRole: emptyByRole(), inTransit: 0 }));
    return region;
  };
  for (const h of byHolder) {
    byRole[h.role] += h.units;
    regionOf(h.region).byRole[h.role] += h.units;
  }
  const current = batches.filter((b) => !b.recalled);
  const recalled = batches.filter((b) => b.recalled);
  for (const t of current.flatMap((b) => b.inTransitTo))
    regionOf(participants.get(t.holderId)?.region ?? "").inTransit += t.units;
  const view = {
    held: sum(byHolder.map((h) => h.units)),
    inTransit: sum(current.map((b) => b.inTransit)),
    dispensed: sum(batches.map((b) => b.dispensed)),
    decommissioned: sum(batches.map((b) => b.decommissioned)),
    byHolder,
    byRole,
    byRegion: [...regions]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([region, { byRole, inTransit }]) => ({ region, units: sum(Object.values(byRole)), byRole, inTransit })),
    recalled: {
      held: sum(recalled.flatMap((b) => b.held.map((h) => h.units))),
      inTransit: sum(recalled.map((b) => b.inTransit)),
      byHolder: holders(true),
    },
    batches: batches.map(({ held, inTransitTo: _perReceiver, ...b }) => ({
      ...b,
      held: sum(held.map((h) => h.units)),
    })),
  };
  const commissioned =
    view.held + view.inTransit + view.recalled.held + view.recalled.inTransit + view.dispensed + view.decommissioned;
  return { commissioned, ...view };
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

/** The problem of a `day` or `days` reaching back past what the index keeps: the setting and the oldest day kept. */
const beyondRetentionSchema = problemSchema
  .extend({
    retentionDays: z.number().int().openapi({ description: "SUPPLY_DAILY_RETENTION_DAYS: UTC days the index keeps" }),
    oldestDayKept: z.string().openapi({ description: "The oldest UTC day the index keeps (YYYY-MM-DD)" }),
  })
  .openapi("BeyondRetentionProblem", { description: "A 422 beyond-retention problem (RFC 9457)" });

/** The 422 of an answer reaching back past the days the index keeps (see {@link keptMoment}). */
const beyondRetention = {
  422: problemResponse(
    "The day, or the days the answer reads, are older than SUPPLY_DAILY_RETENTION_DAYS keeps",
    beyondRetentionSchema,
  ),
};

/**
 * The moment an answer is for (`day`, or now), refused when the days it reads reach back past what the index's daily
 * rings keep: a 422 naming the retention and the oldest day kept, rather than figures missing those days.
 * `readsBack`: days before the answer's day that it reads, per query parameter that sets them (`day`: a rate's
 * window and baseline before the day asked, 0 for the day alone; `days`: the answer's window), so that the problem
 * names the parameter to change: the day when it alone reaches too far, else the window.
 */
async function keptMoment(
  ctx: ApiContext,
  day: string | undefined,
  readsBack: Partial<Record<"day" | "days", number>>,
): Promise<SupplyAt> {
  const at = await supplyAt(ctx.reader, ctx.config.SUPPLY_DAILY_RETENTION_DAYS, day ?? null);
  const today = utcDay(at.now);
  if (day !== undefined && day > today)
    throw problems.validation(`day ${day} is after today (${today}, UTC): no figures yet`, "day");
  const answerDay = utcDayNumber(at.asOf);
  const reaching = (Object.entries(readsBack) as ["day" | "days", number][]).filter(
    ([, back]) => answerDay - back < at.keptFrom,
  );
  if (reaching.length > 0) {
    const oldestRead = answerDay - Math.max(...reaching.map(([, back]) => back));
    const retention = ctx.config.SUPPLY_DAILY_RETENTION_DAYS;
    const asked = day === undefined ? "the answer" : `day ${day}`;
    // The day when it alone reaches too far, else the window; without `day` a rate reaching too far is the
    // configuration's (which refuses such a retention), no parameter's.
    const reaches = (param: "day" | "days") => reaching.some(([p]) => p === param);
    const field = day !== undefined && reaches("day") ? "day" : reaches("days") ? "days" : undefined;
    throw problems.beyondRetention(
      `${asked} reads figures back to ${dayOfNumber(oldestRead)}, but the index keeps the last ${retention} ` +
        `UTC days (SUPPLY_DAILY_RETENTION_DAYS), from ${dayOfNumber(at.keptFrom)}`,
      { ...(field && { field }), retentionDays: retention, oldestDayKept: dayOfNumber(at.keptFrom) },
    );
  }
  return at;
}

/** Days before its day that a rate reads: its window and the baseline before it. */
const rateReadsBack = (ctx: ApiContext): number => ctx.config.SUPPLY_RATE_WINDOW_DAYS + ctx.config.SUPPLY_BASELINE_DAYS;

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
      responses: { 200: { description: "The product's consumption", schema: consumptionSchema }, ...beyondRetention },
    },
    async ({ params, query, caller }) => {
      const productId = params.productId as number;
      const product = await visibleProduct(ctx, caller!, productId);
      const days = query.days as number;
      const { asOf } = await keptMoment(ctx, undefined, { days: days - 1 });
      const window = { from: utcDay(asOf - (days - 1) * DAY_SECONDS), to: utcDay(asOf) };
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
        "excludes recalled and expired batches; inTransit per region is what is on its way to the region's " +
        "distributors and pharmacies; days of cover = (distributor + pharmacy + inTransit) / ratePerDay. With `day`, " +
        "as it stood at the close of that UTC day (stock, recalls and rates as of then).",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { query: overviewQuery },
      responses: { 200: { description: "The supply overview", schema: overviewSchema }, ...beyondRetention },
    },
    async ({ query, caller }) => {
      const products = (await allProducts(ctx.reader)).filter((p) => maySee(caller!, p.manufacturerId));
      const at = await keptMoment(ctx, query.day as string | undefined, { day: rateReadsBack(ctx) });
      return {
        generatedAt: iso(at.asOf),
        day: at.day,
        thresholdDays: ctx.config.SUPPLY_MIN_DAYS_OF_COVER,
        products: await productSummaries(ctx.reader, ctx.config, products, at),
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/supply/products/{productId}/outlook",
      summary: "A product's dispensing per day, forecast with its band, cover per region, sources and expiry risk",
      description: "With `day`, the outlook as it stood at the close of that UTC day: perDay ends on it.",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { params: productParam, query: outlookQuery },
      responses: { 200: { description: "The product's supply outlook", schema: outlookSchema }, ...beyondRetention },
    },
    async ({ params, query, caller }) => {
      const product = await visibleProduct(ctx, caller!, params.productId as number);
      const days = query.days as number;
      const at = await keptMoment(ctx, query.day as string | undefined, { day: rateReadsBack(ctx), days: days - 1 });
      const outlook = await productOutlookOf(ctx.reader, ctx.config, product, at, days);
      return {
        ...outlook,
        generatedAt: iso(at.asOf),
        day: at.day,
        sources: outlook.sources.map((s) =>
          s.kind === "manufacturer"
            ? { ...s, batches: s.batches.map((b) => ({ ...b, expiresOn: utcDay(b.expiresOn) })) }
            : s,
        ),
        expiryRisk: outlook.expiryRisk.map((r) => ({ ...r, expiresOn: utcDay(r.expiresOn) })),
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/supply/products/{productId}/stock",
      summary: "A product's stock by holder, holder role and region, in transit, dispensed, decommissioned, recalled",
      description:
        "Counted from the index's per-batch stock counters. Every unit commissioned is in exactly one place: " +
        "commissioned = held + inTransit + recalled.held + recalled.inTransit + dispensed + decommissioned. A split " +
        "pack counts as dispensed from its first dose. In transit is counted per receiver: byRegion says what is on " +
        "its way to each region. With `day`, the stock as it closed that UTC day (block time), recalls as of that day.",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { params: productParam, query: stockQuery },
      responses: { 200: { description: "The product's stock", schema: stockSchema }, ...beyondRetention },
    },
    async ({ params, query, caller }) => {
      const productId = params.productId as number;
      const product = await visibleProduct(ctx, caller!, productId);
      // A day asked for that is today is now (null), as on the overview and the outlook.
      const { day } = await keptMoment(ctx, query.day as string | undefined, { day: 0 });
      const batches = await ctx.reader.productStock(productId, day ?? undefined);
      const participants = new Map<number, ParticipantRecord>();
      await Promise.all(
        [...holderIdsOf(batches)].map(async (id) => {
          const p = await ctx.reader.participant(id);
          if (p) participants.set(id, p);
        }),
      );
      return { productId, manufacturerId: product.manufacturerId, day, ...stockView(batches, participants) };
    },
  );
  return api.router;
}
