/**
 * Reads of the index, as the scan and claim APIs need them: a code's full story in a few round trips.
 */
import { id } from "ethers";
import { Level, type ItemRef } from "../codes/refs";
import type { RedisClient } from "../store/redis";
import type { BatchRecord, ClaimRecord, ParticipantRecord, ProductRecord, ShipmentRecord } from "./events";
import {
  accountKey,
  ACTIVITY_KEPT,
  activityKey,
  batchKey,
  claimKey,
  codeSlot,
  CONFLICTS_KEY,
  countersKey,
  GLOBAL_KEY,
  META,
  participantKey,
  productKey,
  RUN_FIELD,
  runKey,
  shipmentKey,
  numberOfDay,
  ringBucket,
  ringField,
  STOCK_FIELD,
  stockFieldParty,
  stockHistory,
  stockHistoryKey,
  stockKey,
  SUPPLY_FIELD,
  supplyKey,
  utcDay,
} from "./keys";
import {
  containersOf,
  type Custody,
  decodeTrail,
  describeEntry,
  type DispensingRecord,
  effectiveEntry,
  itemCount,
  type Reader,
  refFromBytes,
  type RunMeta,
  type SettlementRecord,
  type TrailEntry,
} from "./model";
import type { Value } from "./state";

/** keccak256("REGULATOR_ROLE"), as Participants.sol defines it; role grants are indexed in the `ro` hash. */
export const REGULATOR_ROLE = id("REGULATOR_ROLE");
/** The hash of role grants (`{role}:{account}` → "1") and of product codes (`{code}` → product id). */
export const ROLES_KEY = "ro";
export const PRODUCT_CODES_KEY = "prc";

/** What a scanned code resolves to under the product rule: one ref, and every other ref of the same code. */
export interface ResolvedCode {
  /** The ref of the product the code names (first mined), or null when none is of that product. */
  ref: ItemRef | null;
  /** Other refs the code was commissioned as: copies, never the answer (DUPLICATE_CODE). */
  duplicates: ItemRef[];
}

/** What a scanned code names, as far as the product rule needs it (see {@link IndexReader.resolveCode}). */
export interface CodeIdentity {
  scheme: "cn20" | "gs1" | "other";
  productCode?: string;
}

/** Per-unit state a status walk needs (see {@link IndexReader.unitStates}). */
export interface UnitState {
  index: number;
  custody: Custody;
  dispensing: DispensingRecord | null;
  settlement: SettlementRecord | null;
}

export interface CodeLookup {
  ref: ItemRef;
  /** Every ref the code was commissioned as, when more than one: a duplicate code, likely counterfeit. */
  conflicts: ItemRef[];
}

export interface TrailStep extends TrailEntry {
  /** Which packaging level moved: the item itself, or the case or pallet it was in. */
  via: Level;
}

export interface ItemView {
  ref: ItemRef;
  run: RunMeta;
  batch: BatchRecord | null;
  product: ProductRecord | null;
  manufacturer: ParticipantRecord | null;
  custody: Custody;
  holder: ParticipantRecord | null;
  trail: TrailStep[];
  dispensing: DispensingRecord | null;
  settlement: SettlementRecord | null;
}

/** What a claim check reads of a pack (see {@link IndexReader.packStates}). */
export type PackState = Omit<ItemView, "trail" | "holder">;

/** A batch's stock in units (see `stockKey` in keys.ts): they sum to the units commissioned of the batch. */
export interface BatchStock {
  batchId: number;
  lot: string;
  /** Unix seconds. */
  expiresOn: number;
  /** Recalled now, or at the close of the day asked for. */
  recalled: boolean;
  /** Units at rest per holder (manufacturer, distributor, pharmacy), by participant id; holders with none left out. */
  held: { holderId: number; units: number }[];
  /** Units in transit, in all; and per receiving holder (their participant region is where they are going). */
  inTransit: number;
  inTransitTo: { holderId: number; units: number }[];
  dispensed: number;
  decommissioned: number;
}

