import { Problem } from "./errors";
import { hint, type ScanHint } from "./hints";

/**
 * What a scanner or a person sends, reduced to the code it carries.
 *
 * - Unicode NFKC: full-width digits and letters and the ideographic space of Chinese input methods read as ASCII.
 * - Surrounding whitespace, including the CR, LF or Tab suffix keyboard-wedge scanners add, is removed.
 * - A symbology identifier (ISO/IEC 15424: `]` + symbology letter + modifier, e.g. `]d2`, `]C1`, `]Q3`, `]E0`) is
 *   removed and remembered: `]C1` GS1-128, `]d2` `]d5` GS1 DataMatrix, `]Q3` `]Q4` GS1 QR, `]e0` GS1 DataBar and
 *   `]J1` GS1 DotCode announce a GS1 element string.
 * - GS (0x1D, FNC1) separates variable-length GS1 fields. In a string that starts like a GS1 element string (a
 *   digit, or `(` for the bracketed form) these stand-ins that scanners and people send are read as GS:
 *   `<GS>` `[GS]` `{GS}` `<FNC1>` `[FNC1]` `{FNC1}` (any case), `^]` (caret notation of Ctrl-]), `\x1d` `\u001d`
 *   typed out, U+241D `␝`, and `~`, a common configured replacement. All but `<GS>`/`<FNC1>` use characters that
 *   GS1's CSET 82 does not allow in values, so they cannot be data; `<GS>` could in theory, never in practice.
 *   Digital Link URLs are left alone (`~` is a legal URL character). A GS at the very start (FNC1 in first
 *   position, sent by some scanners) is dropped.
 * Then the input is refused if it holds a NUL byte, a control character other than GS, or more than 100 characters.
 */
export const MAX_CODE_LENGTH = 100;
/** Longer raw input is refused before any work: no code, however padded, comes near it. */
const MAX_RAW_LENGTH = 1024;
export const GS = "\u001d";

const GS1_SYMBOLOGIES = new Set(["]C1", "]d2", "]d5", "]Q3", "]Q4", "]e0", "]J1"]);
const GS_SUBSTITUTES = /<(?:GS|FNC1)>|\[(?:GS|FNC1)\]|\{(?:GS|FNC1)\}|\^\]|\\x1d|\\u001d|\u241d|~/gi;

export interface ScanInput {
  /** The code without symbology identifier, surrounding whitespace or leading GS; GS stand-ins read as GS. */
  body: string;
  /** The symbology identifier the scanner sent, e.g. `]d2`. */
  symbology?: string;
  /** The symbology identifier announces GS1 data. */
  gs1Symbology: boolean;
  hints: ScanHint[];
}

/** True when the string holds only printable ASCII, Tab, CR, LF and GS: NFKC would leave it unchanged. */
function plainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7e || (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x1d)) return false;
  }
  return true;
}

function isAlphanumeric(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function symbologyLength(s: string): number {
  return s.length >= 3 && s[0] === "]" && isAlphanumeric(s.charCodeAt(1)) && isAlphanumeric(s.charCodeAt(2)) ? 3 : 0;
}

function trimHints(before: string, trimmed: string, hints: ScanHint[]): void {
  if (trimmed.length === before.length) return;
  const start = before.indexOf(trimmed);
  const leading = before.slice(0, start);
  const trailing = before.slice(start + trimmed.length);
  if (/[\r\n\t]/.test(trailing)) hints.push(hint("WEDGE_SUFFIX_STRIPPED"));
  if (leading.length > 0 || /[^\r\n\t]/.test(trailing)) hints.push(hint("WHITESPACE_TRIMMED"));
}

/** Drops GS (FNC1 in first position) and whitespace before the code proper. */
function stripLeadingGs(s: string): string {
  let i = 0;
  while (i < s.length && (s.charCodeAt(i) === 0x1d || s[i]!.trim() === "")) i++;
  return i === 0 ? s : s.slice(i);
}

function startsLikeElementString(s: string): boolean {
  const c = s.charCodeAt(0);
  return (c >= 48 && c <= 57) || c === 40; // a digit, or "(" of the bracketed form
}

function readGsSubstitutes(body: string, hints: ScanHint[]): string {
  GS_SUBSTITUTES.lastIndex = 0;
  if (!GS_SUBSTITUTES.test(body)) return body;
  const read = stripLeadingGs(body.replace(GS_SUBSTITUTES, GS));
  if (!startsLikeElementString(read)) return body;
  GS_SUBSTITUTES.lastIndex = 0;
  const first = GS_SUBSTITUTES.exec(body)![0];
  hints.push(hint("GS_SUBSTITUTE_READ", { detail: first }));
  return read;
}

function normaliseParts(raw: string): ScanInput {
  const hints: ScanHint[] = [];
  let text = raw;
  if (!plainAscii(text)) {
    text = text.normalize("NFKC");
    if (text !== raw) hints.push(hint("FULL_WIDTH_NORMALISED"));
  }
  const trimmed = text.trim();
  trimHints(text, trimmed, hints);
  const start = stripLeadingGs(trimmed);
  const prefix = symbologyLength(start);
  const symbology = prefix > 0 ? start.slice(0, prefix) : undefined;
  if (symbology !== undefined) hints.push(hint("SYMBOLOGY_PREFIX_STRIPPED", { detail: symbology }));
  const body = readGsSubstitutes(prefix > 0 ? stripLeadingGs(start.slice(prefix)) : start, hints);
  return {
    body,
    ...(symbology !== undefined ? { symbology } : {}),
    gs1Symbology: symbology !== undefined && GS1_SYMBOLOGIES.has(symbology),
    hints,
  };
}

/**
 * The canonical text of a scan: what {@link parseCode} reads, with the symbology identifier kept, so that
 * `parseCode(normaliseScan(x))` reads the same code as `parseCode(x)`. Never throws.
 */
export function normaliseScan(raw: string): string {
  const parts = normaliseParts(raw);
  return (parts.symbology ?? "") + parts.body;
}

function controlCharacterAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x1d) || (c >= 0x7f && c <= 0x9f)) return i;
  }
  return -1;
}

/** Normalises a scan and refuses what no code can be: empty, NUL bytes, control characters, too long. */
export function readScanInput(raw: string): ScanInput | Problem {
  if (raw.length > MAX_RAW_LENGTH) {
    return new Problem("TOO_LONG", `code longer than ${MAX_CODE_LENGTH} characters (${raw.length} received)`);
  }
  if (raw.includes("\0")) return new Problem("NUL_BYTE", "code contains a NUL byte");
  const input = normaliseParts(raw);
  const { body, hints } = input;
  if (body.length === 0) {
    return new Problem("EMPTY", input.symbology ? "empty code after the symbology identifier" : "empty code", {
      hints,
    });
  }
  if (body.length > MAX_CODE_LENGTH) {
    return new Problem("TOO_LONG", `code longer than ${MAX_CODE_LENGTH} characters (${body.length})`, { hints });
  }
  const control = controlCharacterAt(body);
  if (control !== -1) {
    const c = body.charCodeAt(control);
    const what = c === 0x0a || c === 0x0d ? "a line break: two scans in one input?" : `control character ${hex(c)}`;
    return new Problem("CONTROL_CHARACTER", `code has ${what} at character ${control + 1}`, {
      position: control,
      hints,
    });
  }
  return input;
}

function hex(c: number): string {
  return `0x${c.toString(16).padStart(2, "0").toUpperCase()}`;
}
