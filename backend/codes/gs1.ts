import { Problem } from "./errors";
import { aiLength, aiSpec, type AiSpec } from "./gs1-ai-table";
import { checkValue, type Gs1Element } from "./gs1-elements";
import { hint, type ScanHint } from "./hints";
import { GS } from "./scan-input";

/** The elements of one GS1 symbol in scan order, and what the reader noticed. */
export interface Gs1Reading {
  elements: Gs1Element[];
  hints: ScanHint[];
}

function element(spec: AiSpec, value: string): Gs1Element {
  return spec.decimals !== undefined
    ? { ai: spec.ai, value, title: spec.title, decimals: spec.decimals }
    : { ai: spec.ai, value, title: spec.title };
}

/** Adds an element; the same AI twice is refused unless it repeats the same value (as some labels do). */
function addElement(elements: Gs1Element[], spec: AiSpec, value: string): Problem | undefined {
  const earlier = elements.find((e) => e.ai === spec.ai);
  if (earlier === undefined) elements.push(element(spec, value));
  else if (earlier.value !== value) {
    return new Problem("GS1_DUPLICATE_AI", `GS1 AI (${spec.ai}) appears twice with different values`, {
      field: spec.ai,
    });
  }
  return undefined;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function allDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** The AI at `at` (its first two digits tell its length), or a problem naming the digits that are no AI. */
function readAi(text: string, at: number): AiSpec | Problem {
  const prefix = text.slice(at, at + 2);
  const length = allDigits(prefix) ? aiLength(prefix) : undefined;
  const ai = text.slice(at, at + (length ?? 2));
  const spec = length !== undefined && ai.length === length && allDigits(ai) ? aiSpec(ai) : undefined;
  if (spec) return spec;
  const what = allDigits(ai) ? `unknown GS1 AI (${ai})` : `no GS1 AI starts with "${ai}"`;
  return new Problem("GS1_UNKNOWN_AI", `${what} at character ${at + 1}`, { field: ai, position: at });
}

/** The AIs a drug pack carries besides its GTIN: lot, expiry, serial. */
const SPLIT_CANDIDATES = ["10", "17", "21"];

/**
 * Where a GS separator was probably dropped inside the too-long value starting at `start`: the first place that
 * ends a valid value and after which the rest of the string reads as valid GS1 elements, starting with a pack AI
 * if any place allows it (AIs 90-99 accept almost anything, so they would always win otherwise).
 */
function missingSeparatorAt(text: string, spec: AiSpec, start: number): number | undefined {
  const last = Math.min(start + spec.maxLength, text.length - 2);
  for (const packAisOnly of [true, false]) {
    for (let p = start + 1; p <= last; p++) {
      if (packAisOnly && !SPLIT_CANDIDATES.includes(text.slice(p, p + 2))) continue;
      if (checkValue(spec, text.slice(start, p)) === undefined && !(readElements(text, p, false) instanceof Problem)) {
        return p;
      }
    }
  }
  return undefined;
}

/**
 * A string read without a single GS whose last field is a lot or serial that contains another pack AI with a
 * valid value after it, as when software drops the GS between fields: `21SERIAL10LOT` reads as one serial.
 */
function possiblyMissingSeparator(text: string, reading: Gs1Reading, lastStart: number): ScanHint | undefined {
  const last = reading.elements[reading.elements.length - 1];
  if (last === undefined || (last.ai !== "10" && last.ai !== "21")) return undefined;
  for (let p = lastStart + 1; p + 2 < text.length; p++) {
    const ai = text.slice(p, p + 2);
    if (!SPLIT_CANDIDATES.includes(ai) || reading.elements.some((e) => e.ai === ai)) continue;
    if (!(readElements(text, p, false) instanceof Problem)) {
      return hint("GS_SEPARATOR_POSSIBLY_MISSING", { ai: last.ai, position: p });
    }
  }
  return undefined;
}

function readElements(text: string, from: number, withHints: boolean): Gs1Reading | Problem {
  const elements: Gs1Element[] = [];
  const hints: ScanHint[] = [];
  let sawGs = false;
  let lastStart = -1;
  let i = from;
  while (i < text.length) {
    if (text.charCodeAt(i) === 0x1d) {
      sawGs = true;
      i++;
      continue;
    }
    const spec = readAi(text, i);
    if (spec instanceof Problem) return spec;
    const start = i + spec.ai.length;
    const gs = spec.predefinedLength ? -1 : text.indexOf(GS, start);
    const stop = spec.predefinedLength ? Math.min(start + spec.maxLength, text.length) : gs === -1 ? text.length : gs;
    let end = stop;
    if (!spec.predefinedLength && stop - start > spec.maxLength) {
      if (spec.fixedLength) {
        // One length only: the element cannot run on, so the next one starts right after it.
        end = start + spec.maxLength;
        if (withHints) hints.push(hint("GS_SEPARATOR_MISSING", { ai: spec.ai, position: end }));
      } else {
        const at = withHints ? missingSeparatorAt(text, spec, start) : undefined;
        return new Problem(
          "GS1_VALUE_TOO_LONG",
          `GS1 AI (${spec.ai}) is longer than ${spec.maxLength} characters: is a GS separator missing after it?`,
          {
            field: spec.ai,
            position: start,
            hints: [hint("GS_SEPARATOR_MISSING", { ai: spec.ai, ...(at !== undefined ? { position: at } : {}) })],
          },
        );
      }
    }
    const value = text.slice(start, end);
    const problem = checkValue(spec, value, start) ?? addElement(elements, spec, value);
    if (problem) return problem;
    lastStart = start;
    i = end;
  }
  const reading = { elements, hints };
  if (withHints && !sawGs) {
    const possibly = possiblyMissingSeparator(text, reading, lastStart);
    if (possibly) hints.push(possibly);
  }
  return reading;
}

/** GS1 element string: `01…21…<GS>10…<GS>17…`, AIs in any order, GS after variable-length fields. */
export function readElementString(text: string): Gs1Reading | Problem {
  return readElements(text, 0, true);
}

/** Index of the next `(` + 2 to 4 digits + `)` at or after `from`, or -1. */
function nextBracketedAi(text: string, from: number): number {
  for (let k = text.indexOf("(", from); k !== -1; k = text.indexOf("(", k + 1)) {
    const close = text.indexOf(")", k);
    if (close > k + 2 && close <= k + 5 && allDigits(text.slice(k + 1, close))) return k;
  }
  return -1;
}

/**
 * Human-readable form: `(01)…(21)…(10)…(17)…`. Parentheses inside values stay data unless they enclose 2 to 4
 * digits, which always start the next element.
 */
export function readBracketed(text: string): Gs1Reading | Problem {
  const elements: Gs1Element[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.charCodeAt(i) === 0x1d) {
      i++;
      continue;
    }
    const close = text.indexOf(")", i);
    const ai = close === -1 ? "" : text.slice(i + 1, close);
    if (text[i] !== "(" || ai.length < 2 || ai.length > 4 || !allDigits(ai)) {
      return new Problem("GS1_BAD_SYNTAX", `bracketed GS1 code has no "(AI)" at character ${i + 1}`, {
        position: i,
      });
    }
    const spec = aiSpec(ai);
    if (!spec) {
      return new Problem("GS1_UNKNOWN_AI", `unknown GS1 AI (${ai}) at character ${i + 1}`, { field: ai, position: i });
    }
    const start = close + 1;
    const next = nextBracketedAi(text, start);
    const gs = text.indexOf(GS, start);
    const end = [next, gs, text.length].filter((n) => n !== -1).reduce((a, b) => Math.min(a, b));
    const value = text.slice(start, end);
    const problem = checkValue(spec, value, start) ?? addElement(elements, spec, value);
    if (problem) return problem;
    i = end;
  }
  return { elements, hints: [] };
}

