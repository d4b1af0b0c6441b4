import { expect } from "chai";
import { allAis, aiSpec, type AiComponent, type AiSpec } from "../backend/codes/gs1-ai-table";
import {
  CODE_ERROR_REASONS,
  caseSwapped,
  CodeFormatError,
  gs1CheckDigitValid,
  parseCode,
  scanHints,
  tryParseCode,
  type CodeErrorReason,
  type ParsedCode,
  type ScanHintCode,
} from "../backend/codes/parse";

/**
 * The parser as codes are really scanned: keyboard-wedge scanners, Chinese input methods, GS1 DataMatrix with
 * every kind of element, Digital Links, and the mis-scans a pharmacy counter produces.
 */
const GS = "\u001d";
const GTIN = "09501101530003";
const UNIT = `GS1:01${GTIN}21XYZ789`;
const CN = "81234560000000011234";

function failure(raw: string): CodeFormatError {
  const outcome = tryParseCode(raw);
  if (outcome.ok) expect.fail(`"${raw}" parsed as ${outcome.code.normalised}`);
  return outcome.error;
}

const codesOf = (c: { hints: { code: string }[] }) => c.hints.map((h) => h.code);
const elementsOf = (c: ParsedCode) => (c.elements ?? []).map((e) => [e.ai, e.value]);

describe("scanning: normalising what scanners send", () => {
  it("reads full-width digits and the ideographic space of a Chinese input method", () => {
    const c = parseCode("８１２３４５６００００００００１１２３４\u3000");
    expect(c.normalised).to.equal(`CN:${CN}`);
    expect(codesOf(c)).to.deep.equal(["FULL_WIDTH_NORMALISED", "WHITESPACE_TRIMMED"]);
    expect(parseCode("（０１）０９５０１１０１５３０００３（２１）ＸＹＺ７８９").normalised).to.equal(UNIT);
  });

  it("drops the CR, LF, CR LF or Tab a keyboard-wedge scanner sends after the code", () => {
    for (const suffix of ["\r", "\n", "\r\n", "\t"]) {
      const c = parseCode(CN + suffix);
      expect(c.normalised).to.equal(`CN:${CN}`);
      expect(codesOf(c)).to.deep.equal(["WEDGE_SUFFIX_STRIPPED"]);
    }
    expect(codesOf(parseCode(`  ${CN}  `))).to.deep.equal(["WHITESPACE_TRIMMED"]);
  });

  it("strips symbology identifiers and remembers them; GS1 ones commit the scan to GS1", () => {
    for (const symbology of ["]d2", "]C1", "]Q3", "]e0"]) {
      const c = parseCode(`${symbology}01${GTIN}21XYZ789`);
      expect(c.normalised).to.equal(UNIT);
      expect(c.symbology).to.equal(symbology);
      expect(c.hints[0]).to.include({ code: "SYMBOLOGY_PREFIX_STRIPPED", detail: symbology });
    }
    // A GS1 symbology identifier makes the rest GS1, so its errors are GS1 errors, not an "other" code.
    expect(failure("]d210ABC").reason).to.equal("GS1_MISSING_GTIN");
    expect(parseCode(`]Q1https://id.gs1.org/01/${GTIN}/21/XYZ789`).normalised).to.equal(UNIT);
    expect(parseCode(`]C0${CN}`).normalised).to.equal(`CN:${CN}`);
  });

  it("reads the GS stand-ins scanners and people send as GS, and says so", () => {
    const stand_ins = ["<GS>", "<gs>", "[GS]", "{GS}", "<FNC1>", "^]", "\\x1d", "\\u001D", "\u241d", "~"];
    for (const gs of stand_ins) {
      const c = parseCode(`01${GTIN}21XYZ789${gs}10ABC123${gs}17271231`);
      expect(c.normalised, gs).to.equal(UNIT);
      expect(c.lot, gs).to.equal("ABC123");
      expect(c.hints, gs).to.deep.include({ code: "GS_SUBSTITUTE_READ", detail: gs, message: c.hints[0]!.message });
    }
    expect(parseCode(`${GS}01${GTIN}21XYZ789`).normalised, "FNC1 in first position").to.equal(UNIT);
    expect(parseCode(`~01${GTIN}21XYZ789~10ABC`).lot).to.equal("ABC");
  });

  it("reads <GS> as a separator even where CSET 82 would allow it as data", () => {
    expect(parseCode(`01${GTIN}21A<GS>10B`)).to.deep.include({ serial: "A", lot: "B" });
  });

  it("leaves stand-ins alone outside GS1 strings", () => {
    expect(failure("ABC~DEF").reason).to.equal("BAD_CHARACTERS");
    expect(parseCode(`https://example.com/~shop/01/${GTIN}/21/XYZ789`).normalised).to.equal(UNIT);
  });
});

