/**
 * Reads a product's supply inputs (`model.ts`) from the index: its record, its stock per batch and holder (the
 * stock counters), its units dispensed per region and day (`su:{productId}`) and its holders' records; and the
 * moment the figures are as of.
 */
import type { ProductRecord } from "../index/events";
import { META, productKey, SUPPLY_FIELD, supplyKey } from "../index/keys";
import type { IndexReader } from "../index/query";
import { type DispensedByRegion, type Holder, HOLDER_ROLES, type ProductInputs } from "./model";

/** What the supply layer reads: the index reader, with the stock counters' per-batch view. */
export type SupplyReader = Pick<IndexReader, "redis" | "participant" | "product" | "productStock">;

const DAY_PREFIX = SUPPLY_FIELD.dispensedOn("", "").slice(0, 2);

/** The `d:{region}:{day}` fields of a product's supply counters, per region and day. */
export function dispensedByRegion(raw: Record<string, string>): Map<string, Map<string, number>> {
  const regions = new Map<string, Map<string, number>>();
  for (const [field, value] of Object.entries(raw)) {
    if (!field.startsWith(DAY_PREFIX)) continue;
    // A region may itself hold ':', the day never does.
    const at = field.lastIndexOf(":");
    const region = field.slice(DAY_PREFIX.length, at);
    let days = regions.get(region);
    if (!days) regions.set(region, (days = new Map()));
    days.set(field.slice(at + 1), Number(value));
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

export async function productInputs(reader: SupplyReader, product: ProductRecord): Promise<ProductInputs> {
  const [batches, raw] = await Promise.all([
    reader.productStock(product.id),
    reader.redis.hgetall(supplyKey(product.id)),
  ]);
  const holderIds = new Set(batches.flatMap((b) => b.held.map((h) => h.holderId)));
  const holders = new Map<number, Holder>();
  await Promise.all(
    [...holderIds].map(async (id) => {
      const record = await reader.participant(id);
      const role = record ? HOLDER_ROLES[record.role as keyof typeof HOLDER_ROLES] : undefined;
      if (record && role) holders.set(id, { id, name: record.name, role, region: record.region });
    }),
  );
  const dispensed: DispensedByRegion = dispensedByRegion(raw);
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
