/**
 * Stock where it can be dispensed from, and what follows from it: days of cover, the risk it stands for, the
 * regions and the manufacturer's batches that could make up a shortage, and stock likely to expire unsold.
 *
 * - **Usable stock** excludes recalled batches and batches past their expiry (reported apart, never counted as
 *   cover or as a source).
 * - **In transit** to a region: usable units shipped to its distributors and pharmacies and not yet received (the
 *   stock counters count them per receiver, `t{holderId}`). Units on their way to a manufacturer (goods sent back
 *   up the chain) are in the product's total only: they are not stock a region dispenses from.
 * - **Days of cover** of a region = (usable units at the region's distributors and pharmacies + usable units in
 *   transit to them) / the region's dispensing rate (`rates.ts`): stock already on its way to a region is supply
 *   it has, so a shortage that a shipment on the road already answers raises no alert; the `inTransit` figure
 *   beside it says how much of the cover is still on the road. No rate, no cover (`null`, risk `no_demand`). Below
 *   the product's threshold the risk is `low`, below `SUPPLY_CRITICAL_FRACTION` of it `critical`.
 * - **Surplus** of a region: the usable units it could give away and stay at the threshold,
 *   `min(held, units − threshold × rate)` with `units` its cover units and `held` those at its distributors and
 *   pharmacies (all of them in a region with no demand): stock on its way counts towards the threshold it keeps,
 *   but cannot itself be sent on until it is received.
 * - **Expiry risk**: each holder is taken to sell its share of its region's demand (its share of the region's
 *   usable distributor and pharmacy stock; a manufacturer, its share of the national stock at the national rate),
 *   first-expiring batches first. A batch's units beyond what that rate sells before its expiry are at risk.
 */
import {
  type BatchStock,
  DAY_SECONDS,
  type Holder,
  type HolderRole,
  type ProductInputs,
  type SupplySettings,
} from "./model";

export interface StockByRole {
  /** Usable units (not recalled, not expired) at manufacturers, distributors and pharmacies. */
  manufacturer: number;
  distributor: number;
  pharmacy: number;
  /** Usable units in transit to the region's distributors and pharmacies (counted in days of cover). */
  inTransit: number;
  /** Units of recalled batches, and of batches past expiry, held in the region or on their way to it. */
  recalled: number;
  expired: number;
}

export type Risk = "ok" | "low" | "critical" | "no_demand";

export const isUsable = (batch: BatchStock, asOf: number): boolean => !batch.recalled && batch.expiresOn > asOf;

export const emptyStock = (): StockByRole => ({
  manufacturer: 0,
  distributor: 0,
  pharmacy: 0,
  inTransit: 0,
  recalled: 0,
  expired: 0,
});

type Placed = { batch: BatchStock; holder: Holder; units: number };

/** Units of a product per batch and holder as `of` lists them (holders with no record are left out). */
function* placed(inputs: ProductInputs, of: (b: BatchStock) => BatchStock["held"]): Generator<Placed> {
  for (const batch of inputs.batches)
    for (const { holderId, units } of of(batch)) {
      const holder = inputs.holders.get(holderId);
      if (holder && units > 0) yield { batch, holder, units };
    }
}

/** Each holding of a product with its batch and holder. */
const holdings = (inputs: ProductInputs) => placed(inputs, (b) => b.held);

/** The product's stock per region of its holders' participant records: held there, and on its way there. */
export function stockByRegion(inputs: ProductInputs, asOf: number): Map<string, StockByRole> {
  const regions = new Map<string, StockByRole>();
  const count = ({ batch, holder, units }: Placed, usableAs: keyof StockByRole): void => {
    let stock = regions.get(holder.region);
    if (!stock) regions.set(holder.region, (stock = emptyStock()));
    stock[batch.recalled ? "recalled" : batch.expiresOn <= asOf ? "expired" : usableAs] += units;
  };
  for (const holding of holdings(inputs)) count(holding, holding.holder.role);
  for (const shipped of placed(inputs, (b) => b.inTransitTo))
    if (shipped.holder.role !== "manufacturer") count(shipped, "inTransit");
  return regions;
}

export const inTransitUnits = (batches: readonly BatchStock[]): number =>
  batches.reduce((sum, b) => sum + b.inTransit, 0);

/** The stock days of cover count: what the region's distributors and pharmacies hold, and what is on its way. */
export const coverUnits = (stock: StockByRole): number => stock.distributor + stock.pharmacy + stock.inTransit;

export const daysOfCover = (units: number, ratePerDay: number): number | null =>
  ratePerDay > 0 ? units / ratePerDay : null;

export function riskOf(
  cover: number | null,
  threshold: number,
  settings: Pick<SupplySettings, "SUPPLY_CRITICAL_FRACTION">,
): Risk {
  if (cover === null) return "no_demand";
  if (cover < threshold * settings.SUPPLY_CRITICAL_FRACTION) return "critical";
  return cover < threshold ? "low" : "ok";
}

export const surplusUnits = (stock: StockByRole, ratePerDay: number, threshold: number): number => {
  const held = stock.distributor + stock.pharmacy;
  return Math.max(0, Math.floor(Math.min(held, coverUnits(stock) - threshold * ratePerDay)));
};

export interface SourceHolder {
  holderId: number;
  name: string;
  role: HolderRole;
  units: number;
}

export interface RegionSource {
  kind: "region";
  region: string;
  daysOfCover: number | null;
  surplusUnits: number;
  /** The region's distributors and pharmacies holding usable units, most first. */
  holders: SourceHolder[];
}

export interface ManufacturerSource {
  kind: "manufacturer";
  manufacturerId: number;
  units: number;
  /** Usable batches at the manufacturer, soonest expiry first. */
  batches: { batchId: number; lot: string; expiresOn: number; units: number }[];
}