describe("scanning: GS1 element strings", () => {
  it("reads the AI orders found on real packs to one identity", () => {
    const orders = [
      `01${GTIN}21XYZ789${GS}17271231` + `10ABC123`, // 01-21-17-10
      `01${GTIN}17271231` + `10ABC123${GS}21XYZ789`, // 01-17-10-21
      `01${GTIN}10ABC123${GS}17271231` + `21XYZ789`, // 01-10-17-21
      `17271231` + `01${GTIN}21XYZ789${GS}10ABC123`, // 17 first: no key at the start
      `10ABC123${GS}01${GTIN}17271231` + `21XYZ789`, // lot first
    ];
    for (const order of orders) {
      const c = parseCode(order);
      expect([c.normalised, c.lot, c.expiry], order).to.deep.equal([UNIT, "ABC123", "2027-12-31"]);
    }
  });

  it("reads (17) day 00 as the month's end and keeps the century rule", () => {
    expect(parseCode(`01${GTIN}17280200` + `21S`).expiry).to.equal("2028-02-29");
    expect(parseCode(`01${GTIN}17270200` + `21S`).expiry).to.equal("2027-02-28");
    expect(parseCode(`01${GTIN}17501231` + `21S`).expiry).to.equal("2050-12-31");
    expect(parseCode(`01${GTIN}17510101` + `21S`).expiry).to.equal("1951-01-01");
  });

  it("reads (7003) expiry date and time, with or without the GS its fixed length makes redundant", () => {
    const c = parseCode(`01${GTIN}7003` + `2712312359${GS}21S1`);
    expect([c.expiry, c.expiryTime]).to.deep.equal(["2027-12-31", "2027-12-31T23:59"]);
    const noGs = parseCode(`01${GTIN}7003` + `2712312359` + `21S1`);
    expect(noGs.serial).to.equal("S1");
    expect(noGs.hints).to.deep.include({ ...noGs.hints[0]!, code: "GS_SEPARATOR_MISSING", ai: "7003", position: 30 });
    // (17) stays the expiry when both are there.
    expect(parseCode(`01${GTIN}17271130` + `7003` + `2712312359${GS}21S1`).expiry).to.equal("2027-11-30");
    expect(failure(`01${GTIN}7003` + `2712312460${GS}21S1`).reason).to.equal("GS1_BAD_DATE");
    expect(failure(`01${GTIN}7003` + `2712002359${GS}21S1`).reason, "no day 00 in 7003").to.equal("GS1_BAD_DATE");
  });

  it("keeps every element in order, with its GS1 title: NHRN, additional ids, company internal AIs", () => {
    const c = parseCode(
      `01${GTIN}21XYZ789${GS}710` +
        `PZN1234567${GS}240` +
        `ADD-1${GS}241` +
        `CUST.7${GS}250` +
        `SEC2${GS}91` +
        `INTERNAL-A${GS}99` +
        `Z${GS}90` +
        `ninety`,
    );
    expect(c.normalised).to.equal(UNIT);
    expect(elementsOf(c)).to.deep.equal([
      ["01", GTIN],
      ["21", "XYZ789"],
      ["710", "PZN1234567"],
      ["240", "ADD-1"],
      ["241", "CUST.7"],
      ["250", "SEC2"],
      ["91", "INTERNAL-A"],
      ["99", "Z"],
      ["90", "ninety"],
    ]);
    expect(c.elements!.map((e) => e.title)).to.deep.equal([
      "GTIN",
      "SERIAL",
      "NHRN PZN",
      "ADDITIONAL ID",
      "CUST. PART No.",
      "SECONDARY SERIAL",
      "INTERNAL",
      "INTERNAL",
      "INTERNAL",
    ]);
    for (const [ai, title] of [
      ["711", "NHRN CIP"],
      ["712", "NHRN CN"],
      ["713", "NHRN DRN"],
      ["714", "NHRN AIM"],
      ["715", "NHRN NDC"],
    ]) {
      expect(parseCode(`01${GTIN}21S${GS}${ai}12345`).elements!.at(-1)).to.deep.equal({ ai, value: "12345", title });
    }
  });

  it("parses past AIs the ledger does not use: logistic, asset, measure and dated ones", () => {
    const c = parseCode(
      `3103` +
        `001250` +
        `01${GTIN}8003` +
        `09501101530003A${GS}8004` +
        `9501101S1${GS}8006` +
        `095011015300030102${GS}11` +
        `270101` +
        `21S1`,
    );
    expect(c.normalised).to.equal(`GS1:01${GTIN}21S1`);
    expect(c.elements![0]).to.deep.equal({ ai: "3103", value: "001250", title: "NET WEIGHT (kg)", decimals: 3 });
    expect(elementsOf(c).map(([ai]) => ai)).to.deep.equal(["3103", "01", "8003", "8004", "8006", "11", "21"]);
  });

  it("identifies a pallet by its SSCC (AI 00), and a case by its own GTIN", () => {
    const pallet = parseCode("00106141411234567897");
    expect(pallet).to.deep.include({ scheme: "gs1", normalised: "GS1:00106141411234567897" });
    expect(pallet.sscc).to.equal("106141411234567897");
    expect(pallet.productCode).to.equal(undefined);
    const label = parseCode(`]C100106141411234567897` + `02${GTIN}37` + `40${GS}10LOT7`);
    expect(label.normalised).to.equal("GS1:00106141411234567897");
    expect(elementsOf(label)).to.deep.equal([
      ["00", "106141411234567897"],
      ["02", GTIN],
      ["37", "40"],
      ["10", "LOT7"],
    ]);
    expect(failure("00106141411234567890")).to.include({ reason: "GS1_CHECK_DIGIT", field: "00" });
    const caseCode = parseCode(`(01)19501101530000(21)C42`);
    expect([caseCode.normalised, caseCode.gtinIndicator]).to.deep.equal(["GS1:011950110153000021C42", 1]);
    // A symbol with both keys: the serialised GTIN is the identity, the SSCC is reported beside it.
    const both = parseCode(`00106141411234567897` + `01${GTIN}21XYZ789`);
    expect([both.normalised, both.sscc]).to.deep.equal([UNIT, "106141411234567897"]);
  });

  it("accepts an AI repeated with the same value, refuses one repeated with another", () => {
    expect(elementsOf(parseCode(`01${GTIN}21XYZ789${GS}01${GTIN}`))).to.have.length(2);
    expect(failure(`01${GTIN}21XYZ789${GS}21OTHER`)).to.include({ reason: "GS1_DUPLICATE_AI", field: "21" });
  });

  it("says where a GS separator is missing when a value runs past its maximum", () => {
    const e = failure(`01${GTIN}21XYZ789` + `10ABC1234567890123456`);
    expect(e).to.include({ reason: "GS1_VALUE_TOO_LONG", field: "21" });
    expect(e.hints).to.have.length(1);
    expect(e.hints[0]).to.include({ code: "GS_SEPARATOR_MISSING", ai: "21", position: 24 });
  });

  it("flags a serial that may have swallowed the lot when the string has no GS at all", () => {
    const c = parseCode(`01${GTIN}17271231` + `21XYZ789` + `10ABC`);
    expect(c.serial).to.equal("XYZ78910ABC");
    expect(c.hints).to.have.length(1);
    expect(c.hints[0]).to.include({ code: "GS_SEPARATOR_POSSIBLY_MISSING", ai: "21", position: 32 });
    expect(codesOf(parseCode(`01${GTIN}17271231` + `21XYZ789`))).to.deep.equal([]);
  });
});

