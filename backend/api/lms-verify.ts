/**
 * GS1 Lightweight Verification Messaging (LMS 1.0.2; GS1 US implementation guideline 1.2/1.3 for DSCSA saleable
 * returns): does a pack with this GTIN, serial, lot and expiry exist? The answer's shape and failure reasons follow
 * the standard as responders (e.g. rmagee/quartet-vrs) and clients speak it; the route (lms.ts) adds the HTTP rules.
 */
import { randomUUID } from "crypto";
import type { AlertStore } from "../alerts";
import type { AlertActor } from "../alerts/model";
import { codeHash, type ParsedCode } from "../codes/parse";
import type { IndexReader } from "../index/query";
import type { Logger } from "../log";
import { resolveCode } from "./claims-check";

export const LMS_FAILURE_REASONS = [
  "No_match_GTIN_Serial",
  "No_match_GTIN_Serial_Lot_Expiry",
  "No_match_GTIN_Serial_Lot",
  "No_match_GTIN_Serial_Expiry",
  "No_reason_provided",
] as const;
export type LmsFailureReason = (typeof LMS_FAILURE_REASONS)[number];

/** GS1 US 1.3 additional information values (capitalised, as 1.3 writes them). */
export const LMS_ADDITIONAL_INFO = ["Expired", "ExpirationExtended", "Recalled", "Suspect", "Illegitimate"] as const;
export type LmsAdditionalInfo = (typeof LMS_ADDITIONAL_INFO)[number];

export interface LmsRequest {
  gtin: string;
  lot: string;
  serial: string;
  /** YYYY-MM-DD, from `exp=YYMMDD` (day 00 = end of month); absent when the client sent none. */
  expiry?: string;
  corrUUID?: string;
}

export interface LmsResponse {
  verificationTimestamp: string;
  responderGLN: string;
  data: { verified: boolean; verificationFailureReason?: LmsFailureReason; additionalInfo?: LmsAdditionalInfo };
  corrUUID: string;
}

export interface LmsDeps {
  reader: IndexReader;
  alerts: AlertStore;
  codeHashDomain: string;
  responderGLN: string;
  log?: Logger;
  now?: () => number;
}

const DAY_SECONDS = 86_400;

/** The ledger keeps expiry as an instant; a printed YYMMDD is a local date, so a day either side matches. */
export const sameExpiryDay = (date: string, expiresOnSeconds: number): boolean =>
  Math.abs(Date.parse(`${date}T00:00:00Z`) / 1000 - expiresOnSeconds) <= 2 * DAY_SECONDS;

/** Verifies one pack; a failed verification raises an alert for the requester. */
export async function verifyPack(deps: LmsDeps, request: LmsRequest, caller: AlertActor): Promise<LmsResponse> {
  const nowMs = (deps.now ?? Date.now)();
  const code: ParsedCode = {
    scheme: "gs1",
    normalised: `GS1:01${request.gtin}21${request.serial}`,
    productCode: request.gtin,
    serial: request.serial,
    lot: request.lot,
    hints: [],
    ...(request.expiry ? { expiry: request.expiry } : {}),
  };
  const resolved = await resolveCode(deps.reader, code, codeHash(code.normalised, deps.codeHashDomain));
  const view = resolved.ref ? await deps.reader.item(resolved.ref) : null;
  const data: LmsResponse["data"] = { verified: false };
  let alertReason: string | null = null;
  if (!view || !view.batch) {
    data.verificationFailureReason = "No_match_GTIN_Serial";
    alertReason = "UNKNOWN_CODE";
  } else {
    const lotMatches = view.batch.lot === request.lot;
    const expiryMatches = request.expiry === undefined || sameExpiryDay(request.expiry, view.batch.expiresOn);
    if (lotMatches && expiryMatches) data.verified = true;
    else {
      data.verificationFailureReason = !lotMatches
        ? expiryMatches
          ? "No_match_GTIN_Serial_Lot"
          : "No_match_GTIN_Serial_Lot_Expiry"
        : "No_match_GTIN_Serial_Expiry";
      alertReason = lotMatches ? "EXPIRY_MISMATCH" : "LOT_MISMATCH";
    }
    const suspect = resolved.duplicates.length > 0 || view.custody.decommissioned;
    if (suspect) data.additionalInfo = "Suspect";
    else if (view.batch.recalled) data.additionalInfo = "Recalled";
    else if (view.batch.expiresOn * 1000 < nowMs) data.additionalInfo = "Expired";
    if (resolved.duplicates.length > 0) alertReason ??= "DUPLICATE_CODE";
  }
  const corrUUID = request.corrUUID ?? randomUUID();
  if (alertReason) {
    try {
      await deps.alerts.raise({
        source: "lms",
        reason: alertReason,
        code: { raw: code.normalised, normalised: code.normalised, productCode: request.gtin },
        reporter: caller,
        manufacturerId: view?.run.manufacturerId ?? null,
        snapshot: { request: { ...request, corrUUID }, data, lot: view?.batch?.lot ?? null },
        at: nowMs,
      });
    } catch (err) {
      deps.log?.error({ err: (err as Error).message }, "verification could not raise an alert");
    }
  }
  return {
    verificationTimestamp: new Date(nowMs).toISOString(),
    responderGLN: deps.responderGLN,
    data,
    corrUUID,
  };
}
