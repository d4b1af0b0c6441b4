import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CODE_ERROR_REASONS,
  caseSwapped,
  CodeFormatError,
  gs1CheckDigitValid,
  normaliseScan,
  parseCode,
} from "../backend/codes/parse";

/**
 * Properties of the parser over inputs nobody wrote by hand: random strings and scanner-shaped noise never make
 * it throw anything but CodeFormatError; normalising first changes nothing; one GS1 code in its three forms is one
 * identity. Reproduce or widen: CODES_PROPS_SEED, CODES_PROPS_RUNS. (node:assert inside properties: chai with
 * Hardhat's matchers costs a millisecond a call.)
 */
const runs = Number(process.env.CODES_PROPS_RUNS ?? 2000);
const seed = process.env.CODES_PROPS_SEED === undefined ? undefined : Number(process.env.CODES_PROPS_SEED);
const params = { numRuns: runs, ...(seed !== undefined ? { seed } : {}) };
const GS = "\u001d";

/** What a parse comes to, hints aside: the identity, or the reason and field of the refusal. */
function outcome(raw: string): string {
  try {
    return `ok ${parseCode(raw).normalised}`;
  } catch (e) {
    if (!(e instanceof CodeFormatError)) throw e;
    if (!CODE_ERROR_REASONS.includes(e.reason)) throw new Error(`unknown reason ${e.reason}`);
    return `error ${e.reason} ${e.field ?? ""}`;
  }
}

/** Pieces scanners, keyboards and people put together. */
const SCANNER_PIECES = [
  ..."0123456789",
  "01",
  "09501101530003",
  "21",
  "10",
  "17",
  "271231",
  "280200",
  "7003",
  "2712312359",
  "00106141411234567897",
  "81234560000000011234",
  "8123456",
  GS,
  "~",
  "<GS>",
  "^]",
  "\\x1d",
  "\u241d",
  "(",
  ")",
  "(01)",
  "(21)",
  "]d2",
  "]C1",
  "]Q3",
  "]E0",
  "\r",
  "\n",
  "\t",
  " ",
  "\u3000",
  "８",
  "（",
  "Ａ",
  "a",
  "Z",
  "-",
  ".",
  "/",
  "%",
  "%2F",
  "%E0",
  "https://id.gs1.org",
  "/01/",
  "/21/",
  "?17=",
  "&",
  "=",
  "\0",
  "\u0007",
  "é",
  "中",
  "\ud800",
];
const scannerNoise = fc.array(fc.constantFrom(...SCANNER_PIECES), { maxLength: 24 }).map((parts) => parts.join(""));
const anyText = fc.oneof(fc.string({ unit: "binary", maxLength: 120 }), fc.string({ maxLength: 120 }), scannerNoise);

describe("code parsing properties", () => {
  it("never throws anything but CodeFormatError, with a known reason", () => {
    fc.assert(
      fc.property(anyText, (raw) => {
        const result = outcome(raw);
        if (result.startsWith("ok ")) assert.match(result, /^ok (CN:\d{20}|GS1:0[01]\d+|X:[0-9A-Za-z._-]+)/);
      }),
      params,
    );
  });

  it("reads a normalised scan as the scan itself, and normalising twice changes nothing", () => {
    fc.assert(
      fc.property(anyText, (raw) => {
        const normalised = normaliseScan(raw);
        assert.equal(normaliseScan(normalised), normalised);
        assert.equal(outcome(normalised), outcome(raw));
      }),
      params,
    );
  });

  const cset82 = fc.constantFrom(
    ..."!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
  );
  // `<GS>` and `<FNC1>` are CSET 82 but read as GS stand-ins (see scan-input.ts), so no value holds them here.
  const cset82Text = (max: number) =>
    fc
      .array(cset82, { minLength: 1, maxLength: max })
      .map((c) => c.join(""))
      .filter((v) => !/<(?:GS|FNC1)>/i.test(v));
  const gtin = fc
    .array(fc.integer({ min: 0, max: 9 }), { minLength: 13, maxLength: 13 })
    .map((d) => d.join(""))
    .map((body) => body + [..."0123456789"].find((c) => gs1CheckDigitValid(body + c))!);
  const date = fc
    .record({
      yy: fc.integer({ min: 0, max: 99 }),
      mm: fc.integer({ min: 1, max: 12 }),
      dd: fc.integer({ min: 0, max: 28 }),
    })
    .map(({ yy, mm, dd }) => [yy, mm, dd].map((n) => String(n).padStart(2, "0")).join(""));
  const pack = fc.record({
    gtin,
    serial: cset82Text(20),
    lot: fc.option(cset82Text(20), { nil: undefined }),
    expiry: fc.option(date, { nil: undefined }),
    order: fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
  });

  it("reads one pack to one identity as element string (any AI order), bracketed form and Digital Link", () => {
    fc.assert(
      fc.property(pack, ({ gtin, serial, lot, expiry, order }) => {
        const elements: [string, string][] = [["21", serial]];
        if (lot !== undefined) elements.push(["10", lot]);
        if (expiry !== undefined) elements.push(["17", expiry]);
        // Shuffle what follows the GTIN; a GS ends every element but the last (harmless after fixed ones).
        elements.sort((a, b) => (order[elements.indexOf(a)] ?? 0) - (order[elements.indexOf(b)] ?? 0));
        const elementString = `]d201${gtin}` + elements.map(([ai, v]) => ai + v).join(GS);
        // A value holding "(" + digits + ")" would read as an AI in the bracketed form: GS1 escapes those, so do we not.
        const bracketed = `(01)${gtin}` + elements.map(([ai, v]) => `(${ai})${v}`).join("");
        const path = [
          ["10", lot],
          ["21", serial],
        ].filter(([, v]) => v !== undefined);
        const link =
          `https://id.gs1.org/01/${gtin}` +
          path.map(([ai, v]) => `/${ai}/${encodeURIComponent(v!)}`).join("") +
          (expiry !== undefined ? `?17=${expiry}` : "");
        const expected = parseCode(elementString);
        assert.equal(expected.normalised, `GS1:01${gtin}21${serial}`);
        assert.equal(expected.lot, lot);
        for (const form of /\(\d{2,4}\)/.test(serial + (lot ?? "")) ? [link] : [bracketed, link]) {
          const c = parseCode(form);
          assert.deepEqual([c.normalised, c.lot, c.expiry], [expected.normalised, lot, expected.expiry], form);
        }
        const swapped = caseSwapped(expected);
        if (swapped) assert.equal(caseSwapped(swapped)!.normalised, expected.normalised);
      }),
      params,
    );
  });
});
