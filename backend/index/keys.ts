/**
 * Layout of the Redis index. Every piece of index state is a field of a Redis hash, so one mechanism (load fields,
 * write fields, remember their prior values) serves indexing, crash recovery and reorg rollback alike.
 *
 * On Redis Cluster each key hashes to its own slot. A run's state lives in one hash (`r{runId}`), so everything a
 * scan needs about a unit, beside the code lookup itself, is one key; code lookup buckets spread evenly.
 * Byte strings (code hashes, refs, trails) are held in JavaScript as latin1 strings, one char per byte.
 */

/** Keys the indexer keeps for itself (checkpoint, undo records, journal, status): one cluster slot. */
export const META = {
  checkpoint: "{ix}:checkpoint",
  undo: "{ix}:undo",
  journal: "{ix}:journal",
  status: "{ix}:status",
} as const;

export const META_PREFIX = "{ix}:";

/**
 * Version of the fields' layout, recorded in the checkpoint: raised whenever an existing field changes its meaning,
 * so that an index built before is refused with "run npm run index:rebuild" rather than misread. 2: the daily
 * supply buckets became rings and in transit is counted per receiver (`t{receiverId}`).
 */
export const INDEX_LAYOUT = 2;

/** Code lookup: code hash → packed 9-byte ref, in 2^bits buckets of compact listpack hashes. */
export function codeSlot(codes: Buffer, bits: number, at = 0): { key: string; field: string } {
  const top = codes.readUInt32BE(at) >>> (32 - bits);
  const dropBytes = bits >> 3; // bytes wholly implied by the bucket; the rest of the hash is the field
  return { key: bucketKey(bits, top), field: codes.toString("latin1", at + dropBytes, at + 12) };
}

// Bucket key strings are made once: a back-fill looks them up for every code.
const bucketKeys = new Map<number, string[]>();
/** The key of lookup bucket `top` (the code hash's top `bits` bits). */
export function bucketKey(bits: number, top: number): string {
  let keys = bucketKeys.get(bits);
  if (!keys) bucketKeys.set(bits, (keys = []));
  return (keys[top] ??= `c:${top.toString(36)}`);
}

/** Everything about one commissioning run: meta, custody entries, trails, dispensing and settlement per item. */
export const runKey = (runId: number): string => `r{${runId}}`;

export const RUN_FIELD = {
  meta: "m",
  custody: (level: number, index: number) => `k${level}.${index}`,
  trail: (level: number, index: number) => `t${level}.${index}`,
  dispensing: (index: number) => `d${index}`,
  settlement: (index: number) => `s${index}`,
  /**
   * Units that have left pallet `index` with their cases (a case shipped, decommissioned or opened on its own):
   * kept only for pallets partly emptied, so that the pallet's next move counts what it still carries. Cases need no
   * such count: a case that lost a unit is opened, and an opened case never moves again.
   */
  palletUnitsOff: (index: number) => `o${index}`,
} as const;

/** Records kept in shards of 4,096 by id, so that no hash grows without bound on one cluster node. */
const shard = (prefix: string, id: number): string => `${prefix}:${Math.floor(id / 4096)}`;
export const participantKey = (id: number): string => shard("p", id);
export const productKey = (id: number): string => shard("pr", id);
export const batchKey = (id: number): string => shard("b", id);
export const shipmentKey = (id: number): string => shard("s", id);
/** account (lower-case hex) → participant id */
export const accountKey = (account: string): string => `pa:${account.slice(2, 4).toLowerCase()}`;
/** claim id (hex) → claim record */
export const claimKey = (claimId: string): string => `cl:${claimId.slice(2, 5)}`;
/** code hash (hex) → every ref it was commissioned as, when it was commissioned more than once */
export const CONFLICTS_KEY = "x";
/** Code prefix (`CN:<digits>`, `GS1:<digits>`) → the manufacturer (participant id) a regulator assigned it to. */
export const PREFIX_KEY = "pf";
/** Network-wide settings and totals. */
export const GLOBAL_KEY = "g";

