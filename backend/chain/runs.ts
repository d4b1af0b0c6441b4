import { codeHash, DEFAULT_CODE_HASH_DOMAIN } from "../codes/parse";
import { caseCount, merkleRoot, palletCount, RunShape, totalCodes, uniquenessWitness } from "../codes/run";

/** Calldata for {Commissioning.commission}: packed code hashes, uniqueness witness and the expected root. */
export interface RunPayload {
  shape: RunShape;
  hashes: Buffer[];
  codes: Buffer;
  witness: Buffer;
  root: string;
}

/**
 * Prepares a commissioning run from normalised codes listed as the contract expects them: units in packing order,
 * then case codes, then pallet codes.
 */
export function buildRun(normalised: string[], shape: RunShape, domain = DEFAULT_CODE_HASH_DOMAIN): RunPayload {
  const expected = totalCodes(shape);
  if (normalised.length !== expected) {
    throw new Error(
      `run of ${shape.unitCount} units needs ${expected} codes with its cases and pallets, got ${normalised.length}`,
    );
  }
  const hashes = normalised.map((c) => codeHash(c, domain));
  return { shape, hashes, codes: Buffer.concat(hashes), witness: uniquenessWitness(hashes), root: merkleRoot(hashes) };
}

/** Check digits of Chinese codes are unpublished; demo and test codes use a deterministic stand-in. */
function demoCheckDigits(prefix: string): string {
  let h = 0;
  for (const ch of prefix) h = (h * 31 + ch.charCodeAt(0)) % 10000;
  return String(h).padStart(4, "0");
}

/**
 * Normalised demo codes for a run: 20-digit unit codes `8` + 6-digit product + 9-digit serial + 4 check digits,
 * then SSCC-like case and pallet codes. `serialBase` keeps runs apart.
 */
export function demoRunCodes(productCode7: string, shape: RunShape, serialBase: number): string[] {
  const codes: string[] = [];
  for (let i = 0; i < shape.unitCount; i++) {
    const prefix = productCode7 + String(serialBase + i).padStart(9, "0");
    codes.push(`CN:${prefix}${demoCheckDigits(prefix)}`);
  }
  for (let i = 0; i < caseCount(shape); i++) codes.push(`X:CASE-${productCode7}-${serialBase + i}`);
  for (let i = 0; i < palletCount(shape); i++) codes.push(`X:PALLET-${productCode7}-${serialBase + i}`);
  return codes;
}