/** A value that passes every check of its AI: every component filled, optional ones included. */
function sampleValue(spec: AiSpec): string {
  return spec.components.map(sampleComponent).join("");
}

const SAMPLES: Record<string, string> = {
  yymmd0: "271200",
  yymmdd: "271231",
  yyyymmdd: "19991231",
  yymmddhh: "27123123",
  hhmi: "2359",
  hh: "23",
  mi: "59",
  ss: "59",
  zero: "0",
  winding: "1",
  yesno: "1",
  iso5218: "2",
  hyphen: "-",
  pieceoftotal: "0102",
  iso3166: "156",
  iso3166999: "999",
  iso4217: "156",
  iso3166alpha2: "CN",
  mediatype: "01",
};

function sampleComponent(c: AiComponent): string {
  const named = c.checks.map((check) => SAMPLES[check]).find((s) => s !== undefined);
  if (named !== undefined) return named;
  const length = c.min === c.max ? c.min : Math.min(c.max, 5);
  if (c.checks.includes("csum")) {
    const body = "9501101".padEnd(length - 1, "7").slice(0, length - 1);
    const digit = [..."0123456789"].find((d) => gs1CheckDigitValid(body + d))!;
    return body + digit;
  }
  const alphabet = c.charset === "N" ? "1234567890" : c.charset === "X" ? "Ab1-_./" : "AB1";
  return Array.from({ length }, (_, i) => alphabet[i % alphabet.length]).join("");
}

