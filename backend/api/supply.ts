/**
 * Supply figures: where a product's units are and went and how fast pharmacies dispense them, per region and day,
 * read from the counters the indexer keeps per product (`su:{productId}`) and per batch (`sb:{batchId}`, see
 * `backend/index/keys.ts`). The figures are commercial: the regulator sees every product, a manufacturer its own
 * products only.
 */
import type { Router } from "express";
import { z } from "zod";
import { type ApiContext, type Caller, ROLE_BY_NUMBER } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";
import type { ParticipantRecord } from "../index/events";
import { SUPPLY_FIELD, supplyKey, utcDay } from "../index/keys";
import type { BatchStock } from "../index/query";

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
    byRegion: z.array(z.object({ region: z.string(), units: units("Units held in the region"), byRole: byRoleSchema })),
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

const stockQuery = z.object({
  day: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, "a UTC day, YYYY-MM-DD")
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && utcDay(Date.parse(`${d}T00:00:00Z`) / 1000) === d, {
      message: "not a calendar day",
    })
    .optional()
    .openapi({ description: "The UTC day whose closing stock to answer (YYYY-MM-DD); stock now unless given" }),
});

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
  const regions = new Map<string, Record<HolderRole, number>>();
  for (const h of byHolder) {
    byRole[h.role] += h.units;
    let region = regions.get(h.region);
    if (!region) regions.set(h.region, (region = emptyByRole()));
    region[h.role] += h.units;
  }
  const current = batches.filter((b) => !b.recalled);
  const recalled = batches.filter((b) => b.recalled);
  const view = {
    held: sum(byHolder.map((h) => h.units)),
    inTransit: sum(current.map((b) => b.inTransit)),
    dispensed: sum(batches.map((b) => b.dispensed)),
    decommissioned: sum(batches.map((b) => b.decommissioned)),
    byHolder,
    byRole,
    byRegion: [...regions]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([region, roles]) => ({ region, units: sum(Object.values(roles)), byRole: roles })),
    recalled: {
      held: sum(recalled.flatMap((b) => b.held.map((h) => h.units))),
      inTransit: sum(recalled.map((b) => b.inTransit)),
      byHolder: holders(true),
    },
    batches: batches.map(({ held, ...b }) => ({ ...b, held: sum(held.map((h) => h.units)) })),
  };
  const commissioned =
    view.held + view.inTransit + view.recalled.held + view.recalled.inTransit + view.dispensed + view.decommissioned;
  return { commissioned, ...view };
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
  api.route(
    {
      method: "get",
      path: "/v1/supply/products/{productId}/stock",
      summary: "A product's stock by holder, holder role and region, in transit, dispensed, decommissioned, recalled",
      description:
        "Counted from the index's per-batch stock counters. Every unit commissioned is in exactly one place: " +
        "commissioned = held + inTransit + recalled.held + recalled.inTransit + dispensed + decommissioned. A split " +
        "pack counts as dispensed from its first dose. With `day`, the stock as it closed that UTC day (block time), " +
        "recalls as of that day.",
      tags: ["supply"],
      access: ["regulator", "manufacturer"],
      request: { params: productParam, query: stockQuery },
      responses: { 200: { description: "The product's stock", schema: stockSchema } },
    },
    async ({ params, query, caller }) => {
      const productId = params.productId as number;
      const product = await ctx.reader.product(productId);
      if (!product) throw problems.notFound(`No product ${productId}`, { field: "productId" });
      if (!maySee(caller!, product.manufacturerId))
        throw problems.forbidden("A product's supply figures are its manufacturer's and the regulator's.");
      const day = (query.day as string | undefined) ?? null;
      const batches = await ctx.reader.productStock(productId, day ?? undefined);
      const holderIds = new Set(batches.flatMap((b) => b.held.map((h) => h.holderId)));
      const participants = new Map<number, ParticipantRecord>();
      await Promise.all(
        [...holderIds].map(async (id) => {
          const p = await ctx.reader.participant(id);
          if (p) participants.set(id, p);
        }),
      );
      return { productId, manufacturerId: product.manufacturerId, day, ...stockView(batches, participants) };
    },
  );
  return api.router;
}