/** Dashboard counters and the most recent activity, per participant and per batch. */
export const countersKey = (kind: "p" | "b", id: number): string => `n:${kind}${id}`;
export const activityKey = (kind: "p" | "b", id: number): string => `a:${kind}${id}`;
/** Recent activity kept per participant or batch (a ring of fields 0..n-1 plus a cursor). */
export const ACTIVITY_KEPT = 20;

/**
 * Supply figures per product (`su:{productId}`), kept by the indexer like every other field (exactly once,
 * undone on a reorg, equal after a rebuild): `c` units commissioned, `d` units dispensed, `d:{region}:{slot}`
 * units dispensed per pharmacy region and UTC day (a daily ring, see {@link dailySlot}), `dp:{pharmacyId}` units
 * dispensed per pharmacy.
 */
export const supplyKey = (productId: number): string => `su:${productId}`;
export const SUPPLY_FIELD = {
  commissioned: "c",
  dispensed: "d",
  /** Ring slot `slot` ({@link dailySlot}) of a region's units dispensed per day: `{day number}:{units}`. */
  dispensedOn: (region: string, slot: number) => `d:${region}:${slot}`,
  dispensedBy: (pharmacyId: number) => `dp:${pharmacyId}`,
  /**
   * Units dispensed per pharmacy region and UTC hour, in a ring of `retentionHours` slots per region: slot
   * `hour % retentionHours` holds `{hour}:{units}` (hour = block time / 3600) for the latest hour written to it, so
   * retention follows block time (equal after a rebuild) and needs no pruning. See {@link ringBucket}.
   */
  dispensedInHour: (region: string, slot: number) => `h:${region}:${slot}`,
  /** The product's batches (`b:{batchId}` → "1"), so that its stock is found without scanning batches. */
  batch: (batchId: number) => `b:${batchId}`,
} as const;

/** The hour number (block time in seconds / 3600) of a block time. */
export const utcHour = (seconds: number): number => Math.floor(seconds / 3600);
/** The UTC day (`YYYY-MM-DD`) of a block time in seconds. */
export const utcDay = (seconds: number): string => new Date(seconds * 1000).toISOString().slice(0, 10);
/** The UTC day number (block time in seconds / 86,400: days since 1970-01-01) of a block time. */
export const utcDayNumber = (seconds: number): number => Math.floor(seconds / 86_400);
/** The `YYYY-MM-DD` of a UTC day number, and back. */
export const dayOfNumber = (day: number): string => utcDay(day * 86_400);
export const numberOfDay = (day: string): number => utcDayNumber(Date.parse(`${day}T00:00:00Z`) / 1000);

/**
 * Daily buckets (dispensing per region, flows per organisation, past-day stock) are rings of
 * `SUPPLY_DAILY_RETENTION_DAYS` slots per field: day `n` goes to slot `n % retention`, whose value names the day it
 * holds, so a later day overwrites it. Retention follows block time (a rebuild writes the same slots) and needs no
 * pruning; an undo of a day the ring no longer holds changes nothing. A day is kept while it is one of the last
 * `retention` days up to today: no later day can have taken its slot yet.
 */
export const dailySlot = (day: number, retentionDays: number): number => day % retentionDays;
/** The oldest UTC day (number) the daily rings still hold on day `today`. */
export const oldestDayKept = (today: number, retentionDays: number): number => today - retentionDays + 1;

/** A ring slot's value: the period (hour or day number) it counts and the units counted in it. */
export const ringBucket = {
  encode: (period: number, units: number): string | null => (units === 0 ? null : `${period}:${units}`),
  decode: (value: string | null): { period: number; units: number } | null => {
    if (value === null) return null;
    const at = value.indexOf(":");
    return { period: Number(value.slice(0, at)), units: Number(value.slice(at + 1)) };
  },
};

/** A ring field named `{prefix}{slot}`: the prefix (everything before the last ':') and the slot. */
export function ringField(field: string): { prefix: string; slot: number } {
  const at = field.lastIndexOf(":");
  return { prefix: field.slice(0, at), slot: Number(field.slice(at + 1)) };
}

