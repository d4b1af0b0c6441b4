/**
 * Redis layout of the alert store. Alerts are service data, not derived from the chain, so every key starts with
 * `svc:`, which the index's key pattern (INDEX_KEY in backend/index/store.ts) never matches: `index:rebuild`
 * leaves them alone. All keys share the cluster hash tag `{alerts}`, so that raising an alert (its record, its
 * de-dup marker, its index entries and the day's event stream) is one atomic script on one node. Alerts are rare
 * next to scans (and de-duplicated), so one slot carries them comfortably.
 */
import { createHash } from "crypto";

const P = "svc:{alerts}:";

export const ALERT_KEYS = {
  /** Hash: `doc` (the alert's fixed part, JSON), `status`, `count`, `lastSeen` (ms), `closeReason`, `updatedAt`. */
  alert: (id: string) => `${P}a:${id}`,
  /** List of history entries (JSON), oldest first. */
  history: (id: string) => `${P}h:${id}`,
  /** String: the open alert for a code + reason + organisation, expiring a de-dup window after its last occurrence. */
  dedup: (fingerprint: string) => `${P}d:${fingerprint}`,
  /** Counter of a key's recent misread-prone failures, expiring a repeat window after the first. */
  keyFailures: (keyId: string) => `${P}f:${keyId}`,
  /** Sorted sets of alert ids (all scores 0, ids sort by time): every alert, per organisation, per manufacturer, per code. */
  all: `${P}ix:all`,
  byOrg: (participantId: number) => `${P}ix:o:${participantId}`,
  byManufacturer: (manufacturerId: number) => `${P}ix:m:${manufacturerId}`,
  byCode: (digest: string) => `${P}ix:c:${digest}`,
  /** Stream of alert events (raised, repeated, transition, note) per UTC day, for consumers and audit. */
  log: (day: string) => `${P}log:${day}`,
} as const;

export const ALERT_KEY_PREFIX = P;

const digest = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 24);

/** Index key part for a code: its parsed identity, or what was sent when it did not parse. */
export const codeDigest = (normalisedOrRaw: string): string => digest(normalisedOrRaw);

/** The same code, reason, reporting organisation and organisations concerned (in any order) are one alert. */
export const dedupFingerprint = (code: string, reason: string, org: string, concerned: readonly number[]): string =>
  digest(`${code}\u0000${reason}\u0000${org}\u0000${[...concerned].sort((a, b) => a - b).join(",")}`);

/**
 * Alert ids sort by the time they were raised: `al_` + milliseconds in base 36 (9 characters, good until the
 * year 5188) + 10 random hex digits. That makes the id both the pagination cursor and the time index.
 */
export const ID_PATTERN = /^al_[0-9a-z]{9}[0-9a-f]{10}$/;
export const idTimePrefix = (ms: number): string => `al_${Math.max(0, Math.floor(ms)).toString(36).padStart(9, "0")}`;
