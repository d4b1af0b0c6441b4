/**
 * The alert store: raises alerts (de-duplicated), lists them per scope with filters and cursor pagination, and
 * moves them through their investigation with a history of who did what and when. See keys.ts for the layout.
 */
import { randomBytes } from "crypto";
import { luaScript, type RedisClient } from "../store/redis";
import type { AlertSettings } from "./config";
import { ALERT_KEYS, codeDigest, dedupFingerprint, ID_PATTERN, idTimePrefix } from "./keys";
import {
  type Alert,
  type AlertActor,
  type AlertClass,
  type AlertSource,
  type AlertStatus,
  canTransition,
  type CloseReason,
  countsAsScannerFailure,
  euCodeOf,
  type HistoryEntry,
  isConcerned,
  mayTransition,
  type RaiseInput,
  triage,
} from "./model";

/** Raised by the store's operations; the API maps `kind` to 404, 403, 409 and 400. */
export class AlertError extends Error {
  constructor(
    readonly kind: "not-found" | "forbidden" | "conflict" | "invalid",
    message: string,
    readonly status?: AlertStatus,
  ) {
    super(message);
    this.name = "AlertError";
  }
}

/** Which alerts a listing may see: all (regulator), those an organisation sees, those about a manufacturer's products. */
export type AlertScope =
  { kind: "all" } | { kind: "org"; participantId: number } | { kind: "manufacturer"; manufacturerId: number };

export interface AlertQuery {
  scope: AlertScope;
  status?: AlertStatus;
  class?: AlertClass;
  source?: AlertSource;
  reason?: string;
  /** A code's parsed identity, or what was sent when it does not parse (see {@link codeDigest}). */
  code?: string;
  /** Milliseconds since the epoch, inclusive. */
  since?: number;
  until?: number;
  limit: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

export interface AlertPage {
  alerts: Alert[];
  /** Where to continue (newest first); null at the end. A page may hold fewer than `limit` alerts when filters are sparse. */
  next: string | null;
}

const MAX_RAW_CODE = 200;
const MAX_SNAPSHOT_BYTES = 16_384;
const MAX_NOTE = 2_000;
/** Index entries examined per listing request, so that a sparse filter cannot make one request unbounded. */
const MAX_EXAMINED = 2_000;
const RETRIES = 8;

// KEYS: dedup, existing alert, new alert, new history, day stream, existing history, index sets...
// ARGV: expected existing id ("" for none), new id, doc, now ms, window ms (0: until closed), history entry, stream TTL s
// Returns the outcome, the alert's id, and the alert as it now is (its hash and history: no second round trip).
const RAISE_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return {'retry', ''} end
if cur then
  local status = redis.call('HGET', KEYS[2], 'status')
  if status and status ~= 'closed' then
    local n = redis.call('HINCRBY', KEYS[2], 'count', 1)
    redis.call('HSET', KEYS[2], 'lastSeen', ARGV[4])
    if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
    redis.call('XADD', KEYS[5], '*', 'event', 'repeated', 'id', cur, 'count', n)
    redis.call('EXPIRE', KEYS[5], ARGV[7])
    return {'repeated', cur, redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[6], 0, -1)}
  end
end
redis.call('HSET', KEYS[3], 'doc', ARGV[3], 'status', 'new', 'count', 1, 'lastSeen', ARGV[4], 'updatedAt', ARGV[4])
redis.call('RPUSH', KEYS[4], ARGV[6])
if ARGV[5] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5]) end
for i = 7, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[2]) end
redis.call('XADD', KEYS[5], '*', 'event', 'raised', 'id', ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[7])
return {'raised', ARGV[2], redis.call('HGETALL', KEYS[3]), redis.call('LRANGE', KEYS[4], 0, -1)}
`;

// KEYS: alert, history, day stream.
// ARGV: expected status, new status ("" = a note), entry, now ms, close reason, stream TTL s, alert id
const CHANGE_SCRIPT = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= ARGV[1] then return 'changed' end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updatedAt', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'closeReason', ARGV[5]) else redis.call('HDEL', KEYS[1], 'closeReason') end
end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], '*', 'event', ARGV[2] == '' and 'note' or 'transition', 'id', ARGV[7], 'to', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 'ok'
`;