/**
 * Stock per batch (`sb:{batchId}`), in units, counted where goods move: a pallet's shipment moves its units' count
 * in one write per batch and holder. Every commissioned unit of the batch is in exactly one of the fields, so they
 * sum to the units commissioned:
 * - `{holderId}` (decimal participant id): units held at rest, not dispensed (manufacturer, distributor, pharmacy);
 * - `t{holderId}`: in transit to that holder (shipped to it, not yet received or taken back); the holder's
 *   participant region is where they are going;
 * - `d`: dispensed — a whole pack when dispensed, a split pack (拆零) from its first dose (from then on it can no
 *   longer be shipped, decommissioned or dispensed whole) until every dose is taken back; `x`: decommissioned
 *   (destroyed, damaged, stolen, sample).
 * Beside them, for stock at a past day: `@` the UTC day of the batch's latest stock change and `hs` the holder and
 * in-transit fields it ever used (comma-separated). The first change of a later day first copies the counters, as
 * they closed on day `@`, into {@link stockHistoryKey}: one write per batch and day it changed, not one per move.
 * Recalled and expired stock are derived at read time from the batch record.
 */
export const stockKey = (batchId: number): string => `sb:${batchId}`;
export const STOCK_FIELD = {
  held: (holderId: number) => String(holderId),
  inTransitTo: (holderId: number) => `t${holderId}`,
  dispensed: "d",
  decommissioned: "x",
  lastDay: "@",
  holders: "hs",
} as const;

/** What a per-holder stock field counts: units held by the holder, or on their way to it; null for any other. */
export function stockFieldParty(field: string): { holderId: number; inTransit: boolean } | null {
  const inTransit = field.charCodeAt(0) === 116; // "t"
  const digits = inTransit ? field.slice(1) : field;
  return /^\d+$/.test(digits) ? { holderId: Number(digits), inTransit } : null;
}

/**
 * Closing stock of a batch per UTC day it changed, in a daily ring ({@link dailySlot}): the first change of day
 * `until` writes, in slot `dailySlot(until)`, the counters as they closed on `from`, the day of the change before
 * it. They are the stock of every day from `from` to the day before `until`, so the entry serves a past day as long
 * as `until` is kept, however long ago `from` was.
 */
export const stockHistoryKey = (batchId: number): string => `sbh:${batchId}`;
export interface StockHistoryEntry {
  /** UTC day numbers: the stock held from the end of `from` until the first change on `until`. */
  from: number;
  until: number;
  stock: Record<string, number>;
}
export const stockHistory = {
  encode: (entry: StockHistoryEntry): string => JSON.stringify(entry),
  decode: (value: string): StockHistoryEntry => JSON.parse(value) as StockHistoryEntry,
};

/**
 * Flows per organisation (`fl:{participantId}`), for the fraud signals of backend/supply/flows.ts; kept like every
 * other field (exactly once, undone on a reorg, equal after a rebuild). A pharmacy's key holds
 * `r:{productId}:{slot}` units it received, `d:{productId}:{slot}` units it dispensed (net of undone dispensing, on
 * the day dispensed) and `s:{productId}:{slot}` whole packs settled for it (net of reversals, on the day settled);
 * an insurer's key holds `s:{pharmacyId}:{slot}` whole packs it settled per pharmacy. Each is a daily ring
 * ({@link dailySlot}) whose slots hold `{day number}:{units}`.
 */
export const flowKey = (participantId: number): string => `fl:${participantId}`;
export const FLOW_FIELD = {
  received: (productId: number, slot: number) => `r:${productId}:${slot}`,
  dispensed: (productId: number, slot: number) => `d:${productId}:${slot}`,
  settledFor: (productId: number, slot: number) => `s:${productId}:${slot}`,
  settledAt: (pharmacyId: number, slot: number) => `s:${pharmacyId}:${slot}`,
} as const;
