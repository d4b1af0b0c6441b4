/**
 * Reads a product's supply inputs (`model.ts`) from the index: its record, its stock per batch and holder (the
 * stock counters), its units dispensed per region and day (`su:{productId}`) and its holders' records; and the
 * moment the figures are as of.
 */
import type { ProductRecord } from "../index/events";
import {
  dayOfNumber,
  META,
  numberOfDay,
  oldestDayKept,
  productKey,
  ringBucket,
  ringField,
  SUPPLY_FIELD,
  supplyKey,
  utcDayNumber,
} from "../index/keys";
import type { BatchStock, IndexReader } from "../index/query";
import { DAY_SECONDS, type DispensedByRegion, type Holder, HOLDER_ROLES, type ProductInputs } from "./model";

/** What the supply layer reads: the index reader, with the stock counters' per-batch view. */
export type SupplyReader = Pick<IndexReader, "redis" | "participant" | "product" | "productStock">;

const DAY_PREFIX = SUPPLY_FIELD.dispensedOn("", 0).slice(0, 2);

/**
 * The daily ring of a product's supply counters (`d:{region}:{slot}` = `{day}:{units}`), per region and UTC day
 * (`YYYY-MM-DD`), for the days from `from` to `to` (UTC day numbers, inclusive); callers pass the oldest day kept
 * as `from`, so that a slot not yet overwritten never shows a day beyond retention.
 */
export function dispensedByRegion(
  raw: Record<string, string>,
  range: { from: number; to: number } = { from: -Infinity, to: Infinity },
): Map<string, Map<string, number>> {
  const regions = new Map<string, Map<string, number>>();
  for (const [field, value] of Object.entries(raw)) {
    if (!field.startsWith(DAY_PREFIX)) continue;
    const { period, units } = ringBucket.decode(value)!;
    if (period < range.from || period > range.to) continue;
    // A region may itself hold ':', the slot never does.
    const region = ringField(field).prefix.slice(DAY_PREFIX.length);
    let days = regions.get(region);
    if (!days) regions.set(region, (days = new Map()));
    const day = dayOfNumber(period);
    // Two slots hold one day only after the retention was changed without a rebuild: both are parts of it.
    days.set(day, (days.get(day) ?? 0) + units);
  }
  return regions;
}

/** Every product record, in id order (product ids are dense: shards are read until one is empty). */
export async function allProducts(reader: Pick<IndexReader, "redis">): Promise<ProductRecord[]> {
  const out: ProductRecord[] = [];
  for (let shard = 0; ; shard++) {
    const raw = await reader.redis.hgetall(productKey(shard * 4096));
    const records = Object.values(raw).map((json) => JSON.parse(json) as ProductRecord);
    if (records.length === 0) break;
    out.push(...records);
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * The moment supply figures are for: now, or the close of a past UTC day within the days the index keeps (the API
 * refuses any other day, see `supplyAt`).
 */
export interface SupplyAt {
  /** Unix seconds the figures are as of: now (see {@link supplyAsOf}), or the last second of `day`. */
  asOf: number;
  /** The past UTC day (`YYYY-MM-DD`) asked for; null: now. */
  day: string | null;
  /** Unix seconds of now ({@link supplyAsOf}), whatever day is asked for. */
  now: number;
  /** The oldest UTC day (number) the daily rings keep today, whatever day is asked for. */
  keptFrom: number;
}

/** The moment figures are for (`day`: a past UTC day, or now), with the oldest day the index keeps. */
export async function supplyAt(
  reader: Pick<IndexReader, "redis">,
  retentionDays: number,
  day: string | null = null,
  now = Date.now(),
): Promise<SupplyAt> {
  const current = await supplyAsOf(reader, now);
  const keptFrom = oldestDayKept(utcDayNumber(current), retentionDays);
  if (day === null || numberOfDay(day) >= utcDayNumber(current))
    return { asOf: current, day: null, now: current, keptFrom };
  return { asOf: (numberOfDay(day) + 1) * DAY_SECONDS - 1, day, now: current, keptFrom };
}

/** The participants a product's stock names: those holding its units and those they are on their way to. */
export const holderIdsOf = (batches: readonly BatchStock[]): Set<number> =>
  new Set(batches.flatMap((b) => [...b.held, ...b.inTransitTo].map((h) => h.holderId)));

export async function productInputs(
  reader: SupplyReader,
  product: ProductRecord,
  at: SupplyAt,
): Promise<ProductInputs> {
  const [batches, raw] = await Promise.all([
    reader.productStock(product.id, at.day ?? undefined),
    reader.redis.hgetall(supplyKey(product.id)),
  ]);
  const holders = new Map<number, Holder>();
  await Promise.all(
    [...holderIdsOf(batches)].map(async (id) => {
      const record = await reader.participant(id);
      const role = record ? HOLDER_ROLES[record.role as keyof typeof HOLDER_ROLES] : undefined;
      if (record && role) holders.set(id, { id, name: record.name, role, region: record.region });
    }),
  );
  const dispensed: DispensedByRegion = dispensedByRegion(raw, { from: at.keptFrom, to: utcDayNumber(at.asOf) });
  return {
    productId: product.id,
    productCode: product.productCode,
    name: product.name,
    manufacturerId: product.manufacturerId,
    batches,
    holders,
    dispensed,
  };
}

/**
 * The moment supply figures are as of (unix seconds): now, or the time of the last block indexed when that is
 * later (a chain whose block times run ahead of the clock, as in the tests' simulated weeks).
 */
export async function supplyAsOf(reader: Pick<IndexReader, "redis">, now = Date.now()): Promise<number> {
  const status = await reader.redis.get(META.status);
  const indexedTime = status ? Number((JSON.parse(status) as { indexedTime?: number }).indexedTime ?? 0) : 0;
  return Math.max(Math.floor(now / 1000), indexedTime);
}
