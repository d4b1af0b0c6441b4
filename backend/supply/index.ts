/**
 * The supply layer's entry: the outlook of products as the index tells it now, for the API's routes and its
 * periodic supply alerts. Everything it computes is a pure function of `productInputs` (see the other files).
 */
import type { ProductRecord } from "../index/events";
import { oldestDayKept, utcDayNumber } from "../index/keys";
import type { SupplySettings } from "./model";
import { type ProductOutlook, productOutlook, type ProductSummary, productSummary } from "./outlook";
import { allProducts, productInputs, type SupplyAt, type SupplyReader } from "./read";
import { type SupplySignal, supplySignals } from "./signals";

export { allProducts, supplyAsOf, supplyAt, type SupplyAt, type SupplyReader } from "./read";
export { thresholdDays, type SupplySettings } from "./model";
export { SUPPLY_REASONS, type SupplyReason, type SupplySignal } from "./signals";
export type { ProductOutlook, ProductSummary, RegionOutlook } from "./outlook";

export async function productSummaries(
  reader: SupplyReader,
  settings: SupplySettings,
  products: readonly ProductRecord[],
  at: SupplyAt,
): Promise<ProductSummary[]> {
  return Promise.all(products.map(async (p) => productSummary(await productInputs(reader, p, at), settings, at.asOf)));
}

export async function productOutlookOf(
  reader: SupplyReader,
  settings: SupplySettings,
  product: ProductRecord,
  at: SupplyAt,
  days: number,
): Promise<ProductOutlook> {
  return productOutlook(await productInputs(reader, product, at), settings, at.asOf, days);
}

/** The supply alerts every product's outlook calls for, as of `asOf`. */
export async function allSupplySignals(
  reader: SupplyReader,
  settings: SupplySettings,
  asOf: number,
): Promise<SupplySignal[]> {
  const signals: SupplySignal[] = [];
  const keptFrom = oldestDayKept(utcDayNumber(asOf), settings.SUPPLY_DAILY_RETENTION_DAYS);
  const at: SupplyAt = { asOf, day: null, now: asOf, keptFrom };
  for (const product of await allProducts(reader)) {
    // The perDay window does not enter the signals: one day keeps the series short.
    signals.push(...supplySignals(await productOutlookOf(reader, settings, product, at, 1)));
  }
  return signals;
}