/** Units dispensed in one UTC hour in one pharmacy region. */
export interface HourlyDispensing {
  region: string;
  /** Block time / 3600: the hour starts at `hour * 3600` seconds. */
  hour: number;
  units: number;
}

const json = <T>(raw: string | null): T | null => (raw === null ? null : (JSON.parse(raw) as T));
const hexToRef = (hex: string): ItemRef => refFromBytes(Buffer.from(hex, "hex").toString("latin1"));

/** Distinct records kept in the read cache before it starts afresh (a bound on memory, not an LRU). */
const CACHE_MAX_ENTRIES = 100_000;

export class IndexReader {
  private readonly cache = new Map<string, Promise<unknown>>();
  private checkpointSeen: string | null = null;
  private syncing: Promise<void> | null = null;
  /** Bumped whenever the cache is dropped: a read that started before then must not fill the cache. */
  private epoch = 0;

  /**
   * `cached`: keep runs, participants, products, batches, shipments and product codes in process, dropped
   * whenever {@link sync} finds that the indexer's checkpoint moved (every write of the index moves it).
   */
  constructor(
    readonly redis: RedisClient,
    readonly codeBucketBits: number,
    private readonly options: { cached?: boolean } = {},
  ) {}

  /**
   * Reads the indexer's checkpoint and drops cached records when it moved. Call it at the start of a request,
   * in the same tick as its first reads (auto-pipelined into the same round trip): the request then sees
   * records at least as new as that checkpoint.
   */
  sync(): Promise<void> {
    // Requests arriving while a read of the checkpoint is in flight share it: one GET serves a burst.
    this.syncing ??= this.redis
      .get(META.checkpoint)
      .then((checkpoint) => {
        if (checkpoint !== this.checkpointSeen) this.dropCache(checkpoint);
      })
      .finally(() => (this.syncing = null));
    return this.syncing;
  }

  private dropCache(checkpoint: string | null): void {
    this.cache.clear();
    this.checkpointSeen = checkpoint;
    this.epoch++;
  }

  /**
   * A record through the cache, which keeps each as a settled promise: a hit hands back that promise rather than
   * a fresh one per call (a claim check's lines make dozens of hits), and only reads that succeeded are kept.
   */
  private cachedRead<T>(key: string, read: () => Promise<T>): Promise<T> {
    if (!this.options.cached) return read();
    const hit = this.cache.get(key) as Promise<T> | undefined;
    if (hit) return hit;
    const epoch = this.epoch;
    return read().then((value) => {
      if (epoch === this.epoch) {
        if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
        this.cache.set(key, Promise.resolve(value));
      }
      return value;
    });
  }

  async lookupCode(code: Buffer): Promise<CodeLookup | null> {
    return this.lookupCodes([code])[0]!;
  }

  /**
   * The lookups of several codes, started at once: each code's bucket field (one HGET per bucket key, and the
   * keys seldom repeat) and the conflicts of them all in one HMGET, so that a claim of n lines costs n + 1
   * commands rather than 2n. One promise per code, in order, so that each line goes on as soon as its reads land.
   */
  lookupCodes(codes: readonly Buffer[]): Promise<CodeLookup | null>[] {
    if (codes.length === 0) return [];
    const conflicts = this.redis.hmget(CONFLICTS_KEY, ...codes.map((c) => c.toString("hex")));
    conflicts.catch(() => undefined); // awaited by every code's lookup, unless its own read failed first
    return codes.map(async (code, i) => {
      const slot = codeSlot(code, this.codeBucketBits);
      const ref = await this.redis.hgetBuffer(slot.key, Buffer.from(slot.field, "latin1"));
      const conflict = (await conflicts)[i] ?? null;
      if (!ref) return null;
      return { ref: refFromBytes(ref.toString("latin1")), conflicts: (json<string[]>(conflict) ?? []).map(hexToRef) };
    });
  }

