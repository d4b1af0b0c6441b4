/**
 * A pharmacy's consent to one insurer settling its units under one claim: the EIP-712 signature that
 * {Settlement.settle} and {Settlement.settlePartial} require, so that no other insurer can settle what the pharmacy
 * billed.
 */
import type { Signer, TypedDataDomain, TypedDataField } from "ethers";

export const CONSENT_TYPES: Record<string, TypedDataField[]> = {
  SettlementConsent: [
    { name: "insurer", type: "address" },
    { name: "claimRef", type: "bytes32" },
    { name: "units", type: "bytes" },
    { name: "quantity", type: "uint32" },
  ],
};

export interface ConsentTerms {
  /** The insurer's account: only it can settle with this consent. */
  insurer: string;
  claimRef: string;
  /** Packed unit refs (see backend/codes/refs.ts); one ref for a split pack. */
  units: string;
  /** 0 for whole packs; the doses of a split pack otherwise. */
  quantity: number;
}

export function consentDomain(chainId: bigint | number, ledgerAddress: string): TypedDataDomain {
  return { name: "DrugLedger", version: "1", chainId, verifyingContract: ledgerAddress };
}

/** The pharmacy signs; the insurer passes the signature to `settle` or `settlePartial`. */
export async function signConsent(pharmacy: Signer, domain: TypedDataDomain, terms: ConsentTerms): Promise<string> {
  return pharmacy.signTypedData(domain, CONSENT_TYPES, terms);
}
