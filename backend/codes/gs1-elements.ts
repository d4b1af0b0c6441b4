import { Problem } from "./errors";
import type { AiComponent, AiSpec, CharacterSet } from "./gs1-ai-table";

/** One GS1 element as scanned: the AI, its value (percent-decoded for Digital Links) and GS1's data title. */
export interface Gs1Element {
  ai: string;
  value: string;
  title: string;
  /** Measures and amounts (31nn-36nn, 39nn): implied decimal places, e.g. (3103) 001250 = 1.250 kg. */
  decimals?: number;
}

const N = 1;
const X = 2;
const Y = 4;
const Z = 8;
const CHARSET_BIT: Record<CharacterSet, number> = { N, X, Y, Z };

/** Bit set per ASCII character: N digits, X CSET 82, Y CSET 39, Z URL-safe base64 (GS1 General Specs 7.11). */
const CHARSETS = new Uint8Array(128);
function allow(chars: string, bits: number): void {
  for (const c of chars) CHARSETS[c.charCodeAt(0)]! |= bits;
}
const DIGITS = "0123456789";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
allow(DIGITS, N | X | Y | Z);
allow(UPPER, X | Y | Z);
allow(LOWER, X | Z);
allow("!\"%&'()*+,-./:;<=>?_", X);
allow("#-/", Y);
allow("-_=", Z);

export function inCset82(code: number): boolean {
  return code < 128 && (CHARSETS[code]! & X) !== 0;
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return s.length > 0;
}

/** GS1 mod-10 check digit over a key of any length (GTIN, SSCC, GLN, GSRN, ...): weights 3,1,3,... from the right. */
export function gs1CheckDigitValid(digits: string): boolean {
  if (digits.length < 2 || !isDigits(digits)) return false;
  let sum = 0;
  for (let i = digits.length - 2, weight = 3; i >= 0; i--, weight = 4 - weight)
    sum += (digits.charCodeAt(i) - 48) * weight;
  return (10 - (sum % 10)) % 10 === digits.charCodeAt(digits.length - 1) - 48;
}

export function gtinCheckDigitValid(gtin: string): boolean {
  return gtin.length === 14 && gs1CheckDigitValid(gtin);
}

const two = (s: string, at: number) => (s.charCodeAt(at) - 48) * 10 + (s.charCodeAt(at + 1) - 48);

/** GS1 General Specifications 7.12 reads YY with a sliding window; here, as the ledger always did: 51-99 = 19YY. */
function centuryOf(yy: number): number {
  return yy >= 51 ? 1900 + yy : 2000 + yy;
}

function lastDayOfMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

interface CalendarDate {
  year: number;
  month: number;
  day: number;
}

/** A date's fields, or a message saying what is wrong. `zeroDay`: day 00 is allowed and means the month's last day. */
function readDate(digits: string, fullYear: boolean, zeroDay: boolean): CalendarDate | string {
  const year = fullYear ? two(digits, 0) * 100 + two(digits, 2) : centuryOf(two(digits, 0));
  const at = fullYear ? 4 : 2;
  const month = two(digits, at);
  const day = two(digits, at + 2);
  if (month < 1 || month > 12) return `has month ${month}`;
  const last = lastDayOfMonth(year, month);
  if (day === 0 && zeroDay) return { year, month, day: last };
  if (day < 1 || day > last) return `has day ${day} in month ${month}`;
  return { year, month, day };
}

const pad2 = (n: number) => String(n).padStart(2, "0");

function isoDate(d: CalendarDate): string {
  return `${d.year}-${pad2(d.month)}-${pad2(d.day)}`;
}

/** ISO date of a validated YYMMDD value; day 00 reads as the last day of the month. */
export function gs1DateIso(yymmdd: string): string {
  return isoDate(readDate(yymmdd, false, true) as CalendarDate);
}

/** `YYYY-MM-DDTHH:MM` of a validated (7003) YYMMDDHHMM value. */
export function gs1DateTimeIso(yymmddhhmm: string): string {
  return `${gs1DateIso(yymmddhhmm.slice(0, 6))}T${yymmddhhmm.slice(6, 8)}:${yymmddhhmm.slice(8, 10)}`;
}

type Check = (part: string) => string | undefined;
type CheckKind = "date" | "checkDigit" | "value";

function dateCheck(fullYear: boolean, zeroDay: boolean): Check {
  return (part) => {
    const d = readDate(part, fullYear, zeroDay);
    return typeof d === "string" ? d : undefined;
  };
}

function rangeCheck(max: number, what: string): Check {
  return (part) => (Number(part) > max ? `has ${what} ${part}` : undefined);
}

/**
 * The dictionary's linters this parser applies. Not applied (the value's format is still checked): country,
 * currency and IBAN lists (iso3166, iso3166999, iso3166alpha2, iso4217, iban), GMN check characters (csumalpha),
 * coupon layouts (couponcode, couponposoffer), importeridx, packagetype, posinseqslash, mediatype.
 */