  /**
   * The product rule (ledger-hardening issue): a code resolves only to runs of the product it names — a Chinese
   * 20-digit code names it in digits 1-7, a GS1 code in its GTIN — whichever of those was mined first. Any other
   * ref of the code is a duplicate, never the answer. A code that names no product (a manufacturer's case or
   * pallet code) resolves to the ref mined first.
   */
  async resolveCode(identity: CodeIdentity, lookup: CodeLookup | null): Promise<ResolvedCode> {
    if (!lookup) return { ref: null, duplicates: [] };
    const refs = lookup.conflicts.length > 0 ? lookup.conflicts : [lookup.ref];
    const productId = identity.productCode ? await this.productIdByCode(identity.productCode) : null;
    let chosen: ItemRef | null = null;
    if (identity.scheme === "other" || !identity.productCode) chosen = refs[0]!;
    else if (productId !== null) {
      const products = await Promise.all(refs.map((r) => this.productOfRun(r.runId)));
      const at = products.findIndex((p) => p === productId);
      chosen = at === -1 ? null : refs[at]!;
    }
    return { ref: chosen, duplicates: refs.filter((r) => r !== chosen) };
  }

  /** The product a product code (7-digit Chinese drug identification code or GTIN-14) names. */
  productIdByCode(productCode: string): Promise<number | null> {
    return this.cachedRead(`prc:${productCode}`, async () => {
      const raw = await this.redis.hget(PRODUCT_CODES_KEY, productCode);
      return raw === null ? null : Number(raw);
    });
  }

  private async productOfRun(runId: number): Promise<number | null> {
    const run = await this.run(runId);
    const batch = run ? await this.batch(run.batchId) : null;
    return batch?.productId ?? null;
  }

  /** Whether `account` holds REGULATOR_ROLE on chain, as the index followed the role's grants and revocations. */
  isRegulator(account: string): Promise<boolean> {
    const field = `${REGULATOR_ROLE}:${account.toLowerCase()}`;
    return this.cachedRead(`ro:${field}`, async () => (await this.redis.hget(ROLES_KEY, field)) === "1");
  }

  run(runId: number): Promise<RunMeta | null> {
    return this.cachedRead(`r:${runId}`, async () =>
      json<RunMeta>(await this.redis.hget(runKey(runId), RUN_FIELD.meta)),
    );
  }

  /** Everything the index knows about one unit, case or pallet; null when it was never commissioned. */
  async item(ref: ItemRef): Promise<ItemView | null> {
    return (await this.items([ref]))[0]!;
  }

  /**
   * {@link item} of several refs, in order: the fields of refs in the same run in one HMGET (a claim's packs are
   * often of one run, and units of one case share its custody and trail), one command per run.
   */
  items(refs: readonly ItemRef[]): Promise<(ItemView | null)[]> {
    return this.readItems(refs, true) as Promise<(ItemView | null)[]>;
  }

  /**
   * {@link items} without the custody trail and the holder: what a claim check reads of its packs. The trails are
   * most of the fields read (the item's, its case's and its pallet's) and of the decoding, and a claim needs none.
   */
  packStates(refs: readonly ItemRef[]): Promise<(PackState | null)[]> {
    return this.readItems(refs, false);
  }