describe("scanning: the GS1 Application Identifier table", () => {
  it("holds the facts of GS1 General Specifications section 3 for the AIs a drug pack meets", () => {
    const facts: [string, Partial<AiSpec>][] = [
      ["00", { predefinedLength: true, minLength: 18, maxLength: 18, title: "SSCC" }],
      ["01", { predefinedLength: true, maxLength: 14 }],
      ["10", { predefinedLength: false, maxLength: 20 }],
      ["11", { predefinedLength: true, maxLength: 6 }],
      ["17", { predefinedLength: true, maxLength: 6, title: "USE BY or EXPIRY" }],
      ["21", { predefinedLength: false, maxLength: 20 }],
      ["240", { maxLength: 30 }],
      ["241", { maxLength: 30 }],
      ["250", { maxLength: 30 }],
      ["3103", { predefinedLength: true, maxLength: 6, decimals: 3 }],
      ["3925", { maxLength: 15, decimals: 5 }],
      ["7003", { predefinedLength: false, fixedLength: true, maxLength: 10, format: "N6 N4" }],
      ["710", { maxLength: 20, title: "NHRN PZN" }],
      ["715", { maxLength: 20, title: "NHRN NDC" }],
      ["8003", { minLength: 14, maxLength: 30 }],
      ["8004", { maxLength: 30, title: "GIAI" }],
      ["8006", { fixedLength: true, maxLength: 18 }],
      ["90", { maxLength: 30 }],
      ["91", { maxLength: 90 }],
      ["99", { maxLength: 90 }],
    ];
    for (const [ai, fact] of facts) expect(aiSpec(ai), ai).to.deep.include(fact);
    for (const missing of ["04", "14", "18", "19", "23", "239", "26", "38", "3106", "44", "50", "7002x", "89"]) {
      expect(aiSpec(missing), missing).to.equal(undefined);
    }
  });

  it("reads every AI in the table, in an element string, the bracketed form and a Digital Link", () => {
    const wrong: unknown[] = [];
    let count = 0;
    for (const spec of allAis()) {
      if (spec.ai === "01" || spec.ai === "21") continue;
      const value = sampleValue(spec);
      const forms = [
        `01${GTIN}21S1${GS}${spec.ai}${value}`,
        `(01)${GTIN}(21)S1(${spec.ai})${value}`,
        `https://id.gs1.org/01/${GTIN}/21/S1?${spec.ai}=${encodeURIComponent(value)}`,
      ];
      for (const form of forms) {
        const outcome = tryParseCode(form);
        const last = outcome.ok ? outcome.code.elements!.at(-1)! : undefined;
        const right =
          outcome.ok &&
          outcome.code.normalised === `GS1:01${GTIN}21S1` &&
          last!.ai === spec.ai &&
          last!.value === value &&
          last!.title === spec.title &&
          last!.decimals === spec.decimals;
        if (!right) wrong.push([form, outcome.ok ? last : outcome.error.message]);
      }
      count++;
    }
    expect(wrong).to.deep.equal([]);
    expect(count).to.be.greaterThan(500);
  });

  it("checks each AI's format: digits, CSET 82, lengths, check digits, dates", () => {
    const cases: [string, CodeErrorReason, string][] = [
      [`01${GTIN}21S1${GS}422` + `15X`, "GS1_BAD_CHARACTERS", "422"],
      [`01${GTIN}21S1${GS}10LOT#1`, "GS1_BAD_CHARACTERS", "10"],
      [`01${GTIN}21S1${GS}242` + `1234567`, "GS1_VALUE_TOO_LONG", "242"],
      [`01${GTIN}21S1${GS}8006` + `09501101530003010`, "GS1_VALUE_TOO_SHORT", "8006"],
      [`01${GTIN}1727`, "GS1_VALUE_TOO_SHORT", "17"],
      [`01${GTIN}21S1${GS}414` + `9501101530001`, "GS1_CHECK_DIGIT", "414"],
      [`01${GTIN}21S1${GS}8006` + `095011015300030302`, "GS1_BAD_VALUE", "8006"],
      [`01${GTIN}21S1${GS}4321` + `2`, "GS1_BAD_VALUE", "4321"],
      [`01${GTIN}21S1${GS}10${GS}17271231`, "GS1_BAD_VALUE", "10"],
      [`01${GTIN}11271301` + `21S1`, "GS1_BAD_DATE", "11"],
      [`01${GTIN}17270230` + `21S1`, "GS1_BAD_DATE", "17"],
      [`01${GTIN}21S1${GS}7006` + `270200`, "GS1_BAD_DATE", "7006"],
    ];
    for (const [raw, reason, field] of cases) expect(failure(raw), raw).to.include({ reason, field });
  });
});

