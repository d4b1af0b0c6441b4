/** Instants as the API writes them (ISO 8601, UTC). */

export const DAY_SECONDS = 86_400;
const TWO_DIGITS = Array.from({ length: 60 }, (_, n) => String(n).padStart(2, "0"));
/** 10000-01-01T00:00:00Z: from then on toISOString writes a six-digit signed year. */
const YEAR_10000 = 253_402_300_800;

/**
 * `new Date(seconds * 1000).toISOString()`, laid out by hand for whole seconds of 1970-9999 (block times, expiries):
 * a claim line writes two or three instants and a scan several, and a Date per instant was a hot spot of both. Other values take
 * the Date path, so every answer (and every RangeError) stays as it was.
 */
export function iso(seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds >= YEAR_10000) return new Date(seconds * 1000).toISOString();
  const days = Math.floor(seconds / DAY_SECONDS);
  const inDay = seconds - days * DAY_SECONDS;
  // Days to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"): eras of 400 years from 0000-03-01.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const marchMonth = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * marchMonth + 2) / 5) + 1;
  const month = marchMonth < 10 ? marchMonth + 3 : marchMonth - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(inDay / 3600);
  const minutes = Math.floor((inDay % 3600) / 60);
  return `${year}-${TWO_DIGITS[month]}-${TWO_DIGITS[day]}T${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[inDay % 60]}.000Z`;
}
