/**
 * What every route needs, built once by scripts/api.ts (and by the tests): settings, Redis, the index reader,
 * the chain client, the API key store, the alert store, the log and the metrics.
 */
import type { AlertSettings, AlertStore } from "../alerts";
import type { LedgerChain } from "../chain/client";
import type { Config } from "../config/env";
import type { IndexReader } from "../index/query";
import type { Logger } from "../log";
import type { RedisClient } from "../store/redis";
import type { ClaimSettings } from "./claims-config";
import type { CommissionSettings } from "./commissioning";
import type { ApiKeyStore } from "./keys";
import type { ApiMetrics } from "./metrics";
import type { Writer } from "./writes";

export type ApiConfig = Config & AlertSettings & ClaimSettings & CommissionSettings;

export interface ApiContext {
  config: ApiConfig;
  redis: RedisClient;
  reader: IndexReader;
  /** The chain node, for health (is it reachable, how far is the index behind). */
  rpc: LedgerChain;
  keys: ApiKeyStore;
  alerts: AlertStore;
  log: Logger;
  metrics: ApiMetrics;
  /** The write pipeline: signing keys, nonces, idempotency, batching, read-your-writes (backend/api/writes.ts). */
  writer: Writer;
}

export const CALLER_ROLES = ["regulator", "manufacturer", "distributor", "pharmacy", "insurer"] as const;
export type CallerRole = (typeof CALLER_ROLES)[number];

/** Business roles as the contracts number them (Participants.sol). */
export const ROLE_BY_NUMBER: Record<number, CallerRole> = {
  1: "manufacturer",
  2: "distributor",
  3: "pharmacy",
  4: "insurer",
};

/** Who is calling: the API key's organisation as the chain knows it (res.locals.caller). */
export interface Caller {
  keyId: string;
  /** The key's label (e.g. "front counter 2"). */
  name: string;
  /** The organisation's on-chain account (lower-case hex). */
  account: string;
  /** The organisation's participant id; null for a regulator account that is not an onboarded participant. */
  participantId: number | null;
  role: CallerRole;
}