describe("scanning: bracketed GS1 and Digital Links", () => {
  it("keeps parentheses that are data in a bracketed value", () => {
    expect(parseCode(`(01)${GTIN}(10)AB(C)(21)XYZ789`).lot).to.equal("AB(C)");
    expect(failure(`(01)${GTIN}(239)X(21)S`)).to.include({ reason: "GS1_UNKNOWN_AI", field: "239" });
    expect(failure(`(01)${GTIN}21XYZ`)).to.include({ reason: "GS1_VALUE_TOO_LONG", field: "01" });
    expect(failure(`(01${GTIN}`).reason).to.equal("GS1_BAD_SYNTAX");
  });

  it("reads Digital Link variants to the same identity", () => {
    const links = [
      `https://id.gs1.org/01/${GTIN}/10/ABC123/21/XYZ789?17=271231`,
      `https://id.gs1.org/01/${GTIN}/21/XYZ789?10=ABC123&17=271231&linkType=gs1:pip`,
      `http://example.com/shop/en/01/${GTIN}/10/ABC123/21/XYZ789?17=271231#top`,
      `HTTPS://ID.GS1.ORG/01/${GTIN}/10/ABC123/21/XYZ789?17=271231`,
      `https://id.gs1.org/01/${GTIN.slice(1)}/10/ABC123/21/XYZ789?17=271231`,
      `https://id.gs1.org/gtin/${GTIN}/lot/ABC123/ser/XYZ789?17=271231`,
      `https://example.com:8443/01/${GTIN}/10/%41BC123/21/%58YZ789?17=271231`,
    ];
    for (const link of links) {
      const c = parseCode(link);
      expect([c.normalised, c.lot, c.expiry], link).to.deep.equal([UNIT, "ABC123", "2027-12-31"]);
    }
  });

  it("percent-decodes lots and serials, and reads (7003) and SSCCs from links", () => {
    const c = parseCode(`https://id.gs1.org/01/${GTIN}/10/L%2F7%25/21/A%2FB%3F?7003=2712312359`);
    expect([c.lot, c.serial, c.expiryTime]).to.deep.equal(["L/7%", "A/B?", "2027-12-31T23:59"]);
    expect(c.normalised).to.equal(`GS1:01${GTIN}21A/B?`);
    expect(parseCode("https://id.gs1.org/00/106141411234567897").normalised).to.equal("GS1:00106141411234567897");
  });

  it("refuses links that are no GS1 Digital Link or carry bad values, as GS1 errors", () => {
    const cases: [string, CodeErrorReason][] = [
      ["https://example.com/products/42", "GS1_BAD_DIGITAL_LINK"],
      ["https://id.gs1.org/AQnYUc1gkmU", "GS1_BAD_DIGITAL_LINK"],
      [`https://id.gs1.org/01/${GTIN}/21`, "GS1_BAD_DIGITAL_LINK"],
      [`https://id.gs1.org/01/${GTIN}/21/%E0%A4%A`, "GS1_BAD_DIGITAL_LINK"],
      [`https://user@evil.example/01/${GTIN}/21/X`, "GS1_BAD_DIGITAL_LINK"],
      ["https://id.gs1.org", "GS1_BAD_DIGITAL_LINK"],
      [`https://id.gs1.org/01/${GTIN}/21/caf%C3%A9`, "GS1_BAD_CHARACTERS"],
      [`https://id.gs1.org/01/${GTIN}/21/X?17=271399`, "GS1_BAD_DATE"],
      [`https://id.gs1.org/01/${GTIN}/21/X?239=1`, "GS1_UNKNOWN_AI"],
      [`https://id.gs1.org/01/09501101530004/21/X`, "GS1_CHECK_DIGIT"],
      [`https://id.gs1.org/01/${GTIN}/10/LOT`, "GS1_MISSING_SERIAL"],
      ["https://id.gs1.org/414/9501101530003", "GS1_MISSING_GTIN"],
    ];
    for (const [raw, reason] of cases) expect(failure(raw).reason, raw).to.equal(reason);
  });
});

