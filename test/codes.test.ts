import { expect } from "chai";
import { codeHash, CodeFormatError, gtinCheckDigitValid, parseCode } from "../backend/codes/parse";
import { decodeRef, encodeRef, Level, packRefs, unpackRefs } from "../backend/codes/refs";
import { uniquenessWitness } from "../backend/codes/run";

const GS = "\u001d";

describe("code parsing", () => {
  it("reads a Chinese 20-digit code", () => {
    const c = parseCode("81234560000000011234");
    expect(c).to.deep.equal({
      scheme: "cn20",
      normalised: "CN:81234560000000011234",
      productCode: "8123456",
      serial: "000000001",
      hints: [],
    });
  });

  it("keeps a 20-digit code that does not start with 8 as another code, with a hint that it is no Chinese code", () => {
    const c = parseCode("71234560000000011234");
    expect(c.normalised).to.equal("X:71234560000000011234");
    expect(c.hints.map((h) => h.code)).to.deep.equal(["CHINESE_CODE_PREFIX_NOT_8"]);
  });

  it("reads a GS1 element string with GS separators, symbology identifier and any AI order", () => {
    const a = parseCode(`]d2010950110153000317271231` + `10ABC123${GS}21XYZ789`);
    const b = parseCode(`0109501101530003` + `21XYZ789${GS}10ABC123${GS}17271231`);
    expect(a.normalised).to.equal("GS1:010950110153000321XYZ789");
    expect(b.normalised).to.equal(a.normalised);
    expect(a.lot).to.equal("ABC123");
    expect(a.expiry).to.equal("2027-12-31");
  });

  it("reads day 00 as the last day of the month", () => {
    expect(parseCode("(01)09501101530003(17)280200(21)S1").expiry).to.equal("2028-02-29");
  });

  it("reads the bracketed human-readable form and the GS1 Digital Link", () => {
    const bracketed = parseCode("(01)09501101530003(21)XYZ789(10)ABC123");
    const link = parseCode("https://id.gs1.org/01/09501101530003/10/ABC123/21/XYZ789?17=271231");
    expect(bracketed.normalised).to.equal("GS1:010950110153000321XYZ789");
    expect(link.normalised).to.equal(bracketed.normalised);
    expect(link.expiry).to.equal("2027-12-31");
  });

  it("names a missing GS separator instead of silently swallowing the next field", () => {
    expect(() => parseCode("0109501101530003" + "21XYZ789" + "10ABC1234567890123456")).to.throw(
      CodeFormatError,
      /GS separator missing/,
    );
  });

  it("refuses bad GTINs, missing serials, unknown AIs, bad dates and empty input", () => {
    expect(() => parseCode("(01)09501101530004(21)X")).to.throw(/check digit/);
    expect(() => parseCode("(01)09501101530003(10)LOT")).to.throw(/serial/);
    expect(() => parseCode("(01)09501101530003(239)X(21)S")).to.throw(/unknown GS1 AI \(239\)/);
    expect(() => parseCode("(01)09501101530003(17)271332(21)S")).to.throw(/month 13/);
    expect(() => parseCode("   ")).to.throw(/empty/);
    expect(() => parseCode("x".repeat(120))).to.throw(/longer than 100/);
  });

  it("keeps other codes of up to 100 printable characters", () => {
    expect(parseCode("MFR-CODE-0001").normalised).to.equal("X:MFR-CODE-0001");
  });

  it("checks GS1 check digits", () => {
    expect(gtinCheckDigitValid("09501101530003")).to.equal(true);
    expect(gtinCheckDigitValid("09501101530008")).to.equal(false);
  });
});

describe("code hashes, refs and witnesses", () => {
  it("hashes to 12 bytes, separated by domain", () => {
    const a = codeHash("CN:81234560000000011234");
    expect(a.length).to.equal(12);
    expect(codeHash("CN:81234560000000011234", "other-consortium").equals(a)).to.equal(false);
  });

  it("packs refs as 9-byte big-endian words and back", () => {
    const refs = [
      encodeRef({ runId: 7, level: Level.Case, index: 42 }),
      encodeRef({ runId: 1, level: Level.Unit, index: 0 }),
    ];
    const packed = packRefs(refs);
    expect(packed.length).to.equal(2 + 2 * 18);
    expect(unpackRefs(packed)).to.deep.equal(refs);
    expect(decodeRef(refs[0]!)).to.deep.equal({ runId: 7, level: Level.Case, index: 42 });
    expect(() => unpackRefs("0x0102")).to.throw(/multiple of 9/);
    expect(() => encodeRef({ runId: 1, level: Level.Unit, index: 2 ** 32 })).to.throw(RangeError);
    expect(() => encodeRef({ runId: 0, level: Level.Unit, index: 0 })).to.throw(RangeError);
    expect(() => packRefs([1n << 72n])).to.throw(/9 bytes/);
  });

  it("builds a witness that sorts the hashes, and refuses duplicates", () => {
    const hashes = [Buffer.from("03", "hex"), Buffer.from("01", "hex"), Buffer.from("02", "hex")];
    expect(uniquenessWitness(hashes).toString("hex")).to.equal("000100020000");
    expect(() => uniquenessWitness([hashes[0]!, hashes[0]!])).to.throw(/duplicate/);
  });
});
