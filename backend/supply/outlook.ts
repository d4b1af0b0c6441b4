/**
 * A product's supply outlook, per region and nationally, composed from `rates.ts` and `stock.ts`: what the
 * overview table, the outlook chart and the supply alerts show. Figures are rounded to two decimals here, after
 * risk and surge are decided on the exact values.
 */
import { utcDay } from "../index/keys";
import { type ProductInputs, type SupplySettings, thresholdDays } from "./model";
import {
  addDays,
  dailySeries,
  type DayUnits,
  dispensingRate,
  forecast,
  type ForecastDay,
  isSurge,
  nationalSeries,
  trendPerDay,
} from "./rates";
import {
  coverUnits,
  emptyStock,
  daysOfCover,
  expiryRisk,
  type ExpiryRisk,
  inTransitUnits,
  type Risk,
  riskOf,
  type StockByRole,
  stockByRegion,
  suggestSources,
  surplusUnits,
  type SupplySource,
} from "./stock";

export interface RegionOutlook {
  region: string;
  stock: StockByRole;
  ratePerDay: number;
  baselinePerDay: number | null;
  daysOfCover: number | null;
  risk: Risk;
  surge: boolean;
  surplusUnits: number;
}

export interface ProductSummary {
  productId: number;
  productCode: string;
  name: string;
  manufacturerId: number;
  thresholdDays: number;
  /** Units in transit between holders, all of them (each region's `stock.inTransit` is what is bound for it). */
  inTransit: number;
  regions: RegionOutlook[];
}

export interface ProductOutlook extends ProductSummary {
  /** National units dispensed per UTC day over the days asked for, today last (so far). */
  perDay: DayUnits[];
  ratePerDay: number;
  trendPerDay: number;
  forecast: ForecastDay[];
  method: string;
  sources: SupplySource[];
  expiryRisk: ExpiryRisk[];
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
const round2OrNull = (n: number | null): number | null => (n === null ? null : round2(n));

/** Every region the product is held or dispensed in, with its stock, rate, cover, risk and surge. */
export function regionOutlooks(inputs: ProductInputs, settings: SupplySettings, asOf: number): RegionOutlook[] {
  const threshold = thresholdDays(settings, inputs);
  const stocks = stockByRegion(inputs, asOf);
  const names = [...new Set([...stocks.keys(), ...inputs.dispensed.keys()])].sort((a, b) => a.localeCompare(b));
  return names.map((region) => {
    const stock = stocks.get(region) ?? emptyStock();
    const rate = dispensingRate(inputs.dispensed.get(region) ?? new Map(), asOf, settings);
    const units = coverUnits(stock);
    const cover = daysOfCover(units, rate.ratePerDay);
    return {
      region,
      stock,
      ratePerDay: round2(rate.ratePerDay),
      baselinePerDay: round2OrNull(rate.baselinePerDay),
      daysOfCover: round2OrNull(cover),
      risk: riskOf(cover, threshold, settings),
      surge: isSurge(rate, settings),
      surplusUnits: surplusUnits(stock, rate.ratePerDay, threshold),
    };
  });
}

export function productSummary(inputs: ProductInputs, settings: SupplySettings, asOf: number): ProductSummary {
  return {
    productId: inputs.productId,
    productCode: inputs.productCode,
    name: inputs.name,
    manufacturerId: inputs.manufacturerId,
    thresholdDays: thresholdDays(settings, inputs),
    inTransit: inTransitUnits(inputs.batches),
    regions: regionOutlooks(inputs, settings, asOf),
  };
}

/** How the figures are made, for the reader of a chart (the README's supply section says it at length). */
export function methodOf(settings: SupplySettings): string {
  return (
    `rate: units dispensed in the last ${settings.SUPPLY_RATE_WINDOW_DAYS} complete UTC days and today so far, ` +
    `per day elapsed; baseline: the ${settings.SUPPLY_BASELINE_DAYS} days before; surge: rate ≥ ` +
    `${settings.SUPPLY_SURGE_FACTOR}× baseline and ≥ ${settings.SUPPLY_SURGE_MIN_UNITS_PER_DAY} units/day above it; ` +
    `forecast: the rate, band ± ${settings.SUPPLY_FORECAST_BAND_SIGMAS} σ of daily units in the rate's window; ` +
    `days of cover: (usable units at the region's distributors and pharmacies + usable units in transit to them) ` +
    `/ its rate`
  );
}

/** The outlook of one product over the last `days` UTC days (today included) and the forecast ahead. */
export function productOutlook(
  inputs: ProductInputs,
  settings: SupplySettings,
  asOf: number,
  days: number,
): ProductOutlook {
  const summary = productSummary(inputs, settings, asOf);
  const national = nationalSeries(inputs.dispensed);
  const today = utcDay(asOf);
  const perDay = dailySeries(national, addDays(today, -(days - 1)), today);
  const rate = dispensingRate(national, asOf, settings);
  const exactRates = new Map(
    [...inputs.dispensed].map(([region, series]) => [region, dispensingRate(series, asOf, settings).ratePerDay]),
  );
  return {
    ...summary,
    perDay,
    ratePerDay: round2(rate.ratePerDay),
    // The last day is today, still going: the trend is fitted on complete days only.
    trendPerDay: round2(trendPerDay(perDay.slice(0, -1))),
    forecast: forecast(asOf, rate, settings).map((d) => ({
      day: d.day,
      expected: round2(d.expected),
      low: round2(d.low),
      high: round2(d.high),
    })),
    method: methodOf(settings),
    sources: suggestSources(inputs, summary.regions, asOf),
    expiryRisk: expiryRisk(inputs, { byRegion: exactRates, national: rate.ratePerDay }, asOf, settings),
  };
}
