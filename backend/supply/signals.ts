/**
 * Which supply alerts a product's outlook calls for, per region, with the figures that triggered them:
 * - `SHORTAGE_RISK`: days of cover below the product's threshold (risk `low` or `critical`), with where stock
 *   could come from (the regions with the most cover and a surplus, the manufacturer's batches by expiry);
 * - `DEMAND_SURGE`: the rate at least `SUPPLY_SURGE_FACTOR` times its baseline (see `rates.ts`);
 * - `EXPIRY_RISK`: units in the region likely to expire before they are dispensed, per holder and batch.
 * The alert workflow (backend/alerts) keeps one open alert per product, region and reason.
 */
import type { ProductOutlook } from "./outlook";

export const SUPPLY_REASONS = ["SHORTAGE_RISK", "DEMAND_SURGE", "EXPIRY_RISK"] as const;
export type SupplyReason = (typeof SUPPLY_REASONS)[number];

/** Sources named in a shortage alert: enough to act on, small enough to keep in the alert. */
const SOURCES_IN_ALERT = 3;

export interface SupplySignal {
  reason: SupplyReason;
  productId: number;
  productCode: string;
  manufacturerId: number;
  region: string;
  figures: Record<string, unknown>;
}

export function supplySignals(outlook: ProductOutlook): SupplySignal[] {
  const product = {
    productId: outlook.productId,
    productCode: outlook.productCode,
    manufacturerId: outlook.manufacturerId,
  };
  const signals: SupplySignal[] = [];
  for (const r of outlook.regions) {
    if (r.risk === "low" || r.risk === "critical") {
      const regions = outlook.sources.filter((s) => s.kind === "region" && s.region !== r.region);
      const maker = outlook.sources.filter((s) => s.kind === "manufacturer");
      signals.push({
        ...product,
        reason: "SHORTAGE_RISK",
        region: r.region,
        figures: {
          risk: r.risk,
          daysOfCover: r.daysOfCover,
          thresholdDays: outlook.thresholdDays,
          ratePerDay: r.ratePerDay,
          stock: r.stock,
          sources: [...regions.slice(0, SOURCES_IN_ALERT), ...maker],
        },
      });
    }
    if (r.surge)
      signals.push({
        ...product,
        reason: "DEMAND_SURGE",
        region: r.region,
        figures: { ratePerDay: r.ratePerDay, baselinePerDay: r.baselinePerDay, daysOfCover: r.daysOfCover },
      });
  }
  const expiring = new Map<string, ProductOutlook["expiryRisk"]>();
  for (const risk of outlook.expiryRisk) expiring.set(risk.region, [...(expiring.get(risk.region) ?? []), risk]);
  for (const [region, holdings] of expiring)
    signals.push({
      ...product,
      reason: "EXPIRY_RISK",
      region,
      figures: { unitsAtRisk: holdings.reduce((sum, h) => sum + h.unitsAtRisk, 0), holdings },
    });
  return signals;
}
