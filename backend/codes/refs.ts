/** Packaging levels, as the contracts number them (contracts/ledger/Refs.sol). */
export enum Level {
  Unit = 0,
  Case = 1,
  Pallet = 2,
}

export interface ItemRef {
  runId: number;
  level: Level;
  index: number;
}

const UINT32_MAX = 0xffffffff;

/** ref = runId << 40 | level << 32 | index — the compact address of a unit, case or pallet on chain. */
export function encodeRef({ runId, level, index }: ItemRef): bigint {
  if (!Number.isInteger(runId) || runId < 1 || runId > UINT32_MAX) throw new RangeError(`run id ${runId} out of range`);
  if (!(level in Level)) throw new RangeError(`unknown level ${level}`);
  if (!Number.isInteger(index) || index < 0 || index > UINT32_MAX) throw new RangeError(`index ${index} out of range`);
  return (BigInt(runId) << 40n) | (BigInt(level) << 32n) | BigInt(index);
}

export function decodeRef(ref: bigint): ItemRef {
  return {
    runId: Number((ref >> 40n) & 0xffffffffn),
    level: Number((ref >> 32n) & 0xffn) as Level,
    index: Number(ref & 0xffffffffn),
  };
}

export const unitRef = (runId: number, index: number): bigint => encodeRef({ runId, level: Level.Unit, index });
export const caseRef = (runId: number, index: number): bigint => encodeRef({ runId, level: Level.Case, index });
export const palletRef = (runId: number, index: number): bigint => encodeRef({ runId, level: Level.Pallet, index });

/** Bytes of one packed ref: the big-endian uint72 (run id, level, index), as the contracts take ref lists. */
export const PACKED_REF_BYTES = 9;

/** Packs refs into the `bytes` lists the contracts take and emit. */
export function packRefs(refs: readonly bigint[]): string {
  const limit = 1n << BigInt(PACKED_REF_BYTES * 8);
  for (const r of refs) if (r <= 0n || r >= limit) throw new RangeError(`ref ${r} does not fit in 9 bytes`);
  return "0x" + refs.map((r) => r.toString(16).padStart(PACKED_REF_BYTES * 2, "0")).join("");
}

/** Unpacks a `bytes` ref list from calldata or an event. */
export function unpackRefs(packed: string | Uint8Array): bigint[] {
  const hex = typeof packed === "string" ? packed.replace(/^0x/, "") : Buffer.from(packed).toString("hex");
  if (hex.length % (PACKED_REF_BYTES * 2) !== 0)
    throw new Error(`ref list of ${hex.length / 2} bytes is not a multiple of 9`);
  const out: bigint[] = [];
  for (let i = 0; i < hex.length; i += PACKED_REF_BYTES * 2)
    out.push(BigInt("0x" + hex.slice(i, i + PACKED_REF_BYTES * 2)));
  return out;
}