describe("scanning: Chinese codes and mis-scans", () => {
  it("keeps digit codes of other lengths as other codes, with the length they have", () => {
    const short = parseCode(CN.slice(0, 19));
    expect([short.scheme, short.normalised, codesOf(short)]).to.deep.equal([
      "other",
      `X:${CN.slice(0, 19)}`,
      ["LENGTH_19_EXPECTED_20"],
    ]);
    expect(codesOf(parseCode(`${CN}5`))).to.deep.equal(["LENGTH_21_EXPECTED_20"]);
    expect(codesOf(parseCode("7123456000000001123"))).to.deep.equal([
      "LENGTH_19_EXPECTED_20",
      "CHINESE_CODE_PREFIX_NOT_8",
    ]);
    expect(scanHints("8123")[0]!.message).to.match(/4 digits/);
  });

  it("points at a letter in a 20-character numeric code", () => {
    const c = parseCode("812345600000O0011234");
    expect(c.normalised).to.equal("X:812345600000O0011234");
    expect(c.hints).to.have.length(1);
    expect(c.hints[0]).to.include({ code: "LETTER_IN_NUMERIC_CODE", position: 12, detail: "O" });
    expect(codesOf(parseCode("MANUFACTURERCODE0001")), "a code of letters is no mis-scan").to.deep.equal([]);
  });

  it("recognises the product barcode scanned instead of the traceability code", () => {
    expect(codesOf(parseCode("6901234567892"))).to.deep.equal(["LENGTH_13_EXPECTED_20", "LOOKS_LIKE_PRODUCT_BARCODE"]);
    expect(codesOf(parseCode("]E06901234567892"))).to.include("LOOKS_LIKE_PRODUCT_BARCODE");
    expect(codesOf(parseCode(GTIN))).to.include("LOOKS_LIKE_PRODUCT_BARCODE");
    expect(failure(`01${GTIN}`).reason, "a GTIN in GS1 form is a GS1 code without serial").to.equal(
      "GS1_MISSING_SERIAL",
    );
  });

  it("refuses spaces inside a code, with a hint", () => {
    const e = failure("8123 4560 0000 0001 1234");
    expect(e).to.include({ reason: "BAD_CHARACTERS", position: 4 });
    expect(codesOf(e)).to.deep.equal(["WHITESPACE_INSIDE"]);
  });
});

