/**
 * Hints: what the parser noticed about a scan that a person at the counter can act on (scanner set-up, a mis-scan,
 * the wrong barcode). Each hint has a stable machine-readable `code` that clients may switch on, and an English
 * `message` for people. Hints never change a code's identity: they travel with a parse result or a
 * {@link CodeFormatError}.
 */

/** Every hint code the parser emits, plus `CAPS_LOCK_SUSPECTED` for {@link caseSwapped} results. */
export type ScanHintCode =
  | "FULL_WIDTH_NORMALISED"
  | "WEDGE_SUFFIX_STRIPPED"
  | "WHITESPACE_TRIMMED"
  | "WHITESPACE_INSIDE"
  | "SYMBOLOGY_PREFIX_STRIPPED"
  | "GS_SUBSTITUTE_READ"
  | "GS_SEPARATOR_MISSING"
  | "GS_SEPARATOR_POSSIBLY_MISSING"
  | `LENGTH_${number}_EXPECTED_20`
  | "LETTER_IN_NUMERIC_CODE"
  | "CHINESE_CODE_PREFIX_NOT_8"
  | "LOOKS_LIKE_PRODUCT_BARCODE"
  | "CAPS_LOCK_SUSPECTED";

export interface ScanHint {
  code: ScanHintCode;
  message: string;
  /** 0-based index into the normalised code (after the symbology prefix), where the hint points at one place. */
  position?: number;
  /** The GS1 Application Identifier the hint is about. */
  ai?: string;
  /** What was stripped or read: the symbology identifier (`]d2`), the GS substitute (`<GS>`), ... */
  detail?: string;
}

type Extras = Pick<ScanHint, "position" | "ai" | "detail">;

const MESSAGES: Record<Exclude<ScanHintCode, `LENGTH_${number}_EXPECTED_20`>, (e: Extras) => string> = {
  FULL_WIDTH_NORMALISED: () =>
    "full-width or other compatibility characters (e.g. from a Chinese input method) were read as plain ones",
  WEDGE_SUFFIX_STRIPPED: () => "a trailing CR, LF or Tab from the scanner was removed",
  WHITESPACE_TRIMMED: () => "spaces around the code were removed",
  WHITESPACE_INSIDE: (e) => `the code has a space inside it at character ${(e.position ?? 0) + 1}`,
  SYMBOLOGY_PREFIX_STRIPPED: (e) => `the scanner's symbology identifier ${e.detail ?? ""} was removed`,
  GS_SUBSTITUTE_READ: (e) => `${e.detail ?? "a substitute"} was read as the GS1 group separator (GS)`,
  GS_SEPARATOR_MISSING: (e) =>
    `a GS separator seems to be missing after AI (${e.ai ?? "?"})` +
    (e.position !== undefined ? `, probably before character ${e.position + 1}` : "") +
    ": check that the scanner transmits GS (FNC1)",
  GS_SEPARATOR_POSSIBLY_MISSING: (e) =>
    `AI (${e.ai ?? "?"}) could also end before character ${(e.position ?? 0) + 1} if the scanner dropped a GS ` +
    "separator: if this pack is not found, check that the scanner transmits GS (FNC1)",
  LETTER_IN_NUMERIC_CODE: (e) =>
    `a 20-digit code has the letter "${e.detail ?? "?"}" at character ${(e.position ?? 0) + 1}: a mis-scan or typo?`,
  CHINESE_CODE_PREFIX_NOT_8: () => "Chinese drug traceability codes start with 8",
  LOOKS_LIKE_PRODUCT_BARCODE: () =>
    "this looks like the product barcode (EAN/UPC/GTIN), not the pack's traceability code: scan the other barcode",
  CAPS_LOCK_SUSPECTED: () =>
    "the code is known with the case of its letters swapped: the scanner's keyboard may have CAPS LOCK on",
};

export function hint(code: ScanHintCode, extras: Extras = {}): ScanHint {
  const length = /^LENGTH_(\d+)_EXPECTED_20$/.exec(code);
  const message = length
    ? `the code has ${length[1]} digits; Chinese drug traceability codes have 20: a partial or double scan?`
    : MESSAGES[code as keyof typeof MESSAGES](extras);
  return { code, message, ...extras };
}

export function lengthHint(length: number): ScanHint {
  return hint(`LENGTH_${length}_EXPECTED_20`);
}