const raiseScript = luaScript<[string, string, string[]?, string[]?]>(RAISE_SCRIPT);
const changeScript = luaScript<string>(CHANGE_SCRIPT);

/** The fixed part of an alert, written once when it is raised. */
type AlertDoc = Omit<Alert, "status" | "count" | "lastSeen" | "closeReason" | "history">;

const iso = (ms: number): string => new Date(ms).toISOString();
const day = (ms: number): string => iso(ms).slice(0, 10);
const actorOf = (a: AlertActor): HistoryEntry["by"] => ({
  keyId: a.keyId,
  participantId: a.participantId,
  role: a.role,
  ...(a.name ? { name: a.name } : {}),
});

export class AlertStore {
  constructor(
    private readonly redis: RedisClient,
    readonly settings: AlertSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records a failed verification. The same code, reason and organisation within the de-dup window of its last
   * occurrence increments the open alert's counter instead of raising another; after it is closed, a new one opens.
   */
  async raise(input: RaiseInput): Promise<Alert> {
    const at = input.at ?? this.now();
    const raw = input.code.raw.trim().slice(0, MAX_RAW_CODE);
    const codeId = input.code.normalised ?? raw;
    const org = input.reporter.participantId !== null ? `p${input.reporter.participantId}` : `k${input.reporter.keyId}`;
    const participants = [
      ...new Set(
        [input.reporter.participantId, ...(input.participants ?? []), input.manufacturerId ?? null].filter(
          (p): p is number => typeof p === "number" && p > 0,
        ),
      ),
    ];
    // The organisations concerned are part of what is de-duplicated: an insurer checking one code for two
    // pharmacies raises an alert for each, so that each sees its own (and neither the other's claim).
    const dedupKey = ALERT_KEYS.dedup(dedupFingerprint(codeId, input.reason, org, participants));
    const failuresKey = ALERT_KEYS.keyFailures(input.reporter.keyId);
    const countFailure = input.source === "scan" && countsAsScannerFailure(input.reason);
    const [failures] = await Promise.all([
      countFailure ? this.redis.incr(failuresKey) : Promise.resolve(0),
      countFailure ? this.redis.pexpire(failuresKey, this.settings.ALERT_REPEAT_WINDOW_SECONDS * 1000, "NX") : null,
    ]);
    const hints = [...(input.hints ?? [])];
    const { class: alertClass, basis } = triage(input.reason, hints, failures, this.settings.ALERT_REPEAT_THRESHOLD);
    const id = `${idTimePrefix(at)}${randomBytes(5).toString("hex")}`;
    const doc: AlertDoc = {
      id,
      source: input.source,
      reason: input.reason,
      class: alertClass,
      triageBasis: basis,
      euCode: euCodeOf(input.reason),
      code: {
        raw,
        normalised: input.code.normalised,
        ...(input.code.productCode ? { productCode: input.code.productCode } : {}),
      },
      hints,
      reporter: {
        keyId: input.reporter.keyId,
        participantId: input.reporter.participantId,
        role: input.reporter.role,
        ...(input.reporter.name ? { name: input.reporter.name } : {}),
        ...(input.reporter.account ? { account: input.reporter.account } : {}),
      },
      participants,
      manufacturerId: input.manufacturerId ?? null,
      snapshot: compactSnapshot(input.snapshot),
      firstSeen: iso(at),
    };
    const raised: HistoryEntry = { at: iso(at), by: actorOf(input.reporter), action: "raised", to: "new" };
    const indexKeys = [
      ALERT_KEYS.all,
      ALERT_KEYS.byCode(codeDigest(codeId)),
      ...participants.map(ALERT_KEYS.byOrg),
      ...(doc.manufacturerId ? [ALERT_KEYS.byManufacturer(doc.manufacturerId)] : []),
    ];
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const existing = (await this.redis.get(dedupKey)) ?? "";
      const keys = [
        dedupKey,
        ALERT_KEYS.alert(existing || id),
        ALERT_KEYS.alert(id),
        ALERT_KEYS.history(id),
        ALERT_KEYS.log(day(at)),
        ALERT_KEYS.history(existing || id),
        ...indexKeys,
      ];
      const [outcome, , fields, history] = await raiseScript(this.redis, keys, [
        existing,
        id,
        JSON.stringify(doc),
        at,
        input.dedup === "until_closed" ? 0 : this.settings.ALERT_DEDUP_WINDOW_SECONDS * 1000,
        JSON.stringify(raised),
        this.settings.ALERT_LOG_RETENTION_DAYS * 86_400,
      ]);
      if (outcome !== "retry") return toAlert(pairs(fields!), history!);
    }
    throw new Error("alert de-dup marker kept changing: too much contention on one code");
  }