  private async readItems(refs: readonly ItemRef[], full: boolean): Promise<(ItemView | PackState | null)[]> {
    const out: (ItemView | PackState | null)[] = refs.map(() => null);
    const byRun = new Map<number, number[]>();
    refs.forEach((ref, i) => {
      const at = byRun.get(ref.runId);
      if (at) at.push(i);
      else byRun.set(ref.runId, [i]);
    });
    await Promise.all(
      [...byRun].map(async ([runId, at]) => {
        const run = await this.run(runId);
        if (!run) return;
        const wanted = at.filter((i) => refs[i]!.index < itemCount(run, refs[i]!.level));
        if (wanted.length === 0) return;
        const chains = wanted.map((i) => {
          const ref = refs[i]!;
          return [{ level: ref.level, index: ref.index }, ...containersOf(run, ref.level, ref.index)];
        });
        const fields = new Set<string>();
        wanted.forEach((i, k) => {
          for (const c of chains[k]!) {
            fields.add(RUN_FIELD.custody(c.level, c.index));
            if (full) fields.add(RUN_FIELD.trail(c.level, c.index));
          }
          const ref = refs[i]!;
          if (ref.level === Level.Unit)
            fields.add(RUN_FIELD.dispensing(ref.index)).add(RUN_FIELD.settlement(ref.index));
        });
        const list = [...fields];
        const values = await this.redis.hmgetBuffer(runKey(runId), ...list);
        // Each field decoded once, from the bytes Redis returned: custody entries as the latin1 strings the model
        // reads, trails as bytes, dispensing and settlement as UTF-8 JSON.
        const byField = new Map<string, Buffer | null>(list.map((f, k) => [f, values[k] ?? null]));
        await Promise.all(
          wanted.map(async (i, k) => (out[i] = await this.viewOf(refs[i]!, run, chains[k]!, byField, full))),
        );
      }),
    );
    return out;
  }

  /** An item's view (`full`) or pack state from its run's fields as read (see {@link readItems}). */
  private async viewOf(
    ref: ItemRef,
    run: RunMeta,
    chain: { level: Level; index: number }[],
    byField: Map<string, Buffer | null>,
    full: boolean,
  ): Promise<ItemView | PackState> {
    const reader: Reader = { get: (_key, field) => byField.get(field)?.toString("latin1") ?? null };
    const entry = effectiveEntry(reader, run, ref.level, ref.index);
    const transit = describeEntry(entry, () => 0);
    const shipment = transit.inTransitShipment ? await this.shipment(transit.inTransitShipment) : null;
    const custody = describeEntry(entry, () => shipment?.fromId ?? 0);
    const batch = await this.batch(run.batchId);
    const [product, manufacturer, holder] = await Promise.all([
      batch ? this.product(batch.productId) : null,
      this.participant(run.manufacturerId),
      full ? this.participant(custody.holderId) : null,
    ]);
    const unit = ref.level === Level.Unit;
    const dispensing = unit ? jsonBytes<DispensingRecord>(byField.get(RUN_FIELD.dispensing(ref.index))) : null;
    const settlement = unit ? jsonBytes<SettlementRecord>(byField.get(RUN_FIELD.settlement(ref.index))) : null;
    if (!full) return { ref, run, batch, product, manufacturer, custody, dispensing, settlement };
    // A container's moves are the item's only until the item (or a container between them) moved on its own
    // or was opened: a loose unit does not travel with its case any more, nor an opened case with its pallet.
    const trail: TrailStep[] = [];
    let leftAt = Infinity;
    for (const c of chain) {
      const own = decodeTrail(byField.get(RUN_FIELD.trail(c.level, c.index)) ?? null);
      for (const t of own)
        if (t.block < leftAt) trail.push({ kind: t.kind, ref: t.ref, block: t.block, time: t.time, via: c.level });
      if (own.length > 0) leftAt = Math.min(leftAt, own[0]!.block);
    }
    trail.sort((a, b) => a.block - b.block || a.kind - b.kind);
    return { ref, run, batch, product, manufacturer, custody, holder, trail, dispensing, settlement };
  }