describe("scanning: refusals", () => {
  const examples: Record<CodeErrorReason, string> = {
    EMPTY: " \r\n",
    TOO_LONG: "A".repeat(101),
    NUL_BYTE: `${CN}\0`,
    CONTROL_CHARACTER: `${CN}\u001b`,
    BAD_CHARACTERS: "../../etc/passwd",
    GS1_UNKNOWN_AI: `01${GTIN}21S1${GS}2399`,
    GS1_VALUE_TOO_LONG: `01${GTIN}21${"S".repeat(21)}`,
    GS1_VALUE_TOO_SHORT: `]d201${GTIN.slice(0, 13)}`,
    GS1_BAD_CHARACTERS: `01${GTIN}21S 1`,
    GS1_BAD_VALUE: `01${GTIN}21${GS}`,
    GS1_BAD_DATE: `01${GTIN}17271332` + `21S1`,
    GS1_CHECK_DIGIT: `01${GTIN.slice(0, 13)}4` + `21S1`,
    GS1_DUPLICATE_AI: `01${GTIN}21S1${GS}21S2`,
    GS1_MISSING_GTIN: `]d217271231` + `10LOT`,
    GS1_MISSING_SERIAL: `01${GTIN}10LOT`,
    GS1_BAD_SYNTAX: `(1)${GTIN}(21)S`,
    GS1_BAD_DIGITAL_LINK: "https://id.gs1.org/",
  };

  it("gives every refusal a stable reason, a message and hints, and throws nothing but CodeFormatError", () => {
    expect(Object.keys(examples)).to.have.members([...CODE_ERROR_REASONS]);
    for (const [reason, raw] of Object.entries(examples)) {
      expect(() => parseCode(raw), reason).to.throw(CodeFormatError);
      const e = failure(raw);
      expect(e.reason, JSON.stringify(raw)).to.equal(reason);
      expect(e.input).to.equal(raw);
      expect(e.message).to.be.a("string").and.not.equal("");
      expect(e.toJSON()).to.deep.equal({
        reason,
        message: e.message,
        ...(e.field !== undefined ? { field: e.field } : {}),
        ...(e.position !== undefined ? { position: e.position } : {}),
        hints: e.hints,
      });
    }
  });

  it("names the field and place at fault", () => {
    expect(failure(`01${GTIN}17271332` + `21S1`)).to.include({ field: "17", position: 18 });
    expect(failure(`01${GTIN}21S1${GS}2399`)).to.include({ field: "239", position: 21 });
    expect(failure(`${CN}\n${CN}`).message).to.match(/line break: two scans/);
  });

  it("treats path traversal and injection strings as bad characters", () => {
    for (const raw of ["../../etc/passwd", "..\\..\\win.ini", "'; DROP TABLE codes; --", "<script>x</script>"]) {
      expect(failure(raw).reason, raw).to.equal("BAD_CHARACTERS");
    }
    expect(failure("$(rm -rf /)").reason).to.equal("BAD_CHARACTERS");
    expect(failure("%00").reason).to.equal("BAD_CHARACTERS");
  });

  it("counts the length after normalising and refuses huge input before any work", () => {
    expect(parseCode(`]d2  01${GTIN}21${"S".repeat(20)}${GS}10${"L".repeat(20)}${GS}91${"I".repeat(36)}\r\n`)).to.be.ok;
    expect(parseCode(`${"A".repeat(100)}\r\n`).normalised).to.equal(`X:${"A".repeat(100)}`);
    expect(failure("A".repeat(1_000_000)).reason).to.equal("TOO_LONG");
  });
});

