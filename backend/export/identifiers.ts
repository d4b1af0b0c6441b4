/**
 * Identifiers of the EPCIS export. GS1 codes become GS1 Digital Link URIs on id.gs1.org (valid EPC identifiers in
 * EPCIS 2.0): `https://id.gs1.org/01/{GTIN-14}/21/{serial}` for a serialised pack, `https://id.gs1.org/00/{SSCC}`
 * for a logistic unit. Chinese 20-digit drug traceability codes have no GS1 EPC scheme; they are named in the
 * consortium's own URN namespace, `urn:drugtrace:cn20:{20 digits}`, and so are other codes
 * (`urn:drugtrace:code:{code, percent-encoded}`), items whose code the export was not given
 * (`urn:drugtrace:item:{runId}.{level}.{index}`, the ledger's own address of the item), participants
 * (`urn:drugtrace:party:{participantId}`) and shipments (`urn:drugtrace:shipment:{shipmentId}`).
 */
import type { ParsedCode } from "../codes/parse";
import { Level, type ItemRef } from "../codes/refs";

export const LEVEL_NAMES: Record<Level, "unit" | "case" | "pallet"> = {
  [Level.Unit]: "unit",
  [Level.Case]: "case",
  [Level.Pallet]: "pallet",
};

const GS1_RESOLVER = "https://id.gs1.org";

/** The EPCIS identifier of a code as the parser read it. */
export function epcOfCode(code: ParsedCode): string {
  if (code.scheme === "gs1") {
    if (code.sscc) return `${GS1_RESOLVER}/00/${code.sscc}`;
    if (code.productCode && code.serial)
      return `${GS1_RESOLVER}/01/${code.productCode}/21/${encodeURIComponent(code.serial)}`;
  }
  if (code.scheme === "cn20") return `urn:drugtrace:cn20:${code.normalised.replace(/^CN:/, "")}`;
  return `urn:drugtrace:code:${encodeURIComponent(code.normalised.replace(/^X:/, ""))}`;
}

/** The ledger's address of an item, when its code is not known to the export. */
export function epcOfRef(ref: ItemRef): string {
  return `urn:drugtrace:item:${ref.runId}.${LEVEL_NAMES[ref.level]}.${ref.index}`;
}

export const partyUri = (participantId: number): string => `urn:drugtrace:party:${participantId}`;
export const shipmentUri = (shipmentId: number): string => `urn:drugtrace:shipment:${shipmentId}`;
