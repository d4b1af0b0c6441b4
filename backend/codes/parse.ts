import { keccak256 } from "js-sha3";
import { CodeFormatError, Problem } from "./errors";
import { isDigitalLink, readBracketed, readDigitalLink, readElementString, type Gs1Reading } from "./gs1";
import { aiLength, aiSpec } from "./gs1-ai-table";
import { gs1DateIso, gs1DateTimeIso, type Gs1Element } from "./gs1-elements";
import { hint, type ScanHint } from "./hints";
import { isChineseCode, plainCodeHints, plainCodeProblem } from "./plain";
import { CODE_HASH_BYTES } from "./run";
import { GS, readScanInput, type ScanInput } from "./scan-input";

export { CODE_ERROR_REASONS, CodeFormatError, type CodeErrorReason } from "./errors";
export { gs1CheckDigitValid, gtinCheckDigitValid, type Gs1Element } from "./gs1-elements";
export type { ScanHint, ScanHintCode } from "./hints";
export { MAX_CODE_LENGTH, normaliseScan } from "./scan-input";

/**
 * A scanned traceability code reduced to the identity the ledger hashes, plus what the scan printed.
 *
 * Identities (`normalised`):
 * - `CN:<20 digits>`: a Chinese drug traceability code.
 * - `GS1:01<GTIN-14>21<serial>`: a GS1 serialised trade item, at any packaging level: a case carries a GTIN of
 *   its own whose indicator digit (the first) is 1-8 (`gtinIndicator`), the same shape of identity.
 * - `GS1:00<SSCC-18>`: a GS1 logistic unit (a pallet), identified by its SSCC alone. A symbol carrying both
 *   01+21 and 00 is identified by 01+21, with `sscc` reported beside it.
 * - `X:<code>`: any other code, exactly as scanned after normalisation.
 */
export interface ParsedCode {
  scheme: "cn20" | "gs1" | "other";
  normalised: string;
  /** China: 7-digit drug identification code. GS1: GTIN-14. */
  productCode?: string;
  serial?: string;
  lot?: string;
  /** YYYY-MM-DD from GS1 (17), day 00 meaning the last day of the month; else the date of (7003). */
  expiry?: string;
  /** GS1 (7003) expiry date and time, `YYYY-MM-DDTHH:MM`. */
  expiryTime?: string;
  /** GS1 (00) Serial Shipping Container Code. */
  sscc?: string;
  /** GS1: first digit of the GTIN-14: 0 base unit, 1-8 a packaging level above it, 9 variable measure. */
  gtinIndicator?: number;
  /** GS1: every element of the symbol in scan order, those the ledger does not use included. */
  elements?: Gs1Element[];
  /** The symbology identifier the scanner sent, e.g. `]d2`. */
  symbology?: string;
  /** What the parser noticed: scanner set-up, a likely mis-scan (see hints.ts). */
  hints: ScanHint[];
}

const GS1_KEY_START = /^(?:00\d{18}|0[1-3]\d{14})/;

function valueOf(elements: Gs1Element[], ai: string): string | undefined {
  for (const e of elements) if (e.ai === ai) return e.value;
  return undefined;
}

function gs1Code(elements: Gs1Element[], symbology: string | undefined, hints: ScanHint[]): ParsedCode | Problem {
  const gtin = valueOf(elements, "01");
  const serial = valueOf(elements, "21");
  const sscc = valueOf(elements, "00");
  let normalised: string;
  if (gtin !== undefined) {
    if (serial === undefined) {
      return new Problem("GS1_MISSING_SERIAL", "GS1 code has no serial number (AI 21): its GTIN names a product", {
        field: "21",
      });
    }
    normalised = `GS1:01${gtin}21${serial}`;
  } else if (sscc !== undefined) {
    normalised = `GS1:00${sscc}`;
  } else {
    const carried = elements.map((e) => `(${e.ai})`).join("") || "nothing";
    return new Problem("GS1_MISSING_GTIN", `GS1 code has no GTIN (AI 01) or SSCC (AI 00): it carries ${carried}`, {
      field: "01",
    });
  }
  const lot = valueOf(elements, "10");
  const useBy = valueOf(elements, "17");
  const expiryTime = valueOf(elements, "7003");
  const expiry = useBy !== undefined ? gs1DateIso(useBy) : expiryTime && gs1DateIso(expiryTime.slice(0, 6));
  return {
    scheme: "gs1",
    normalised,
    ...(gtin !== undefined ? { productCode: gtin, gtinIndicator: Number(gtin[0]) } : {}),
    ...(serial !== undefined ? { serial } : {}),
    ...(lot !== undefined ? { lot } : {}),
    ...(expiry ? { expiry } : {}),
    ...(expiryTime !== undefined ? { expiryTime: gs1DateTimeIso(expiryTime) } : {}),
    ...(sscc !== undefined ? { sscc } : {}),
    elements,
    ...(symbology !== undefined ? { symbology } : {}),
    hints,
  };
}

/** A GS1 reading made a code; problems carry the reader's hints, not yet those of normalising the input. */
function fromReading(reading: Gs1Reading | Problem, input: ScanInput): ParsedCode | Problem {
  if (reading instanceof Problem) return reading;
  const code = gs1Code(reading.elements, input.symbology, [...input.hints, ...reading.hints]);
  return code instanceof Problem ? code.after(reading.hints) : code;
}

