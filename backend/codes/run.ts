import { keccak256 } from "ethers";
import { Level } from "./refs";

/** Bytes of a truncated code hash: 96 bits keep the expected number of collisions among 10^11 codes below 10^-7. */
export const CODE_HASH_BYTES = 12;

/** Geometry of a commissioning run, as {Commissioning.commission} derives it. */
export interface RunShape {
  unitCount: number;
  unitsPerCase: number;
  casesPerPallet: number;
}

export function caseCount(shape: RunShape): number {
  return shape.unitsPerCase === 0 ? 0 : Math.ceil(shape.unitCount / shape.unitsPerCase);
}

export function palletCount(shape: RunShape): number {
  return shape.casesPerPallet === 0 ? 0 : Math.ceil(caseCount(shape) / shape.casesPerPallet);
}

export function totalCodes(shape: RunShape): number {
  return shape.unitCount + caseCount(shape) + palletCount(shape);
}

/** Position of an item in the run's code list and Merkle tree: units, then cases, then pallets. */
export function treePosition(shape: RunShape, level: Level, index: number): number {
  if (level === Level.Unit) return index;
  if (level === Level.Case) return shape.unitCount + index;
  return shape.unitCount + caseCount(shape) + index;
}

/** The item at a tree position (inverse of {@link treePosition}). */
export function itemAt(shape: RunShape, position: number): { level: Level; index: number } {
  if (position < shape.unitCount) return { level: Level.Unit, index: position };
  const cases = caseCount(shape);
  if (position < shape.unitCount + cases) return { level: Level.Case, index: position - shape.unitCount };
  return { level: Level.Pallet, index: position - shape.unitCount - cases };
}

/** Splits the packed `codes` bytes of a UnitsCommissioned event into 12-byte hashes. */
export function splitCodes(packed: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  const buf = Buffer.from(packed);
  for (let off = 0; off < buf.length; off += CODE_HASH_BYTES) out.push(buf.subarray(off, off + CODE_HASH_BYTES));
  return out;
}

/**
 * The uniqueness witness {Commissioning.commission} checks: 2-byte positions that order the hashes strictly
 * ascending. Throws on a duplicate, which the contract would refuse anyway.
 */
export function uniquenessWitness(codes: Buffer[]): Buffer {
  const order = codes.map((_, i) => i).sort((a, b) => Buffer.compare(codes[a]!, codes[b]!));
  const witness = Buffer.alloc(order.length * 2);
  order.forEach((position, k) => {
    if (k > 0 && Buffer.compare(codes[order[k - 1]!]!, codes[position]!) === 0) {
      throw new Error(`duplicate code hash at positions ${order[k - 1]} and ${position}`);
    }
    witness.writeUInt16BE(position, k * 2);
  });
  return witness;
}

function hashBytes(data: Buffer): Buffer {
  return Buffer.from(keccak256(data).slice(2), "hex");
}

/** Codes hashed together into one Merkle leaf, as {Commissioning.CODES_PER_LEAF}. */
export const CODES_PER_LEAF = 32;

const ZERO = Buffer.alloc(32);

/** All levels of the run's Merkle tree, leaves first; an odd level pairs its last node with zero. */
export function merkleLevels(codes: Buffer[]): Buffer[][] {
  const leaves: Buffer[] = [];
  for (let i = 0; i < codes.length; i += CODES_PER_LEAF) {
    leaves.push(hashBytes(Buffer.concat(codes.slice(i, i + CODES_PER_LEAF))));
  }
  const levels: Buffer[][] = [leaves];
  while (levels[levels.length - 1]!.length > 1) {
    const below = levels[levels.length - 1]!;
    const above: Buffer[] = [];
    for (let j = 0; j < below.length; j += 2) above.push(hashBytes(Buffer.concat([below[j]!, below[j + 1] ?? ZERO])));
    levels.push(above);
  }
  return levels;
}

export function merkleRoot(codes: Buffer[]): string {
  return "0x" + merkleLevels(codes).at(-1)![0]!.toString("hex");
}

/** What {Commissioning.verifyCode} takes to prove the code at `position`: its leaf's codes and the path. */
export interface CodeProof {
  leafCodes: string;
  proof: string[];
}

export function merkleProof(codes: Buffer[], levels: Buffer[][], position: number): CodeProof {
  const leaf = Math.floor(position / CODES_PER_LEAF);
  const proof: string[] = [];
  let p = leaf;
  for (let l = 0; l < levels.length - 1; l++) {
    proof.push("0x" + (levels[l]![p ^ 1] ?? ZERO).toString("hex"));
    p >>= 1;
  }
  const start = leaf * CODES_PER_LEAF;
  return { leafCodes: "0x" + Buffer.concat(codes.slice(start, start + CODES_PER_LEAF)).toString("hex"), proof };
}
