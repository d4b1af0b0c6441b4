/**
 * What an alert is, how it is triaged and how it moves through its investigation. Alerts are the service's own
 * records (not derived from the chain): every failed verification (UNKNOWN or ALERT at a scan, a refused claim
 * line, a duplicate code) raises one, so that the regulator, the manufacturer and the organisation concerned can
 * work through it the way the EU national verification systems do.
 */

export const ALERT_STATUSES = ["new", "investigating", "closed"] as const;
export type AlertStatus = (typeof ALERT_STATUSES)[number];

/** Why an alert was closed: most alerts in national systems end as scanner or process errors. */
export const CLOSE_REASONS = [
  "scanner_error",
  "process_error",
  "billing_error",
  "false_positive",
  "resold",
  "confirmed_counterfeit",
  "stolen",
  "other",
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

export const ALERT_CLASSES = [
  "likely_scanner_error",
  "suspect_pack",
  "process_error",
  "supply_risk",
  "suspect_flow",
] as const;
/**
 * Triage class: where to look first (`supply_risk`: a product short, surging or expiring in a region;
 * `suspect_flow`: a pharmacy's or insurer's flows look like fraud).
 */
export type AlertClass = (typeof ALERT_CLASSES)[number];

/** `supply`: raised by the API's periodic supply evaluation (backend/api/supply-alerts.ts), not by a request. */
export const ALERT_SOURCES = ["scan", "claim", "lms", "supply"] as const;
export type AlertSource = (typeof ALERT_SOURCES)[number];

/**
 * EU national systems' alert codes where one fits (EMVO/NMVO alert catalogue: A2 batch not found, A3 pack not
 * found, A7 pack already in the requested state, A24 status change refused, A52 expiry mismatch, A68 batch
 * mismatch). Only those are used; a reason with no equivalent (a code commissioned twice) has none.
 */
export type EuAlertCode = "A2" | "A3" | "A7" | "A24" | "A52" | "A68";

interface ReasonRule {
  /** Class when no scanner evidence (hint, repeated failures) points elsewhere. */
  class: AlertClass;
  /** A misread code can cause it, so hints and a scanner's repeated failures make it a likely scanner error. */
  misreadProne: boolean;
  eu: EuAlertCode | null;
}

/**
 * Reasons the scan, claim and verification routes report. A reason not listed here (a new scan verdict) is
 * accepted and triaged as a suspect pack, misread-prone, with no EU code: the safe default for a human to look at.
 */
const REASONS: Record<string, ReasonRule> = {
  UNKNOWN_CODE: { class: "suspect_pack", misreadProne: true, eu: "A3" },
  UNKNOWN_BATCH: { class: "suspect_pack", misreadProne: true, eu: "A2" },
  INVALID_CODE: { class: "likely_scanner_error", misreadProne: true, eu: null },
  LOT_MISMATCH: { class: "suspect_pack", misreadProne: true, eu: "A68" },
  EXPIRY_MISMATCH: { class: "suspect_pack", misreadProne: true, eu: "A52" },
  // The same code twice in one claim is most often a double read at the counter.
  REPEATED_IN_CLAIM: { class: "likely_scanner_error", misreadProne: true, eu: null },
  DUPLICATE_CODE: { class: "suspect_pack", misreadProne: false, eu: null },
  ALREADY_SETTLED: { class: "suspect_pack", misreadProne: false, eu: "A7" },
  ALREADY_DISPENSED: { class: "suspect_pack", misreadProne: false, eu: "A7" },
  // A write the ledger refused because the caller does not hold the pack (EU A24: status change refused).
  NOT_IN_YOUR_CUSTODY: { class: "suspect_pack", misreadProne: false, eu: "A24" },
  DISPENSED_BY_OTHER_PHARMACY: { class: "suspect_pack", misreadProne: false, eu: "A24" },
  SPLIT_QUANTITY_EXCEEDED: { class: "suspect_pack", misreadProne: false, eu: "A24" },
  RECALLED: { class: "suspect_pack", misreadProne: false, eu: "A24" },
  DECOMMISSIONED: { class: "suspect_pack", misreadProne: false, eu: "A24" },
  NOT_DISPENSED: { class: "process_error", misreadProne: false, eu: "A24" },
  EXPIRED: { class: "process_error", misreadProne: false, eu: "A24" },
  EXPIRED_AT_DISPENSE: { class: "process_error", misreadProne: false, eu: "A24" },
  IN_TRANSIT: { class: "process_error", misreadProne: false, eu: "A24" },
  // Supply evaluation (backend/supply/signals.ts): per product and region, with the figures in the snapshot.
  SHORTAGE_RISK: { class: "supply_risk", misreadProne: false, eu: null },
  DEMAND_SURGE: { class: "supply_risk", misreadProne: false, eu: null },
  EXPIRY_RISK: { class: "supply_risk", misreadProne: false, eu: null },
  // Fraud signals from flows (backend/supply/flows.ts): rates and patterns, no single pack to blame.
  FLOW_DISPENSED_ABOVE_RECEIVED: { class: "suspect_flow", misreadProne: false, eu: null },
  FLOW_SETTLED_ABOVE_RECEIVED: { class: "suspect_flow", misreadProne: false, eu: null },
  FLOW_DISPENSED_ABOVE_BASELINE: { class: "suspect_flow", misreadProne: false, eu: null },
  FLOW_SETTLED_ABOVE_BASELINE: { class: "suspect_flow", misreadProne: false, eu: null },
  FLOW_SETTLEMENT_CONCENTRATION: { class: "suspect_flow", misreadProne: false, eu: null },
  FLOW_CROSS_REGION: { class: "suspect_flow", misreadProne: false, eu: null },
};

const DEFAULT_RULE: ReasonRule = { class: "suspect_pack", misreadProne: true, eu: null };

export const KNOWN_REASONS = Object.keys(REASONS);

export const euCodeOf = (reason: string): EuAlertCode | null => (REASONS[reason] ?? DEFAULT_RULE).eu;

export interface Triage {
  class: AlertClass;
  /** Why this class, for the person triaging: `hint:<HINT>`, `repeated:<n>` (failures of this key) or `reason`. */
  basis: string;
}

/**
 * A likely scanner error when the parser's hints fired (a 19-digit code, a CAPS-LOCK case swap) or the same
 * key failed repeatedly within a short window, for reasons a misread can cause; otherwise the reason decides
 * (an unknown code with no hint, a duplicate, a pack settled elsewhere or recalled is a suspect pack).
 */
export function triage(reason: string, hints: readonly string[], recentFailuresOfKey: number, repeatThreshold: number) {
  const rule = REASONS[reason] ?? DEFAULT_RULE;
  if (rule.misreadProne && hints.length > 0)
    return { class: "likely_scanner_error", basis: `hint:${hints[0]}` } satisfies Triage;
  if (rule.misreadProne && recentFailuresOfKey >= repeatThreshold)
    return { class: "likely_scanner_error", basis: `repeated:${recentFailuresOfKey}` } satisfies Triage;
  return { class: rule.class, basis: "reason" } satisfies Triage;
}

/** Only reasons a misread can cause count towards a key's repeated failures (a recalled pack is no misread). */
export const countsAsScannerFailure = (reason: string): boolean => (REASONS[reason] ?? DEFAULT_RULE).misreadProne;

/** Who acts: the parts of the API's caller the alert store needs (the API's Caller satisfies it). */
export interface AlertActor {
  keyId: string;
  name?: string;
  account?: string | null;
  participantId: number | null;
  role: string;
}

export interface AlertCode {
  /** What was scanned or claimed, as sent (trimmed, at most 200 characters). */
  raw: string;
  /** Parsed identity (`CN:…`, `GS1:01…21…`, `X:…`); null when the code did not parse. */
  normalised: string | null;
  productCode?: string;
}

export interface RaiseInput {
  source: AlertSource;
  reason: string;
  code: AlertCode;
  /** Parser hints that fired (e.g. LENGTH_19_EXPECTED_20, CASE_SWAPPED). */
  hints?: readonly string[];
  /** Who scanned or asked. */
  reporter: AlertActor;
  /** Other organisations the alert concerns (the pharmacy of a claim, the one that dispensed the pack). */
  participants?: readonly number[];
  /** The manufacturer of the product, when the code resolved to one. */
  manufacturerId?: number | null;
  /** A compact snapshot of the answer at that moment: the code's history as the index told it. */
  snapshot?: Record<string, unknown>;
  /** Milliseconds since the epoch; defaults to now. */
  at?: number;
  /**
   * `window` (the default): the same alert again within ALERT_DEDUP_WINDOW_SECONDS of its last occurrence is counted
   * on the open alert. `until_closed`: counted on the open alert however long ago it was raised, a new one only once
   * it is closed (a condition re-evaluated periodically, like a shortage, is one alert while it is being handled).
   */
  dedup?: "window" | "until_closed";
}

export interface HistoryEntry {
  at: string;
  by: { keyId: string; participantId: number | null; role: string; name?: string };
  action: "raised" | "transition" | "note";
  from?: AlertStatus;
  to?: AlertStatus;
  reason?: CloseReason;
  note?: string;
}

export interface Alert {
  id: string;
  status: AlertStatus;
  source: AlertSource;
  reason: string;
  class: AlertClass;
  triageBasis: string;
  euCode: EuAlertCode | null;
  code: AlertCode;
  hints: string[];
  reporter: AlertActor;
  /** Organisations that see the alert: the reporter, the organisations concerned and the manufacturer. */
  participants: number[];
  manufacturerId: number | null;
  snapshot: Record<string, unknown> | null;
  /** First and latest occurrence (ISO-8601 UTC) and how many times it occurred within the de-dup window. */
  firstSeen: string;
  lastSeen: string;
  count: number;
  closeReason: CloseReason | null;
  history: HistoryEntry[];
}

/** The investigation workflow: new → investigating → closed; a regulator may close at once or reopen. */
const TRANSITIONS: Record<AlertStatus, readonly AlertStatus[]> = {
  new: ["investigating", "closed"],
  investigating: ["closed"],
  closed: ["investigating"],
};

export const canTransition = (from: AlertStatus, to: AlertStatus): boolean => TRANSITIONS[from].includes(to);

/**
 * Who may move an alert: a regulator, any valid transition; an organisation the alert concerns (reporter,
 * concerned party or manufacturer) may only take a new alert into investigation, and add notes. Only a regulator
 * closes or reopens: closing decides what happened (counterfeit, resold, a scanner error), which is theirs to say.
 */
export function mayTransition(actor: AlertActor, alert: Alert, to: AlertStatus): boolean {
  if (actor.role === "regulator") return true;
  return isConcerned(actor, alert) && alert.status === "new" && to === "investigating";
}

export function isConcerned(actor: AlertActor, alert: Alert): boolean {
  return (
    actor.role === "regulator" || (actor.participantId !== null && alert.participants.includes(actor.participantId))
  );
}