/** Starts with an AI of predefined length, as a GS1 string whose first AI is not a key may (`17…01…21…`). */
function startsWithPredefinedAi(body: string): boolean {
  const length = aiLength(body.slice(0, 2));
  return length !== undefined && aiSpec(body.slice(0, length))?.predefinedLength === true;
}

function plainCode(body: string, input: ScanInput): ParsedCode | Problem {
  const problem = plainCodeProblem(body);
  if (problem) return problem;
  return {
    scheme: "other",
    normalised: `X:${body}`,
    ...(input.symbology !== undefined ? { symbology: input.symbology } : {}),
    hints: [...input.hints, ...plainCodeHints(body)],
  };
}

function readBody(input: ScanInput): ParsedCode | Problem {
  const { body, symbology } = input;
  if (isDigitalLink(body)) return fromReading(readDigitalLink(body), input);
  if (body[0] === "(") return fromReading(readBracketed(body), input);
  if (isChineseCode(body)) {
    return {
      scheme: "cn20",
      normalised: `CN:${body}`,
      productCode: body.slice(0, 7),
      serial: body.slice(7, 16),
      ...(symbology !== undefined ? { symbology } : {}),
      hints: input.hints,
    };
  }
  // Committed to GS1: its errors are GS1 errors, never an "other" code.
  if (input.gs1Symbology || body.includes(GS) || GS1_KEY_START.test(body)) {
    return fromReading(readElementString(body), input);
  }
  if (startsWithPredefinedAi(body)) {
    const tentative = fromReading(readElementString(body), input);
    if (!(tentative instanceof Problem)) return tentative;
  }
  return plainCode(body, input);
}

function readCode(raw: string): ParsedCode | Problem {
  const input = readScanInput(raw);
  if (input instanceof Problem) return input;
  const code = readBody(input);
  return code instanceof Problem ? code.after(input.hints) : code;
}

/**
 * Parses what a scanner sends: a Chinese 20-digit code, a GS1 element string (GS separated, with or without a
 * symbology identifier, or bracketed), a GS1 Digital Link, or another code of up to 100 characters. Input is
 * normalised first (see scan-input.ts). Throws {@link CodeFormatError} with a `reason`, and nothing else.
 */
export function parseCode(raw: string): ParsedCode {
  const code = readCode(raw);
  if (code instanceof Problem) throw CodeFormatError.from(code, raw);
  return code;
}

export type ParseOutcome = { ok: true; code: ParsedCode } | { ok: false; error: CodeFormatError };

/** {@link parseCode} without the throw, for batches of codes (a sale record lists one per pack). */
export function tryParseCode(raw: string): ParseOutcome {
  const code = readCode(raw);
  return code instanceof Problem ? { ok: false, error: CodeFormatError.from(code, raw) } : { ok: true, code };
}

/** The hints of a scan, whether it parses or not. */
export function scanHints(raw: string): ScanHint[] {
  return readCode(raw).hints;
}

function swapCase(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += String.fromCharCode((c >= 65 && c <= 90) || (c >= 97 && c <= 122) ? c ^ 0x20 : c);
  }
  return out;
}

/**
 * The same code as a keyboard-wedge scanner with CAPS LOCK on would have sent it: letter case swapped in the
 * serial and lot (GS1) or in the whole code (other codes), with a CAPS_LOCK_SUSPECTED hint; null when those hold
 * no letters. For a client that found nothing under the code as scanned: if the swapped form is known, say so,
 * never match it silently.
 */
export function caseSwapped(code: ParsedCode): ParsedCode | null {
  const hints = [...code.hints, hint("CAPS_LOCK_SUSPECTED")];
  if (code.scheme === "other") {
    const body = code.normalised.slice(2);
    const swapped = swapCase(body);
    return swapped === body ? null : { ...code, normalised: `X:${swapped}`, hints };
  }
  if (code.scheme !== "gs1" || code.productCode === undefined || code.serial === undefined) return null;
  const serial = swapCase(code.serial);
  const lot = code.lot === undefined ? undefined : swapCase(code.lot);
  if (serial === code.serial && lot === code.lot) return null;
  const elements = (code.elements ?? []).map((e) =>
    e.ai === "21" ? { ...e, value: serial } : e.ai === "10" && lot !== undefined ? { ...e, value: lot } : e,
  );
  return {
    ...code,
    normalised: `GS1:01${code.productCode}21${serial}`,
    serial,
    ...(lot !== undefined ? { lot } : {}),
    elements,
    hints,
  };
}

export const DEFAULT_CODE_HASH_DOMAIN = "drugtrace:v1";

/**
 * The 12-byte hash the ledger keeps instead of the code. `domain` separates consortia; set to a secret it also
 * stops anyone who reads the chain from testing guessed codes against it.
 */
export function codeHash(normalised: string, domain: string = DEFAULT_CODE_HASH_DOMAIN): Buffer {
  // js-sha3 rather than ethers' keccak256 (@noble/hashes): the same Keccak-256, about 2.5× faster on inputs this
  // short, and no hex string round trip; every scan and claim line hashes its code.
  return Buffer.from(keccak256.arrayBuffer(`${domain}|${normalised}`), 0, CODE_HASH_BYTES);
}