describe("scanning: hints and CAPS LOCK", () => {
  const examples: Record<Exclude<ScanHintCode, `LENGTH_${number}_EXPECTED_20`> | "LENGTH_n_EXPECTED_20", string> = {
    FULL_WIDTH_NORMALISED: "８１２３４５６００００００００１１２３４",
    WEDGE_SUFFIX_STRIPPED: `${CN}\r\n`,
    WHITESPACE_TRIMMED: ` ${CN}`,
    WHITESPACE_INSIDE: "CODE 1",
    SYMBOLOGY_PREFIX_STRIPPED: `]C0${CN}`,
    GS_SUBSTITUTE_READ: `01${GTIN}21S<GS>10L`,
    GS_SEPARATOR_MISSING: `01${GTIN}21${"S".repeat(18)}10LOT`,
    GS_SEPARATOR_POSSIBLY_MISSING: `01${GTIN}21S10LOT`,
    LENGTH_n_EXPECTED_20: CN.slice(1),
    LETTER_IN_NUMERIC_CODE: "8123456000000001123B",
    CHINESE_CODE_PREFIX_NOT_8: "91234560000000011234",
    LOOKS_LIKE_PRODUCT_BARCODE: "6901234567892",
    CAPS_LOCK_SUSPECTED: `01${GTIN}21abc`,
  };

  it("emits every hint with a message, on results and refusals alike", () => {
    for (const [code, raw] of Object.entries(examples)) {
      const hints = code === "CAPS_LOCK_SUSPECTED" ? caseSwapped(parseCode(raw))!.hints : scanHints(raw);
      const found = hints.find((h) => h.code === code || (code === "LENGTH_n_EXPECTED_20" && /^LENGTH_/.test(h.code)));
      expect(found, code).to.not.equal(undefined);
      expect(found!.message, code)
        .to.be.a("string")
        .and.not.match(/undefined/);
    }
  });

  it("swaps the case of serial and lot letters, never matching silently", () => {
    const c = parseCode(`01${GTIN}21xyz789${GS}10abc1${GS}240ab`);
    const swapped = caseSwapped(c)!;
    expect([swapped.normalised, swapped.serial, swapped.lot]).to.deep.equal([UNIT, "XYZ789", "ABC1"]);
    expect(elementsOf(swapped)).to.deep.equal([
      ["01", GTIN],
      ["21", "XYZ789"],
      ["10", "ABC1"],
      ["240", "ab"],
    ]);
    expect(codesOf(swapped)).to.deep.equal(["CAPS_LOCK_SUSPECTED"]);
    expect(codesOf(c), "the scan itself carries no such hint").to.deep.equal([]);
    expect(caseSwapped(swapped)!.normalised).to.equal(c.normalised);
    expect(caseSwapped(parseCode(`01${GTIN}21123${GS}10AB`))!.normalised, "lot letters only").to.equal(
      `GS1:01${GTIN}21123`,
    );
  });

  it("returns null when there is nothing to swap", () => {
    expect(caseSwapped(parseCode(CN))).to.equal(null);
    expect(caseSwapped(parseCode(`01${GTIN}21123456`))).to.equal(null);
    expect(caseSwapped(parseCode("00106141411234567897"))).to.equal(null);
    expect(caseSwapped(parseCode("0123-456"))).to.equal(null);
    expect(caseSwapped(parseCode("CASE-8612345-100"))!.normalised).to.equal("X:case-8612345-100");
  });
});