  /**
   * Custody, dispensing and settlement of the units `[from, from + count)` of a run, in one round trip: what a
   * case's or pallet's contents and a batch's counts by status are made of. In-transit units name their
   * shipment (holderId 0): the caller needs no sender to count them.
   */
  async unitStates(run: RunMeta, from: number, count: number): Promise<UnitState[]> {
    const to = Math.min(run.unitCount, from + count);
    if (to <= from) return [];
    const fields = new Set<string>();
    for (let i = from; i < to; i++) {
      fields.add(RUN_FIELD.custody(Level.Unit, i));
      fields.add(RUN_FIELD.dispensing(i));
      fields.add(RUN_FIELD.settlement(i));
      for (const c of containersOf(run, Level.Unit, i)) fields.add(RUN_FIELD.custody(c.level, c.index));
    }
    const list = [...fields];
    const values = await this.redis.hmgetBuffer(runKey(run.runId), ...list);
    const byField = new Map<string, Value>(list.map((f, i) => [f, values[i]?.toString("latin1") ?? null]));
    const reader: Reader = { get: (_key, field) => byField.get(field) ?? null };
    const out: UnitState[] = [];
    for (let i = from; i < to; i++) {
      out.push({
        index: i,
        custody: describeEntry(effectiveEntry(reader, run, Level.Unit, i), () => 0),
        dispensing: jsonField<DispensingRecord>(byField, RUN_FIELD.dispensing(i)),
        settlement: jsonField<SettlementRecord>(byField, RUN_FIELD.settlement(i)),
      });
    }
    return out;
  }

  participant(id: number): Promise<ParticipantRecord | null> {
    return this.record<ParticipantRecord>("p", participantKey(id), id);
  }

  async participantByAccount(account: string): Promise<ParticipantRecord | null> {
    const lower = account.toLowerCase();
    const id = await this.cachedRead(`pa:${lower}`, () => this.redis.hget(accountKey(lower), lower));
    return id === null ? null : this.participant(Number(id));
  }

  product(id: number): Promise<ProductRecord | null> {
    return this.record<ProductRecord>("pr", productKey(id), id);
  }

  batch(id: number): Promise<BatchRecord | null> {
    return this.record<BatchRecord>("b", batchKey(id), id);
  }

  shipment(id: number): Promise<ShipmentRecord | null> {
    return this.record<ShipmentRecord>("s", shipmentKey(id), id);
  }

  async claim(claimId: string): Promise<ClaimRecord | null> {
    return json<ClaimRecord>(await this.redis.hget(claimKey(claimId), claimId));
  }

  /** Dashboard counters of a participant ("p") or batch ("b"). */
  async counters(kind: "p" | "b", id: number): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(countersKey(kind, id));
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  /** Most recent activity of a participant or batch, newest first. */
  async activity(kind: "p" | "b", id: number): Promise<Record<string, unknown>[]> {
    const raw = await this.redis.hgetall(activityKey(kind, id));
    const n = Number(raw.n ?? 0);
    const out: Record<string, unknown>[] = [];
    for (let i = n - 1; i >= Math.max(0, n - ACTIVITY_KEPT); i--) {
      const entry = raw[String(i % ACTIVITY_KEPT)];
      if (entry) out.push(JSON.parse(entry) as Record<string, unknown>);
    }
    return out;
  }

  /** The batches registered for a product, in id order. */
  async productBatchIds(productId: number): Promise<number[]> {
    const prefix = SUPPLY_FIELD.batch(0).slice(0, -1);
    const fields = await this.redis.hkeys(supplyKey(productId));
    return fields
      .filter((f) => f.startsWith(prefix))
      .map((f) => Number(f.slice(prefix.length)))
      .sort((a, b) => a - b);
  }

  /**
   * A product's stock per batch: units per holder, in transit (per receiver), dispensed and decommissioned, now or
   * — with `day` (`YYYY-MM-DD`, UTC) — as they closed that day (recalled as of that day too). Batches with no units
   * (none commissioned yet, or none by that day) are left out. A past day must be one the daily rings still keep
   * (SUPPLY_DAILY_RETENTION_DAYS up to today, see `oldestDayKept`); the API refuses older days.
   */
  async productStock(productId: number, day?: string): Promise<BatchStock[]> {
    const ids = await this.productBatchIds(productId);
    const stocks = await Promise.all(ids.map((id) => this.batchStock(id, day)));
    return stocks.filter((b): b is BatchStock => b !== null);
  }

