/**
 * The index holds code hashes, never the codes: an export names an item by its code when the operator gives the
 * codes (the code asked about, or the CSV the batch was commissioned from), looked up in the index by hash with
 * the product rule the scan uses, and by the ledger's address of it otherwise.
 */
import { codeHash, tryParseCode, type ParsedCode } from "../codes/parse";
import { encodeRef, type ItemRef } from "../codes/refs";
import type { IndexReader } from "../index/query";
import { epcOfCode, epcOfRef } from "./identifiers";
import type { Identify } from "./trail";

export class UnknownCodeError extends Error {}

/** Where one code is on the ledger (the ref the scan would answer with), or why it is not. */
export async function refOfCode(
  reader: IndexReader,
  raw: string,
  domain: string,
): Promise<{ ref: ItemRef; code: ParsedCode }> {
  const parsed = tryParseCode(raw);
  if (!parsed.ok) throw new UnknownCodeError(`${raw}: ${parsed.error.message}`);
  const lookup = await reader.lookupCode(codeHash(parsed.code.normalised, domain));
  const resolved = await reader.resolveCode(parsed.code, lookup);
  if (!resolved.ref) throw new UnknownCodeError(`${raw}: not commissioned on the ledger (as indexed)`);
  return { ref: resolved.ref, code: parsed.code };
}

/** Names the items of `codes` (those commissioned) by their codes, the rest by their ledger address. */
export async function namingFromCodes(
  reader: IndexReader,
  codes: readonly string[],
  domain: string,
): Promise<Identify> {
  const names = new Map<string, string>();
  const CHUNK = 500;
  for (let i = 0; i < codes.length; i += CHUNK)
    await Promise.all(
      codes.slice(i, i + CHUNK).map(async (raw) => {
        try {
          const { ref, code } = await refOfCode(reader, raw, domain);
          names.set(String(encodeRef(ref)), epcOfCode(code));
        } catch (err) {
          if (!(err instanceof UnknownCodeError)) throw err;
        }
      }),
    );
  return (ref) => names.get(String(encodeRef(ref))) ?? epcOfRef(ref);
}