/** Digital Link path names from its first version; GS1 still resolves them. */
const PATH_ALIASES: Record<string, string> = { gtin: "01", sscc: "00", cpv: "22", lot: "10", ser: "21" };
/** The keys a Digital Link path may start with (GS1 Digital Link standard 1.2, section 4). */
const PRIMARY_KEYS = new Set([
  ...["00", "01", "253", "255", "401", "402", "414", "417"],
  ...["8003", "8004", "8006", "8010", "8013", "8017", "8018"],
]);

function badLink(message: string): Problem {
  return new Problem("GS1_BAD_DIGITAL_LINK", `GS1 Digital Link ${message}`);
}

function decode(part: string): string | Problem {
  try {
    return decodeURIComponent(part);
  } catch {
    return badLink(`has a bad percent-escape in "${part}"`);
  }
}

function addLinkElement(elements: Gs1Element[], aiText: string, rawValue: string): Problem | undefined {
  const ai = PATH_ALIASES[aiText] ?? aiText;
  const spec = ai.length >= 2 && ai.length <= 4 && allDigits(ai) ? aiSpec(ai) : undefined;
  if (!spec) return new Problem("GS1_UNKNOWN_AI", `unknown GS1 AI (${ai}) in Digital Link`, { field: ai });
  let value = decode(rawValue);
  if (value instanceof Problem) return value;
  // A Digital Link may carry a GTIN-8, -12 or -13 unpadded; the element string form is always 14 digits.
  if (ai === "01" && [8, 12, 13].includes(value.length)) value = value.padStart(14, "0");
  return checkValue(spec, value) ?? addElement(elements, spec, value);
}