  private async batchStock(batchId: number, day?: string): Promise<BatchStock | null> {
    const [batch, current] = await Promise.all([this.batch(batchId), this.redis.hgetall(stockKey(batchId))]);
    if (!batch) return null;
    const lastDay = current[STOCK_FIELD.lastDay];
    if (lastDay === undefined) return null;
    let counters: Record<string, number | string> = current;
    const asked = day === undefined ? null : numberOfDay(day);
    if (asked !== null && asked < Number(lastDay)) {
      // The entry whose span holds the day: the closing of its `from`, unchanged until `until`.
      const entries = Object.values(await this.redis.hgetall(stockHistoryKey(batchId))).map(stockHistory.decode);
      const entry = entries.find((e) => e.from <= asked && asked < e.until);
      if (!entry) return null;
      counters = entry.stock;
    }
    const held: BatchStock["held"] = [];
    const inTransitTo: BatchStock["inTransitTo"] = [];
    for (const [field, value] of Object.entries(counters)) {
      const party = stockFieldParty(field);
      if (party && Number(value) !== 0)
        (party.inTransit ? inTransitTo : held).push({ holderId: party.holderId, units: Number(value) });
    }
    held.sort((a, b) => a.holderId - b.holderId);
    inTransitTo.sort((a, b) => a.holderId - b.holderId);
    return {
      batchId,
      lot: batch.lot,
      expiresOn: batch.expiresOn,
      recalled: day === undefined ? batch.recalled : recalledOn(batch, day),
      held,
      inTransit: inTransitTo.reduce((sum, t) => sum + t.units, 0),
      inTransitTo,
      dispensed: Number(counters[STOCK_FIELD.dispensed] ?? 0),
      decommissioned: Number(counters[STOCK_FIELD.decommissioned] ?? 0),
    };
  }

  /**
   * Units of a product dispensed per pharmacy region and UTC hour, for the hours the index still keeps
   * (SUPPLY_HOURLY_RETENTION_HOURS back from the latest hour written to each ring slot), oldest first.
   */
  async hourlyDispensing(productId: number): Promise<HourlyDispensing[]> {
    const raw = await this.redis.hgetall(supplyKey(productId));
    const prefix = SUPPLY_FIELD.dispensedInHour("", 0).slice(0, 2);
    const out: HourlyDispensing[] = [];
    for (const [field, value] of Object.entries(raw)) {
      if (!field.startsWith(prefix)) continue;
      const { period: hour, units } = ringBucket.decode(value)!;
      // h:{region}:{slot}: a region may itself hold ':', the slot never does.
      out.push({ region: ringField(field).prefix.slice(prefix.length), hour, units });
    }
    return out.sort((a, b) => a.hour - b.hour || a.region.localeCompare(b.region));
  }

  async totals(): Promise<Record<string, string>> {
    return this.redis.hgetall(GLOBAL_KEY);
  }

  private record<T>(kind: string, key: string, id: number): Promise<T | null> {
    if (!id) return Promise.resolve(null);
    return this.cachedRead(`${kind}:${id}`, async () => json<T>(await this.redis.hget(key, String(id))));
  }
}

/** Whether a batch was recalled at the close of UTC day `day`, from its recall history. */
function recalledOn(batch: BatchRecord, day: string): boolean {
  let recalled = false;
  for (const r of batch.recalls) if (utcDay(r.time) <= day) recalled = r.action === "recalled";
  return recalled;
}

/** A JSON field as the bytes Redis returned (UTF-8 text). */
const jsonBytes = <T>(raw: Buffer | null | undefined): T | null =>
  raw == null ? null : (JSON.parse(raw.toString("utf8")) as T);

/** A JSON field read as bytes (latin1) holding UTF-8 text. */
function jsonField<T>(byField: Map<string, Value>, field: string): T | null {
  const raw = byField.get(field);
  return raw == null ? null : (JSON.parse(Buffer.from(raw, "latin1").toString("utf8")) as T);
}