  async get(id: string): Promise<Alert | null> {
    if (!ID_PATTERN.test(id)) return null;
    const [hash, history] = await Promise.all([
      this.redis.hgetall(ALERT_KEYS.alert(id)),
      this.redis.lrange(ALERT_KEYS.history(id), 0, -1),
    ]);
    return hash.doc ? toAlert(hash, history) : null;
  }

  /** Alerts newest first, filtered, a page at a time. */
  async list(query: AlertQuery): Promise<AlertPage> {
    const key = query.code ? ALERT_KEYS.byCode(codeDigest(query.code)) : scopeKey(query.scope);
    const min = query.since !== undefined ? `[${idTimePrefix(query.since)}` : "-";
    let max = query.until !== undefined ? `(${idTimePrefix(query.until + 1)}` : "+";
    if (query.cursor !== undefined) {
      if (!ID_PATTERN.test(query.cursor)) throw new AlertError("invalid", "cursor is not one this service gave out");
      if (max === "+" || query.cursor < max.slice(1)) max = `(${query.cursor}`;
    }
    const found: Alert[] = [];
    let examined = 0;
    let last: string | null = null;
    let exhausted = false;
    const chunk = Math.min(500, Math.max(query.limit * 2, 50));
    while (found.length < query.limit && examined < MAX_EXAMINED) {
      const ids = await this.redis.zrange(key, max, min, "BYLEX", "REV", "LIMIT", 0, chunk);
      const hashes = await Promise.all(ids.map((id) => this.redis.hgetall(ALERT_KEYS.alert(id))));
      let i = 0;
      for (; i < ids.length && found.length < query.limit; i++) {
        const hash = hashes[i]!;
        if (hash.doc && matches(hash, query)) found.push(toAlert(hash, []));
      }
      examined += i;
      if (i === ids.length && ids.length < chunk) {
        exhausted = true;
        break;
      }
      last = ids[i - 1]!;
      max = `(${last}`;
    }
    return { alerts: await this.withHistory(found), next: exhausted ? null : last };
  }

  /** Moves an alert on; closing needs a reason. Invalid transitions are conflicts, others' alerts not found. */
  async transition(
    id: string,
    change: { to: AlertStatus; reason?: CloseReason; note?: string },
    actor: AlertActor,
  ): Promise<Alert> {
    if (change.to === "closed" && !change.reason) throw new AlertError("invalid", "closing an alert needs a reason");
    if (change.to !== "closed" && change.reason)
      throw new AlertError("invalid", "a reason is given only when closing an alert");
    return this.change(id, actor, (alert) => {
      if (!canTransition(alert.status, change.to))
        throw new AlertError("conflict", `an alert that is ${alert.status} cannot move to ${change.to}`, alert.status);
      if (!mayTransition(actor, alert, change.to))
        throw new AlertError(
          "forbidden",
          change.to === "investigating"
            ? "only a regulator takes an alert back into investigation"
            : "only a regulator closes an alert",
        );
      return {
        to: change.to,
        entry: {
          action: "transition",
          from: alert.status,
          to: change.to,
          ...(change.reason ? { reason: change.reason } : {}),
          ...(change.note ? { note: change.note.slice(0, MAX_NOTE) } : {}),
        },
        closeReason: change.to === "closed" ? change.reason! : "",
      };
    });
  }