const CHECKS: Record<string, { kind: CheckKind; check: Check }> = {
  csum: { kind: "checkDigit", check: (p) => (gs1CheckDigitValid(p) ? undefined : "fails its check digit") },
  yymmd0: { kind: "date", check: dateCheck(false, true) },
  yymmdd: { kind: "date", check: dateCheck(false, false) },
  yyyymmdd: { kind: "date", check: dateCheck(true, false) },
  hhmi: { kind: "date", check: (p) => rangeCheck(23, "hour")(p.slice(0, 2)) ?? rangeCheck(59, "minute")(p.slice(2)) },
  hh: { kind: "date", check: rangeCheck(23, "hour") },
  mi: { kind: "date", check: rangeCheck(59, "minute") },
  ss: { kind: "date", check: rangeCheck(59, "second") },
  nonzero: { kind: "value", check: (p) => (/^0+$/.test(p) ? "must not be zero" : undefined) },
  zero: { kind: "value", check: (p) => (p === "0" ? undefined : "must start with 0") },
  winding: {
    kind: "value",
    check: (p) => ("019".includes(p) ? undefined : "has a winding direction other than 0, 1, 9"),
  },
  yesno: { kind: "value", check: (p) => (p === "0" || p === "1" ? undefined : "must be 0 or 1") },
  iso5218: { kind: "value", check: (p) => ("0129".includes(p) ? undefined : "has a sex code other than 0, 1, 2, 9") },
  hyphen: { kind: "value", check: (p) => (p === "-" ? undefined : "may only end in -") },
  hasnondigit: { kind: "value", check: (p) => (isDigits(p) ? "must contain a non-digit" : undefined) },
  nozeroprefix: { kind: "value", check: (p) => (p.length > 1 && p[0] === "0" ? "must not start with 0" : undefined) },
  pieceoftotal: {
    kind: "value",
    check: (p) => {
      const piece = two(p, 0);
      const total = two(p, 2);
      return piece >= 1 && total >= 1 && piece <= total ? undefined : `has piece ${piece} of ${total}`;
    },
  },
  pcenc: { kind: "value", check: (p) => (/%(?![0-9A-Fa-f]{2})/.test(p) ? "has a bad percent-escape" : undefined) },
  latitude: { kind: "value", check: rangeCheck(1_800_000_000, "latitude") },
  longitude: { kind: "value", check: rangeCheck(3_600_000_000, "longitude") },
};

const REASON_OF_KIND = { date: "GS1_BAD_DATE", checkDigit: "GS1_CHECK_DIGIT", value: "GS1_BAD_VALUE" } as const;

function checkComponent(ai: string, c: AiComponent, part: string, at: number | undefined): Problem | undefined {
  const bit = CHARSET_BIT[c.charset];
  for (let i = 0; i < part.length; i++) {
    const code = part.charCodeAt(i);
    if (code >= 128 || (CHARSETS[code]! & bit) === 0) {
      const expected = c.charset === "N" ? "digits only" : `only GS1 ${c.charset === "Y" ? "CSET 39" : "CSET 82"}`;
      return new Problem("GS1_BAD_CHARACTERS", `GS1 AI (${ai}) has "${part[i]}": it allows ${expected}`, {
        field: ai,
        ...(at !== undefined ? { position: at + i } : {}),
      });
    }
  }
  for (const name of c.checks) {
    const linter = CHECKS[name];
    const wrong = linter?.check(part);
    if (linter && wrong !== undefined) {
      return new Problem(REASON_OF_KIND[linter.kind], `GS1 AI (${ai}) ${part} ${wrong}`, {
        field: ai,
        ...(at !== undefined ? { position: at } : {}),
      });
    }
  }
  return undefined;
}

/**
 * Checks a value against its AI's format: length, character set per component, check digits, dates and the other
 * linters above. `at` is where the value starts in the normalised code, for positions in problems (none for
 * Digital Links, whose values were percent-decoded).
 */
export function checkValue(spec: AiSpec, value: string, at?: number): Problem | undefined {
  const ai = spec.ai;
  if (value.length === 0) return new Problem("GS1_BAD_VALUE", `GS1 AI (${ai}) is empty`, { field: ai });
  if (value.length > spec.maxLength) {
    return new Problem(
      "GS1_VALUE_TOO_LONG",
      `GS1 AI (${ai}) is longer than ${spec.maxLength} characters (${value.length}; format ${spec.format})`,
      { field: ai },
    );
  }
  let offset = 0;
  for (const c of spec.components) {
    const left = value.length - offset;
    if (left === 0 && c.optional) break;
    if (left < c.min) {
      return new Problem(
        "GS1_VALUE_TOO_SHORT",
        `GS1 AI (${ai}) has ${value.length} characters, which do not fill its format ${spec.format}`,
        { field: ai },
      );
    }
    const part = value.slice(offset, offset + Math.min(left, c.max));
    const problem = checkComponent(ai, c, part, at === undefined ? undefined : at + offset);
    if (problem) return problem;
    offset += part.length;
  }
  return undefined;
}
