/**
 * Dispensing rates from daily buckets (units per UTC day), and what follows from them: the baseline a surge is
 * measured against, the trend and a forecast with a band.
 *
 * - **Rate** (units a day): the mean over the last `SUPPLY_RATE_WINDOW_DAYS` complete UTC days plus today so far,
 *   `(units in those days + units today) / (days + fraction of today elapsed)`. Today counts for what has elapsed
 *   of it, so a surge shows within hours rather than the next day, and a quiet morning does not halve the rate. A
 *   series that starts inside the window (a product dispensed only recently) is averaged over the days since its
 *   first dispensing, and never over less than one day (a first sale at 00:10 is not 700 units a day).
 * - **Baseline**: the mean of the `SUPPLY_BASELINE_DAYS` complete days before the rate's window (again from the
 *   first dispensing on); none while the series is younger than the window plus a day.
 * - **Trend**: the least-squares slope of daily units over the complete days asked for (units a day, per day).
 * - **Forecast**: a level forecast at the rate, with a band of ± `SUPPLY_FORECAST_BAND_SIGMAS` standard deviations
 *   of the window's daily units (clipped at zero). No trend is extrapolated: a slope fitted on a few weeks of
 *   noisy counts overshoots more often than it helps; the trend is reported beside it instead.
 */
import { utcDay } from "../index/keys";
import { DAY_SECONDS, type DispensedByRegion, type SupplySettings } from "./model";

export interface DayUnits {
  day: string;
  units: number;
}

export interface RateFigures {
  ratePerDay: number;
  /** Null until the series is older than the rate's window plus one day. */
  baselinePerDay: number | null;
  /** Standard deviation of daily units over the window's complete days (0 with fewer than two). */
  sigmaPerDay: number;
  /** Complete days the rate is the mean of, besides today. */
  windowDays: number;
}

export interface ForecastDay {
  day: string;
  expected: number;
  low: number;
  high: number;
}

/** The UTC day `n` days after `day` (before, for negative `n`). */
export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_SECONDS * 1000).toISOString().slice(0, 10);
}

/** Whole days from `from` to `to` (negative when `to` is earlier). */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / (DAY_SECONDS * 1000));
}

/** Every day from `from` to `to` inclusive, with the units of days left out of `perDay` as 0. */
export function dailySeries(perDay: ReadonlyMap<string, number>, from: string, to: string): DayUnits[] {
  const out: DayUnits[] = [];
  for (let day = from; day <= to; day = addDays(day, 1)) out.push({ day, units: perDay.get(day) ?? 0 });
  return out;
}

/** Units per day summed over regions: the product's national series. */
export function nationalSeries(dispensed: DispensedByRegion): Map<string, number> {
  const total = new Map<string, number>();
  for (const days of dispensed.values()) for (const [day, units] of days) total.set(day, (total.get(day) ?? 0) + units);
  return total;
}

const sum = (series: readonly DayUnits[]): number => series.reduce((s, d) => s + d.units, 0);
const mean = (series: readonly DayUnits[]): number => (series.length ? sum(series) / series.length : 0);

function standardDeviation(series: readonly DayUnits[]): number {
  if (series.length < 2) return 0;
  const m = mean(series);
  return Math.sqrt(series.reduce((s, d) => s + (d.units - m) ** 2, 0) / series.length);
}

/** The first day with units dispensed, or null for a series with none. */
function firstDispensingDay(perDay: ReadonlyMap<string, number>): string | null {
  let first: string | null = null;
  for (const [day, units] of perDay) if (units > 0 && (first === null || day < first)) first = day;
  return first;
}

/** Rate, baseline and spread of a daily series as of `asOf` (unix seconds). See the file's comment. */
export function dispensingRate(
  perDay: ReadonlyMap<string, number>,
  asOf: number,
  settings: Pick<SupplySettings, "SUPPLY_RATE_WINDOW_DAYS" | "SUPPLY_BASELINE_DAYS">,
): RateFigures {
  const today = utcDay(asOf);
  const first = firstDispensingDay(perDay);
  if (first === null || first > today) return { ratePerDay: 0, baselinePerDay: null, sigmaPerDay: 0, windowDays: 0 };
  const age = daysBetween(first, today);
  const windowDays = Math.min(settings.SUPPLY_RATE_WINDOW_DAYS, age);
  const complete = windowDays > 0 ? dailySeries(perDay, addDays(today, -windowDays), addDays(today, -1)) : [];
  const elapsed = (asOf % DAY_SECONDS) / DAY_SECONDS;
  const ratePerDay = (sum(complete) + (perDay.get(today) ?? 0)) / Math.max(1, windowDays + elapsed);
  const baselineDays = Math.min(settings.SUPPLY_BASELINE_DAYS, age - windowDays);
  const baselinePerDay =
    baselineDays >= 1
      ? mean(dailySeries(perDay, addDays(today, -windowDays - baselineDays), addDays(today, -windowDays - 1)))
      : null;
  return { ratePerDay, baselinePerDay, sigmaPerDay: standardDeviation(complete), windowDays };
}

/** Least-squares slope of units over the series' days (units a day, per day); 0 with fewer than two days. */
export function trendPerDay(series: readonly DayUnits[]): number {
  const n = series.length;
  if (n < 2) return 0;
  const xMean = (n - 1) / 2;
  const yMean = mean(series);
  let num = 0;
  let den = 0;
  series.forEach((d, x) => {
    num += (x - xMean) * (d.units - yMean);
    den += (x - xMean) ** 2;
  });
  return num / den;
}

/** The next `SUPPLY_FORECAST_DAYS` days from tomorrow: the rate, ± the band. */
export function forecast(
  asOf: number,
  rate: Pick<RateFigures, "ratePerDay" | "sigmaPerDay">,
  settings: Pick<SupplySettings, "SUPPLY_FORECAST_DAYS" | "SUPPLY_FORECAST_BAND_SIGMAS">,
): ForecastDay[] {
  const today = utcDay(asOf);
  const half = settings.SUPPLY_FORECAST_BAND_SIGMAS * rate.sigmaPerDay;
  return Array.from({ length: settings.SUPPLY_FORECAST_DAYS }, (_, i) => ({
    day: addDays(today, i + 1),
    expected: rate.ratePerDay,
    low: Math.max(0, rate.ratePerDay - half),
    high: rate.ratePerDay + half,
  }));
}

/** Whether a rate is a demand surge over its baseline: `SUPPLY_SURGE_FACTOR` times it and `..._MIN_UNITS` above. */
export function isSurge(
  rate: Pick<RateFigures, "ratePerDay" | "baselinePerDay">,
  settings: Pick<SupplySettings, "SUPPLY_SURGE_FACTOR" | "SUPPLY_SURGE_MIN_UNITS_PER_DAY">,
): boolean {
  if (rate.baselinePerDay === null) return false;
  return (
    rate.ratePerDay > 0 &&
    rate.ratePerDay >= settings.SUPPLY_SURGE_FACTOR * rate.baselinePerDay &&
    rate.ratePerDay - rate.baselinePerDay >= settings.SUPPLY_SURGE_MIN_UNITS_PER_DAY
  );
}