/** Host names, IPv4, IPv6 in brackets, a port: no user info, nothing that a URL parser would reinterpret. */
const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/**
 * GS1 Digital Link, uncompressed: `https://any.host/[prefix/]01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}]?17=…`.
 * Read by hand rather than with `URL`, which would resolve `..` segments and rewrite what was scanned.
 */
export function readDigitalLink(text: string): Gs1Reading | Problem {
  const afterScheme = text.indexOf("://") + 3;
  const hashAt = text.indexOf("#");
  const withoutFragment = hashAt === -1 ? text : text.slice(0, hashAt);
  const pathAt = withoutFragment.indexOf("/", afterScheme);
  if (pathAt === -1) return badLink("has no path");
  if (!HOST.test(withoutFragment.slice(afterScheme, pathAt))) return badLink("has a malformed host");
  const queryAt = withoutFragment.indexOf("?", pathAt);
  const path = withoutFragment.slice(pathAt + 1, queryAt === -1 ? undefined : queryAt);
  const segments = path.split("/").filter((s) => s.length > 0);
  const keyAt = segments.findIndex((s) => PRIMARY_KEYS.has(PATH_ALIASES[s] ?? s));
  if (keyAt === -1) return badLink("has no /01/{GTIN} or /00/{SSCC} in its path (compressed links are not read)");
  if ((segments.length - keyAt) % 2 !== 0) return badLink(`path ends with AI (${segments.at(-1)}) but no value`);
  const elements: Gs1Element[] = [];
  for (let i = keyAt; i < segments.length; i += 2) {
    const problem = addLinkElement(elements, segments[i]!, segments[i + 1]!);
    if (problem) return problem;
  }
  const query = queryAt === -1 ? "" : withoutFragment.slice(queryAt + 1);
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    const key = eq === -1 ? pair : pair.slice(0, eq);
    // Only numeric keys are AIs; linkType, context and the like are for resolvers.
    if (key.length === 0 || !allDigits(key)) continue;
    const problem = addLinkElement(elements, key, eq === -1 ? "" : pair.slice(eq + 1));
    if (problem) return problem;
  }
  return { elements, hints: [] };
}

export function isDigitalLink(text: string): boolean {
  return /^https?:\/\//i.test(text);
}
