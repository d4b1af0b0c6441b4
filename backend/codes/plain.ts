import { Problem } from "./errors";
import { gs1CheckDigitValid } from "./gs1-elements";
import { hint, lengthHint, type ScanHint } from "./hints";

/**
 * Codes outside GS1: the Chinese 20-digit drug traceability code (码上放心, NMPAB/T 1002-2019: digits 1-7 the drug
 * identification code, 8-16 the unit serial, 17-20 check digits nobody outside the platform can verify; valid codes
 * start with 8) and manufacturer-defined codes, which circulate in lengths up to the 100 characters the insurance
 * record holds.
 */
const CHINESE_CODE_LENGTH = 20;

function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isLetterCode(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function allDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isDigitCode(s.charCodeAt(i))) return false;
  return true;
}

export function isChineseCode(body: string): boolean {
  return body.length === CHINESE_CODE_LENGTH && body[0] === "8" && allDigits(body);
}

/**
 * Characters a manufacturer-defined code may hold: ASCII letters, digits, `-`, `.` and `_`, what such codes use in
 * practice. Everything else (spaces, quotes, slashes, angle brackets, `%`, `;`, non-ASCII) is refused, which also
 * turns away path-traversal and injection strings as plain bad characters.
 */
function allowedInPlainCode(c: number): boolean {
  return isDigitCode(c) || isLetterCode(c) || c === 45 || c === 46 || c === 95;
}

export function plainCodeProblem(body: string): Problem | undefined {
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (allowedInPlainCode(c)) continue;
    const shown = c < 0x20 || c === 0x7f ? `0x${c.toString(16).padStart(2, "0")}` : `"${body[i]}"`;
    return new Problem(
      "BAD_CHARACTERS",
      `code has ${shown} at character ${i + 1}: codes outside GS1 hold letters, digits, "-", "." and "_"`,
      { position: i, ...(c === 0x20 ? { hints: [hint("WHITESPACE_INSIDE", { position: i })] } : {}) },
    );
  }
  return undefined;
}

/** An EAN-8, UPC-A, EAN-13 or ITF-14 product barcode: the box's other barcode, scanned by mistake. */
function looksLikeProductBarcode(digits: string): boolean {
  return [8, 12, 13, 14].includes(digits.length) && gs1CheckDigitValid(digits);
}

/** What a code outside GS1 suggests about a mis-scan of a Chinese code. */
export function plainCodeHints(body: string): ScanHint[] {
  const hints: ScanHint[] = [];
  if (allDigits(body)) {
    if (body.length !== CHINESE_CODE_LENGTH) hints.push(lengthHint(body.length));
    if (looksLikeProductBarcode(body)) hints.push(hint("LOOKS_LIKE_PRODUCT_BARCODE"));
    else if (Math.abs(body.length - CHINESE_CODE_LENGTH) <= 2 && body[0] !== "8") {
      hints.push(hint("CHINESE_CODE_PREFIX_NOT_8"));
    }
    return hints;
  }
  if (body.length !== CHINESE_CODE_LENGTH) return hints;
  const letters: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (isLetterCode(c)) letters.push(i);
    else if (!isDigitCode(c)) return hints;
  }
  // A digit or three misread in a 20-digit code; more letters than that is a code of its own.
  if (letters.length > 3) return hints;
  for (const position of letters) hints.push(hint("LETTER_IN_NUMERIC_CODE", { position, detail: body[position]! }));
  if (isDigitCode(body.charCodeAt(0)) && body[0] !== "8") hints.push(hint("CHINESE_CODE_PREFIX_NOT_8"));
  return hints;
}