  /** Adds a note to an alert's history without changing its status. */
  async addNote(id: string, note: string, actor: AlertActor): Promise<Alert> {
    return this.change(id, actor, () => ({ to: "", entry: { action: "note", note: note.slice(0, MAX_NOTE) } }));
  }

  /** Whether `actor` may see the alert at all (a regulator, or an organisation it concerns). */
  visibleTo(alert: Alert, actor: AlertActor): boolean {
    return isConcerned(actor, alert);
  }

  private async change(
    id: string,
    actor: AlertActor,
    decide: (alert: Alert) => {
      to: AlertStatus | "";
      entry: Omit<HistoryEntry, "at" | "by">;
      closeReason?: string;
    },
  ): Promise<Alert> {
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const alert = await this.get(id);
      if (!alert || !this.visibleTo(alert, actor)) throw new AlertError("not-found", `no alert ${id}`);
      const { to, entry, closeReason } = decide(alert);
      const at = this.now();
      const full: HistoryEntry = { at: iso(at), by: actorOf(actor), ...entry };
      const outcome = await changeScript(
        this.redis,
        [ALERT_KEYS.alert(id), ALERT_KEYS.history(id), ALERT_KEYS.log(day(at))],
        [
          alert.status,
          to,
          JSON.stringify(full),
          at,
          closeReason ?? "",
          this.settings.ALERT_LOG_RETENTION_DAYS * 86_400,
          id,
        ],
      );
      if (outcome === "ok") return (await this.get(id))!;
      if (outcome === "missing") throw new AlertError("not-found", `no alert ${id}`);
    }
    throw new AlertError("conflict", `alert ${id} kept changing; try again`);
  }

  private async withHistory(alerts: Alert[]): Promise<Alert[]> {
    const histories = await Promise.all(alerts.map((a) => this.redis.lrange(ALERT_KEYS.history(a.id), 0, -1)));
    return alerts.map((a, i) => ({ ...a, history: histories[i]!.map((h) => JSON.parse(h) as HistoryEntry) }));
  }
}

function scopeKey(scope: AlertScope): string {
  if (scope.kind === "org") return ALERT_KEYS.byOrg(scope.participantId);
  if (scope.kind === "manufacturer") return ALERT_KEYS.byManufacturer(scope.manufacturerId);
  return ALERT_KEYS.all;
}

function inScope(doc: AlertDoc, scope: AlertScope): boolean {
  if (scope.kind === "org") return doc.participants.includes(scope.participantId);
  if (scope.kind === "manufacturer") return doc.manufacturerId === scope.manufacturerId;
  return true;
}

function matches(hash: Record<string, string>, q: AlertQuery): boolean {
  if (q.status && hash.status !== q.status) return false;
  const doc = JSON.parse(hash.doc!) as AlertDoc;
  if (q.class && doc.class !== q.class) return false;
  if (q.source && doc.source !== q.source) return false;
  if (q.reason && doc.reason !== q.reason) return false;
  // The per-code index holds every scope's alerts for the code.
  return !q.code || inScope(doc, q.scope);
}

/** HGETALL's reply as a script returns it (field, value, field, value...) as an object. */
function pairs(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

function toAlert(hash: Record<string, string>, history: string[]): Alert {
  const doc = JSON.parse(hash.doc!) as AlertDoc;
  return {
    ...doc,
    status: hash.status as AlertStatus,
    count: Number(hash.count),
    lastSeen: iso(Number(hash.lastSeen)),
    closeReason: (hash.closeReason as CloseReason | undefined) ?? null,
    history: history.map((h) => JSON.parse(h) as HistoryEntry),
  };
}

/** A snapshot larger than 16 KB is not kept whole: an alert is a pointer to a moment, not an archive. */
function compactSnapshot(snapshot: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (!snapshot) return null;
  const text = JSON.stringify(snapshot);
  if (Buffer.byteLength(text) <= MAX_SNAPSHOT_BYTES) return snapshot;
  return { truncated: true, bytes: Buffer.byteLength(text), keys: Object.keys(snapshot).slice(0, 50) };
}
