/**
 * The supply layer's entry: the outlook of products as the index tells it now, for the API's routes and its
 * periodic supply alerts. Everything it computes is a pure function of `productInputs` (see the other files).
 */
import type { ProductRecord } from "../index/events";
import type { SupplySettings } from "./model";
import { type ProductOutlook, productOutlook, type ProductSummary, productSummary } from "./outlook";
import { allProducts, productInputs, type SupplyReader } from "./read";
import { type SupplySignal, supplySignals } from "./signals";

export { allProducts, supplyAsOf, type SupplyReader } from "./read";
export { thresholdDays, type SupplySettings } from "./model";
export { SUPPLY_REASONS, type SupplyReason, type SupplySignal } from "./signals";
export type { ProductOutlook, ProductSummary, RegionOutlook } from "./outlook";

export async function productSummaries(
  reader: SupplyReader,
  settings: SupplySettings,
  products: readonly ProductRecord[],
  asOf: number,
): Promise<ProductSummary[]> {
  return Promise.all(products.map(async (p) => productSummary(await productInputs(reader, p), settings, asOf)));
}

export async function productOutlookOf(
  reader: SupplyReader,
  settings: SupplySettings,
  product: ProductRecord,
  asOf: number,
  days: number,
): Promise<ProductOutlook> {
  return productOutlook(await productInputs(reader, product), settings, asOf, days);
}

/** The supply alerts every product's outlook calls for, as of `asOf`. */
export async function allSupplySignals(
  reader: SupplyReader,
  settings: SupplySettings,
  asOf: number,
): Promise<SupplySignal[]> {
  const signals: SupplySignal[] = [];
  for (const product of await allProducts(reader)) {
    // The perDay window does not enter the signals: one day keeps the series short.
    signals.push(...supplySignals(await productOutlookOf(reader, settings, product, asOf, 1)));
  }
  return signals;
}
