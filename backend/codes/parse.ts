import { keccak256, toUtf8Bytes } from "ethers";
import { CODE_HASH_BYTES } from "./run";

/** A scanned traceability code reduced to the identity the ledger hashes, plus what the scan printed. */
export interface ParsedCode {
  scheme: "cn20" | "gs1" | "other";
  /** Identity string that is hashed: `CN:<20 digits>`, `GS1:01<gtin>21<serial>`, or `X:<code>`. */
  normalised: string;
  /** China: 7-digit drug identification code. GS1: GTIN-14. */
  productCode?: string;
  serial?: string;
  lot?: string;
  /** YYYY-MM-DD; GS1 day 00 means the last day of the month. */
  expiry?: string;
}

export class CodeFormatError extends Error {
  constructor(
    message: string,
    readonly input: string,
  ) {
    super(message);
    this.name = "CodeFormatError";
  }
}

const GS = "\u001d";
const MAX_CODE_LENGTH = 100;
const SYMBOLOGY_PREFIX = /^\][A-Za-z][0-9A-Za-z]/;
/** AIs a drug pack carries: fixed-length ones with their length, variable-length ones with their maximum. */
const FIXED_AIS: Record<string, number> = { "01": 14, "11": 6, "17": 6 };
const VARIABLE_AIS: Record<string, number> = { "10": 20, "21": 20 };
const GS1_CHARSET = /^[!-"%-?A-Z_a-z]+$/;

export function gtinCheckDigitValid(gtin: string): boolean {
  if (!/^\d{14}$/.test(gtin)) return false;
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += Number(gtin[i]) * (i % 2 === 0 ? 3 : 1);
  return (10 - (sum % 10)) % 10 === Number(gtin[13]);
}

function gs1Date(yymmdd: string, input: string): string {
  if (!/^\d{6}$/.test(yymmdd)) throw new CodeFormatError(`GS1 date must be YYMMDD, got "${yymmdd}"`, input);
  const yy = Number(yymmdd.slice(0, 2));
  const mm = Number(yymmdd.slice(2, 4));
  let dd = Number(yymmdd.slice(4, 6));
  if (mm < 1 || mm > 12) throw new CodeFormatError(`GS1 date has month ${mm}`, input);
  // GS1 General Specifications 7.12: years 00-49 (relative to the current century) read as 20xx here.
  const year = yy >= 51 ? 1900 + yy : 2000 + yy;
  const lastDay = new Date(Date.UTC(year, mm, 0)).getUTCDate();
  if (dd === 0) dd = lastDay;
  if (dd > lastDay) throw new CodeFormatError(`GS1 date has day ${dd} in month ${mm}`, input);
  return `${year}-${String(mm).padStart(2, "0")}-${String(dd).padStart(2, "0")}`;
}

function fromElements(elements: Map<string, string>, input: string): ParsedCode {
  const gtin = elements.get("01");
  const serial = elements.get("21");
  if (!gtin) throw new CodeFormatError("GS1 code has no GTIN (AI 01)", input);
  if (!gtinCheckDigitValid(gtin)) throw new CodeFormatError(`GTIN ${gtin} fails its check digit`, input);
  if (!serial) throw new CodeFormatError("GS1 code has no serial number (AI 21)", input);
  const lot = elements.get("10");
  const expiry = elements.get("17");
  return {
    scheme: "gs1",
    normalised: `GS1:01${gtin}21${serial}`,
    productCode: gtin,
    serial,
    ...(lot !== undefined ? { lot } : {}),
    ...(expiry !== undefined ? { expiry: gs1Date(expiry, input) } : {}),
  };
}

function putElement(elements: Map<string, string>, ai: string, value: string, input: string): void {
  if (elements.has(ai)) throw new CodeFormatError(`GS1 AI (${ai}) appears twice`, input);
  if (value.length === 0) throw new CodeFormatError(`GS1 AI (${ai}) is empty`, input);
  if (!GS1_CHARSET.test(value)) throw new CodeFormatError(`GS1 AI (${ai}) has characters outside GS1's set`, input);
  elements.set(ai, value);
}

/** Element string with FNC1/GS separators: `01…21…<GS>10…<GS>17…`, AIs in any order. */
function parseElementString(body: string, input: string): ParsedCode {
  const elements = new Map<string, string>();
  let i = 0;
  while (i < body.length) {
    if (body[i] === GS) {
      i++;
      continue;
    }
    const ai = body.slice(i, i + 2);
    i += 2;
    const fixed = FIXED_AIS[ai];
    const max = VARIABLE_AIS[ai];
    if (fixed !== undefined) {
      const value = body.slice(i, i + fixed);
      if (value.length !== fixed || !/^\d+$/.test(value)) {
        throw new CodeFormatError(`GS1 AI (${ai}) needs ${fixed} digits`, input);
      }
      putElement(elements, ai, value, input);
      i += fixed;
    } else if (max !== undefined) {
      const end = body.indexOf(GS, i);
      const value = body.slice(i, end === -1 ? body.length : end);
      if (value.length > max) {
        throw new CodeFormatError(
          `GS1 AI (${ai}) is longer than ${max} characters: is a GS separator missing after it?`,
          input,
        );
      }
      putElement(elements, ai, value, input);
      i = end === -1 ? body.length : end;
    } else {
      throw new CodeFormatError(`unsupported GS1 AI (${ai})`, input);
    }
  }
  return fromElements(elements, input);
}

/** Human-readable form: `(01)…(21)…(10)…(17)…`. */
function parseBracketed(body: string, input: string): ParsedCode {
  const elements = new Map<string, string>();
  const re = /\((\d{2,4})\)([^(]*)/g;
  let consumed = 0;
  for (const m of body.matchAll(re)) {
    if (m.index !== consumed) throw new CodeFormatError("unexpected text between GS1 elements", input);
    consumed += m[0].length;
    const ai = m[1]!;
    const value = m[2]!;
    if (FIXED_AIS[ai] === undefined && VARIABLE_AIS[ai] === undefined) {
      throw new CodeFormatError(`unsupported GS1 AI (${ai})`, input);
    }
    if (FIXED_AIS[ai] !== undefined && value.length !== FIXED_AIS[ai]) {
      throw new CodeFormatError(`GS1 AI (${ai}) needs ${FIXED_AIS[ai]} digits`, input);
    }
    if (VARIABLE_AIS[ai] !== undefined && value.length > VARIABLE_AIS[ai]!) {
      throw new CodeFormatError(`GS1 AI (${ai}) is longer than ${VARIABLE_AIS[ai]} characters`, input);
    }
    putElement(elements, ai, value, input);
  }
  if (consumed !== body.length) throw new CodeFormatError("unexpected text after GS1 elements", input);
  return fromElements(elements, input);
}

/** GS1 Digital Link: `https://any.host/01/{gtin}/10/{lot}/21/{serial}?17={YYMMDD}`. */
function parseDigitalLink(body: string, input: string): ParsedCode {
  let url: URL;
  try {
    url = new URL(body);
  } catch {
    throw new CodeFormatError("not a valid GS1 Digital Link URL", input);
  }
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const start = parts.indexOf("01");
  if (start === -1) throw new CodeFormatError("GS1 Digital Link has no /01/{GTIN} path", input);
  const elements = new Map<string, string>();
  for (let i = start; i + 1 < parts.length; i += 2) putElement(elements, parts[i]!, parts[i + 1]!, input);
  for (const [key, value] of url.searchParams)
    if (key === "17" || key === "10") putElement(elements, key, value, input);
  return fromElements(elements, input);
}

/**
 * Parses what a scanner sends: a Chinese 20-digit code, a GS1 element string (with GS separators, optional
 * symbology identifier, or in bracketed form), a GS1 Digital Link, or another code of up to 100 characters.
 */
export function parseCode(raw: string): ParsedCode {
  const input = raw;
  let body = raw.trim().replace(/\r|\n/g, "");
  if (body.length === 0) throw new CodeFormatError("empty code", input);
  if (body.length > MAX_CODE_LENGTH + 3)
    throw new CodeFormatError(`code longer than ${MAX_CODE_LENGTH} characters`, input);
  if (/^https?:\/\//i.test(body)) return parseDigitalLink(body, input);
  const symbology = SYMBOLOGY_PREFIX.exec(body)?.[0];
  if (symbology) body = body.slice(symbology.length);
  if (body.startsWith(GS)) body = body.slice(1);
  if (body.startsWith("(")) return parseBracketed(body, input);
  if (/^\d{20}$/.test(body)) {
    if (body[0] !== "8") throw new CodeFormatError("a 20-digit drug traceability code starts with 8", input);
    return { scheme: "cn20", normalised: `CN:${body}`, productCode: body.slice(0, 7), serial: body.slice(7, 16) };
  }
  if (symbology === "]d2" || symbology === "]C1" || body.includes(GS) || /^01\d{14}(10|11|17|21)/.test(body)) {
    return parseElementString(body, input);
  }
  if (body.length > MAX_CODE_LENGTH) throw new CodeFormatError(`code longer than ${MAX_CODE_LENGTH} characters`, input);
  if (!/^[\x21-\x7e]+$/.test(body))
    throw new CodeFormatError("code has characters that are not printable ASCII", input);
  return { scheme: "other", normalised: `X:${body}` };
}

export const DEFAULT_CODE_HASH_DOMAIN = "drugtrace:v1";

/**
 * The 12-byte hash the ledger keeps instead of the code. `domain` separates consortia; set to a secret it also
 * stops anyone who reads the chain from testing guessed codes against it.
 */
export function codeHash(normalised: string, domain: string = DEFAULT_CODE_HASH_DOMAIN): Buffer {
  const digest = keccak256(toUtf8Bytes(`${domain}|${normalised}`));
  return Buffer.from(digest.slice(2, 2 + CODE_HASH_BYTES * 2), "hex");
}