export type SupplySource = RegionSource | ManufacturerSource;

/**
 * Where stock could come from: regions with a surplus, most days of cover first (a region with no demand has
 * unbounded cover and comes first), then by surplus; then the manufacturer's own usable stock by batch expiry.
 */
export function suggestSources(
  inputs: ProductInputs,
  regions: readonly { region: string; daysOfCover: number | null; surplusUnits: number }[],
  asOf: number,
): SupplySource[] {
  const byRegion = new Map<string, Map<number, SourceHolder>>();
  const atMaker = new Map<number, ManufacturerSource["batches"][number]>();
  for (const { batch, holder, units } of holdings(inputs)) {
    if (!isUsable(batch, asOf)) continue;
    if (holder.role === "manufacturer") {
      if (holder.id !== inputs.manufacturerId) continue;
      const entry = atMaker.get(batch.batchId) ?? {
        batchId: batch.batchId,
        lot: batch.lot,
        expiresOn: batch.expiresOn,
        units: 0,
      };
      entry.units += units;
      atMaker.set(batch.batchId, entry);
      continue;
    }
    let holders = byRegion.get(holder.region);
    if (!holders) byRegion.set(holder.region, (holders = new Map()));
    const entry = holders.get(holder.id) ?? { holderId: holder.id, name: holder.name, role: holder.role, units: 0 };
    entry.units += units;
    holders.set(holder.id, entry);
  }
  const coverRank = (cover: number | null): number => cover ?? Number.POSITIVE_INFINITY;
  const regionSources: SupplySource[] = regions
    .filter((r) => r.surplusUnits > 0)
    .sort((a, b) => coverRank(b.daysOfCover) - coverRank(a.daysOfCover) || b.surplusUnits - a.surplusUnits)
    .map((r) => ({
      kind: "region",
      region: r.region,
      daysOfCover: r.daysOfCover,
      surplusUnits: r.surplusUnits,
      holders: [...(byRegion.get(r.region)?.values() ?? [])].sort(
        (a, b) => b.units - a.units || a.holderId - b.holderId,
      ),
    }));
  const batches = [...atMaker.values()].sort((a, b) => a.expiresOn - b.expiresOn || a.batchId - b.batchId);
  if (batches.length === 0) return regionSources;
  const units = batches.reduce((sum, b) => sum + b.units, 0);
  return [...regionSources, { kind: "manufacturer", manufacturerId: inputs.manufacturerId, units, batches }];
}

export interface ExpiryRisk {
  holderId: number;
  name: string;
  role: HolderRole;
  region: string;
  batchId: number;
  lot: string;
  expiresOn: number;
  /** Days until expiry from now (0 or less: expired already, all units at risk). */
  daysToExpiry: number;
  units: number;
  unitsAtRisk: number;
}

/**
 * Units per holder and batch that its share of demand will not sell before they expire (see the file's comment);
 * batches expiring beyond `SUPPLY_EXPIRY_HORIZON_DAYS` are not assessed. Recalled batches are not expiry risk.
 */
export function expiryRisk(
  inputs: ProductInputs,
  rates: { byRegion: ReadonlyMap<string, number>; national: number },
  asOf: number,
  settings: Pick<SupplySettings, "SUPPLY_EXPIRY_HORIZON_DAYS">,
): ExpiryRisk[] {
  const perHolder = new Map<number, { holder: Holder; lots: { batch: BatchStock; units: number }[] }>();
  const regionUnits = new Map<string, number>();
  let nationalUnits = 0;
  for (const { batch, holder, units } of holdings(inputs)) {
    if (batch.recalled) continue;
    let entry = perHolder.get(holder.id);
    if (!entry) perHolder.set(holder.id, (entry = { holder, lots: [] }));
    entry.lots.push({ batch, units });
    if (batch.expiresOn <= asOf) continue;
    nationalUnits += units;
    if (holder.role !== "manufacturer") regionUnits.set(holder.region, (regionUnits.get(holder.region) ?? 0) + units);
  }
  const out: ExpiryRisk[] = [];
  for (const { holder, lots } of perHolder.values()) {
    const usable = lots.reduce((sum, l) => sum + (l.batch.expiresOn > asOf ? l.units : 0), 0);
    const rate =
      holder.role === "manufacturer"
        ? share(rates.national, usable, nationalUnits)
        : share(rates.byRegion.get(holder.region) ?? 0, usable, regionUnits.get(holder.region) ?? 0);
    let sold = 0;
    for (const { batch, units } of lots.sort((a, b) => a.batch.expiresOn - b.batch.expiresOn)) {
      const daysToExpiry = (batch.expiresOn - asOf) / DAY_SECONDS;
      if (daysToExpiry > settings.SUPPLY_EXPIRY_HORIZON_DAYS) break;
      const sellable = Math.max(0, Math.min(units, Math.floor(rate * Math.max(0, daysToExpiry)) - sold));
      sold += sellable;
      if (units > sellable)
        out.push({
          holderId: holder.id,
          name: holder.name,
          role: holder.role,
          region: holder.region,
          batchId: batch.batchId,
          lot: batch.lot,
          expiresOn: batch.expiresOn,
          daysToExpiry: Math.floor(daysToExpiry),
          units,
          unitsAtRisk: units - sellable,
        });
    }
  }
  return out.sort((a, b) => a.expiresOn - b.expiresOn || b.unitsAtRisk - a.unitsAtRisk || a.holderId - b.holderId);
}

const share = (rate: number, units: number, ofUnits: number): number => (ofUnits > 0 ? (rate * units) / ofUnits : 0);
