/**
 * What the supply outlook is computed from, as plain data: a product's stock per batch and holder (the index's
 * stock counters, `IndexReader.productStock`), its units dispensed per region and UTC day (`su:{productId}`), and
 * the holders' participant records. Every function in this folder is a pure function of these and a clock, so that
 * the API, the alert evaluation and the tests compute the same figures from the same inputs.
 */
import type { Config } from "../config/env";
import type { BatchStock } from "../index/query";

/** One batch of a product: where its units are, as the index's stock counters tell it. */
export type { BatchStock };

/** Business roles as the contracts number them (Participants.sol). */
export const HOLDER_ROLES = { 1: "manufacturer", 2: "distributor", 3: "pharmacy" } as const;
export type HolderRole = (typeof HOLDER_ROLES)[keyof typeof HOLDER_ROLES];

export interface Holder {
  id: number;
  name: string;
  role: HolderRole;
  region: string;
}

/** Units dispensed per region, per UTC day (`YYYY-MM-DD`); days with none may be left out. */
export type DispensedByRegion = ReadonlyMap<string, ReadonlyMap<string, number>>;

export interface ProductInputs {
  productId: number;
  productCode: string;
  name: string;
  manufacturerId: number;
  batches: readonly BatchStock[];
  /** Every holder named in `batches` (a holder with no record is left out of the figures). */
  holders: ReadonlyMap<number, Holder>;
  dispensed: DispensedByRegion;
}

export type SupplySettings = Pick<
  Config,
  | "SUPPLY_MIN_DAYS_OF_COVER"
  | "SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT"
  | "SUPPLY_CRITICAL_FRACTION"
  | "SUPPLY_RATE_WINDOW_DAYS"
  | "SUPPLY_BASELINE_DAYS"
  | "SUPPLY_SURGE_FACTOR"
  | "SUPPLY_SURGE_MIN_UNITS_PER_DAY"
  | "SUPPLY_FORECAST_DAYS"
  | "SUPPLY_FORECAST_BAND_SIGMAS"
  | "SUPPLY_EXPIRY_HORIZON_DAYS"
  | "SUPPLY_DAILY_RETENTION_DAYS"
>;

/** The days-of-cover threshold of a product: its own (by id, then by product code), else the default. */
export function thresholdDays(settings: SupplySettings, product: { productId: number; productCode: string }): number {
  const own = settings.SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT;
  return own[String(product.productId)] ?? own[product.productCode] ?? settings.SUPPLY_MIN_DAYS_OF_COVER;
}

export const DAY_SECONDS = 86_400;
