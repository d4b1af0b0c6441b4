/**
 * Event handlers: how each ledger event changes the index. Handlers are synchronous and work on a
 * {@link BatchState}; they mirror the contract's own rules (for instance that dispensing, shipping loose or
 * decommissioning a unit opens its case), since the chain emits the change, not the derived state.
 */
import { unpackRefs, decodeRef, Level } from "../codes/refs";
import type {
  BatchRecalledEvent,
  BatchRecallLiftedEvent,
  BatchRegisteredEvent,
  CodePrefixAssignedEvent,
  CodePrefixRevokedEvent,
  DecommissionedEvent,
  DispensingUndoneEvent,
  PartialDispensingUndoneEvent,
  PartialSettlementReversedEvent,
  ParticipantOnboardedEvent,
  ParticipantReinstatedEvent,
  ParticipantSuspendedEvent,
  ProductReassignedEvent,
  ProductRegisteredEvent,
  ReturnWindowChangedEvent,
  RoleGrantedEvent,
  RoleRevokedEvent,
  RunLimitChangedEvent,
  SettlementReversedEvent,
  ShipmentCreatedEvent,
  ShipmentDiscrepancyEvent,
  ShipmentReceivedEvent,
  ShipmentReturnedEvent,
  UnitDispensedPartiallyEvent,
  UnitSettledPartiallyEvent,
  UnitsCommissionedEvent,
  UnitsDispensedEvent,
  UnitsSettledEvent,
} from "../../typechain-types/contracts/DrugLedger";
import {
  accountKey,
  ACTIVITY_KEPT,
  activityKey,
  batchKey,
  claimKey,
  CONFLICTS_KEY,
  countersKey,
  GLOBAL_KEY,
  participantKey,
  PREFIX_KEY,
  productKey,
  RUN_FIELD,
  runKey,
  shipmentKey,
  STOCK_FIELD,
  stockHistoryKey,
  stockKey,
  SUPPLY_FIELD,
  supplyKey,
  ringBucket,
  dailySlot,
  stockFieldParty,
  stockHistory,
  utcDayNumber,
  utcHour,
  flowKey,
  FLOW_FIELD,
} from "./keys";
import {
  DECOMMISSIONED,
  type DispensingRecord,
  encodeTrailEntry,
  IN_TRANSIT,
  LOOSE_UNITS,
  OPENED,
  caseUnits,
  ownEntry,
  palletUnits,
  readRun,
  type RunMeta,
  type SettlementRecord,
  TrailKind,
} from "./model";
import type { CodeConflict } from "./codes";
import { type BatchState, fromBytes, MISS, toBytes } from "./state";

/** A decoded ledger event with where and when it happened. */
export interface LedgerEvent {
  name: string;
  args: Record<string, unknown>;
  block: number;
  blockHash: string;
  logIndex: number;
  time: number;
  tx: string;
}

export interface HandlerContext {
  /** Codes of this batch's commissioning events already held by another ref (see codes.ts). */
  codeConflicts: ReadonlyMap<LedgerEvent, readonly CodeConflict[]>;
  /** Hourly dispensing buckets kept per product and region (SUPPLY_HOURLY_RETENTION_HOURS). */
  supplyHourlyRetentionHours: number;
  /** Days kept in the daily rings: dispensing, flows, past-day stock (SUPPLY_DAILY_RETENTION_DAYS). */
  supplyDailyRetentionDays: number;
}

export interface ParticipantRecord {
  id: number;
  account: string;
  role: number;
  name: string;
  licence: string;
  region: string;
  suspended: boolean;
  suspensionReason?: string;
  onboardedAt: number;
  /** Manufacturers: the code prefixes a regulator assigned (`CN:<digits>`, `GS1:<digits>`), in assignment order. */
  codePrefixes?: string[];
}

export interface ProductRecord {
  id: number;
  manufacturerId: number;
  productCode: string;
  name: string;
  approvalNumber: string;
  packageSpec: string;
  packQuantity: number;
}

export interface BatchRecord {
  id: number;
  productId: number;
  manufacturerId: number;
  lot: string;
  manufacturedOn: number;
  expiresOn: number;
  recalled: boolean;
  recalls: { action: "recalled" | "lifted"; by: string; reason: string; block: number; time: number }[];
  runs: number[];
}

export interface ShipmentRecord {
  id: number;
  fromId: number;
  toId: number;
  items: string;
  itemCount: number;
  received: number;
  returned: number;
  outstanding: number;
  /** The shipment closed (nothing in transit) with fewer items received than shipped. */
  discrepancy: boolean;
  shippedAt: number;
  block: number;
  tx: string;
  history: { action: "received" | "returned"; items: number; block: number; time: number; tx: string }[];
}

export interface ClaimRecord {
  claimId: string;
  claimRef: string;
  insurerId: number;
  pharmacyId: number;
  unitsSettled: number;
  unitsReversed: number;
  dosesSettled: number;
  firstBlock: number;
  lastBlock: number;
  lastTime: number;
}

type Handler = (ev: LedgerEvent, s: BatchState, ctx: HandlerContext) => void;
const args = <T>(ev: LedgerEvent): T => ev.args as T;
const num = (v: bigint): number => Number(v);

// ---- small typed accessors over the state ----

function getJson<T>(s: BatchState, key: string, field: string): T | null {
  const raw = s.get(key, field);
  return raw === null ? null : (JSON.parse(fromBytes(raw)) as T);
}

function setJson(s: BatchState, key: string, field: string, value: unknown): void {
  s.set(key, field, value === null ? null : toBytes(JSON.stringify(value)));
}

function update<T>(s: BatchState, key: string, field: string, change: (current: T) => void): T {
  const current = getJson<T>(s, key, field);
  if (current === null) throw new Error(`index is missing ${key} ${field}`);
  change(current);
  setJson(s, key, field, current);
  return current;
}

function add(s: BatchState, key: string, field: string, by: number): void {
  if (by === 0) return;
  const raw = s.get(key, field);
  const next = (raw === null ? 0 : Number(raw)) + by;
  s.set(key, field, next === 0 ? null : String(next));
}

function count(s: BatchState, kind: "p" | "b", id: number, counts: Record<string, number>): void {
  for (const [name, by] of Object.entries(counts)) add(s, countersKey(kind, id), name, by);
}

/** Appends to a participant's or batch's ring of recent activity. */
function activity(s: BatchState, kind: "p" | "b", id: number, ev: LedgerEvent, detail: object): void {
  const key = activityKey(kind, id);
  const n = Number(s.get(key, "n") ?? 0);
  setJson(s, key, String(n % ACTIVITY_KEPT), { event: ev.name, block: ev.block, time: ev.time, tx: ev.tx, ...detail });
  s.set(key, "n", String(n + 1));
}

const setOwn = (s: BatchState, runId: number, level: Level, index: number, entry: bigint): void =>
  s.set(runKey(runId), RUN_FIELD.custody(level, index), entry === 0n ? null : entry.toString());

function appendTrail(
  s: BatchState,
  runId: number,
  level: Level,
  index: number,
  kind: TrailKind,
  ref: number,
  ev: LedgerEvent,
): void {
  const field = RUN_FIELD.trail(level, index);
  const prior = s.get(runKey(runId), field) ?? "";
  s.set(runKey(runId), field, prior + encodeTrailEntry({ kind, ref, block: ev.block, time: ev.time }));
}

/** Groups refs by run, loading the fields every walk needs in one pass. */
function itemsByRun(s: BatchState, packed: string, fields: (run: RunMeta, level: Level, index: number) => string[]) {
  const items = unpackRefs(packed).map(decodeRef);
  const runs = new Map<number, RunMeta>();
  for (const item of items) {
    if (runs.has(item.runId)) continue;
    const meta = readRun(s, item.runId);
    if (meta) runs.set(item.runId, meta);
  }
  if (runs.size < new Set(items.map((i) => i.runId)).size)
    throw s.hasMissing ? MISS : new Error("index has no run of a listed item");
  const needed = new Map<number, Set<string>>();
  for (const item of items) {
    let set = needed.get(item.runId);
    if (!set) needed.set(item.runId, (set = new Set()));
    for (const f of fields(runs.get(item.runId)!, item.level, item.index)) set.add(f);
  }
  let complete = true;
  for (const [runId, set] of needed) complete = s.need(runKey(runId), set) && complete;
  if (!complete) throw MISS;
  return items.map((item) => ({ ...item, run: runs.get(item.runId)! }));
}

const caseOf = (run: RunMeta, index: number): number => Math.floor(index / run.unitsPerCase);

/** The pallet a case sits on, when the run has pallets. */
const palletOf = (run: RunMeta, caseIndex: number): number | null =>
  run.casesPerPallet === 0 ? null : Math.floor(caseIndex / run.casesPerPallet);

/** The count of units off a case's pallet, which the case leaving the pallet writes (see palletUnitsOff). */
function palletFields(run: RunMeta, caseIndex: number): string[] {
  const pallet = palletOf(run, caseIndex);
  return pallet === null ? [] : [RUN_FIELD.palletUnitsOff(pallet)];
}

/** A unit's case entry and trail, which opening the case writes, and what opening it takes off its pallet. */
function caseFields(run: RunMeta, level: Level, index: number): string[] {
  if (level !== Level.Unit || run.unitsPerCase === 0) return [];
  const caseIndex = caseOf(run, index);
  return [
    RUN_FIELD.custody(Level.Case, caseIndex),
    RUN_FIELD.trail(Level.Case, caseIndex),
    ...palletFields(run, caseIndex),
  ];
}

/** Units an item moves: 1, a case's (never opened when it moves), or what is still on a pallet. */
function movedFields(run: RunMeta, level: Level, index: number): string[] {
  if (level === Level.Case) return palletFields(run, index);
  if (level === Level.Pallet) return [RUN_FIELD.palletUnitsOff(index)];
  return [];
}

/**
 * Custody fields a move reads and writes: the item's own entry and trail, a loose unit's case, and the count of
 * units off the pallet it moves or leaves.
 */
function moveFields(run: RunMeta, level: Level, index: number): string[] {
  return [
    RUN_FIELD.custody(level, index),
    RUN_FIELD.trail(level, index),
    ...caseFields(run, level, index),
    ...movedFields(run, level, index),
  ];
}

/**
 * The units an item carries when it moves. A unit leaving its case opens the case, and an opened case never moves
 * again, so a case that moves holds all its units; a pallet holds its units less those of cases that left it.
 */
function unitsCarried(s: BatchState, run: RunMeta, level: Level, index: number): number {
  if (level === Level.Unit) return 1;
  if (level === Level.Case) return caseUnits(run, index);
  return palletUnits(run, index) - Number(s.get(runKey(run.runId), RUN_FIELD.palletUnitsOff(index)) ?? 0);
}

/** A case gets an entry of its own (`priorOwn` 0 before): it no longer follows its pallet, nor do its units. */
function leavesPallet(s: BatchState, run: RunMeta, caseIndex: number, priorOwn: bigint): void {
  const pallet = palletOf(run, caseIndex);
  if (priorOwn !== 0n || pallet === null) return;
  add(s, runKey(run.runId), RUN_FIELD.palletUnitsOff(pallet), caseUnits(run, caseIndex));
}

/** Unit fields a dispensing or settlement walk reads and writes. */
function unitFields(run: RunMeta, level: Level, index: number): string[] {
  return [RUN_FIELD.dispensing(index), RUN_FIELD.settlement(index), ...caseFields(run, level, index)];
}

/** Custody._takeFromHolder: a unit leaving its case opens the case (pinned at its holder) and flags it. */
function detachFromCase(
  ev: LedgerEvent,
  s: BatchState,
  run: RunMeta,
  level: Level,
  index: number,
  holderId: number,
): void {
  if (level !== Level.Unit || run.unitsPerCase === 0) return;
  const caseIndex = caseOf(run, index);
  let caseOwn = ownEntry(s, run.runId, Level.Case, caseIndex);
  leavesPallet(s, run, caseIndex, caseOwn);
  if ((caseOwn & OPENED) === 0n) {
    caseOwn = OPENED | BigInt(holderId);
    appendTrail(s, run.runId, Level.Case, caseIndex, TrailKind.Opened, holderId, ev);
  }
  setOwn(s, run.runId, Level.Case, caseIndex, caseOwn | LOOSE_UNITS);
}

/**
 * Custody._takeAll: items leave their holder (shipped or decommissioned), loose units opening their cases and
 * cases leaving their pallets; their units go from the holder's stock to `stockTo`.
 */
function takeAll(
  ev: LedgerEvent,
  s: BatchState,
  ctx: HandlerContext,
  packed: string,
  holderId: number,
  entry: bigint,
  kind: TrailKind,
  trailRef: number,
  stockTo: string,
) {
  const items = itemsByRun(s, packed, moveFields);
  const stock = new StockMoves();
  for (const { run, level, index } of items) {
    stock.move(run.batchId, STOCK_FIELD.held(holderId), stockTo, unitsCarried(s, run, level, index));
    if (level === Level.Case) leavesPallet(s, run, index, ownEntry(s, run.runId, level, index));
    detachFromCase(ev, s, run, level, index, holderId);
    setOwn(s, run.runId, level, index, entry);
    appendTrail(s, run.runId, level, index, kind, trailRef, ev);
  }
  stock.write(s, ev, ctx);
  return items;
}

/** Custody._openCase: dispensing a unit opens its case where it is. */
function openCase(ev: LedgerEvent, s: BatchState, run: RunMeta, index: number, holderId: number): void {
  if (run.unitsPerCase === 0) return;
  const caseIndex = caseOf(run, index);
  const caseOwn = ownEntry(s, run.runId, Level.Case, caseIndex);
  if ((caseOwn & OPENED) !== 0n) return;
  leavesPallet(s, run, caseIndex, caseOwn);
  setOwn(s, run.runId, Level.Case, caseIndex, OPENED | BigInt(holderId));
  appendTrail(s, run.runId, Level.Case, caseIndex, TrailKind.Opened, holderId, ev);
}

/** A unit dispensed by a pharmacy, whole or (with `split`) in part; dispensing opens its case. */
function recordDispensing(
  ev: LedgerEvent,
  s: BatchState,
  run: RunMeta,
  index: number,
  pharmacyId: number,
  prescriptionHash: string,
  split?: DispensingRecord["split"],
): void {
  openCase(ev, s, run, index, pharmacyId);
  const record: DispensingRecord = { pharmacyId, prescriptionHash, block: ev.block, time: ev.time, tx: ev.tx };
  if (split) record.split = split;
  setJson(s, runKey(run.runId), RUN_FIELD.dispensing(index), record);
}

/** Units (one each) go from one stock field of their batch to another. */
function moveStock(
  s: BatchState,
  ev: LedgerEvent,
  ctx: HandlerContext,
  units: { run: RunMeta }[],
  from: string,
  to: string,
): void {
  const stock = new StockMoves();
  for (const { run } of units) stock.move(run.batchId, from, to, 1);
  stock.write(s, ev, ctx);
}

/** Adds a count per batch of the units listed. */
function countPerBatch(s: BatchState, units: { run: RunMeta }[], name: string, sign: 1 | -1): void {
  const perBatch = new Map<number, number>();
  for (const u of units) perBatch.set(u.run.batchId, (perBatch.get(u.run.batchId) ?? 0) + 1);
  for (const [batchId, n] of perBatch) count(s, "b", batchId, { [name]: sign * n });
}

/** The product a run's batch belongs to (loaded on the first pass, like any field). */
function productOfRun(s: BatchState, run: { batchId: number }): number {
  const batch = getJson<BatchRecord>(s, batchKey(run.batchId), String(run.batchId));
  if (!batch) throw s.hasMissing ? MISS : new Error(`index has no batch ${run.batchId}`);
  return batch.productId;
}

/**
 * Supply figures of units dispensed (sign 1) or taken back (sign -1): per product, per pharmacy, and per the
 * pharmacy's region and the UTC day of the dispensing (an undo subtracts from the day it was dispensed on).
 */
function countDispensedSupply(
  s: BatchState,
  ctx: HandlerContext,
  pharmacyId: number,
  units: { run: RunMeta; dispensedAt: number }[],
  sign: 1 | -1,
): void {
  const pharmacy = getJson<ParticipantRecord>(s, participantKey(pharmacyId), String(pharmacyId));
  if (!pharmacy) throw s.hasMissing ? MISS : new Error(`index has no participant ${pharmacyId}`);
  for (const { run, dispensedAt } of units) {
    const key = supplyKey(productOfRun(s, run));
    add(s, key, SUPPLY_FIELD.dispensed, sign);
    add(s, key, SUPPLY_FIELD.dispensedBy(pharmacyId), sign);
    const day = utcDayNumber(dispensedAt);
    addToRing(
      s,
      key,
      SUPPLY_FIELD.dispensedOn(pharmacy.region, dailySlot(day, ctx.supplyDailyRetentionDays)),
      day,
      sign,
    );
    const hour = utcHour(dispensedAt);
    addToRing(s, key, SUPPLY_FIELD.dispensedInHour(pharmacy.region, hour % ctx.supplyHourlyRetentionHours), hour, sign);
  }
}

/**
 * Adds to the ring slot `field` of `period` (an hour or a day number; see SUPPLY_FIELD.dispensedInHour and
 * dailySlot): a slot holding an earlier period starts afresh; an undo of a period the ring no longer holds changes
 * nothing (it is past retention).
 */
function addToRing(s: BatchState, key: string, field: string, period: number, by: number): void {
  const bucket = ringBucket.decode(s.get(key, field));
  if (bucket && bucket.period > period) return;
  if (bucket?.period !== period && by < 0) return;
  const units = (bucket?.period === period ? bucket.units : 0) + by;
  s.set(key, field, ringBucket.encode(period, units));
}

/**
 * The stock moves of one event (see {@link stockKey}), summed per batch and field and written once: a pallet's
 * shipment is one write per batch and holder, however many units it carries.
 */
class StockMoves {
  private readonly perBatch = new Map<number, Map<string, number>>();

  /** `units` of a batch go from one stock field to another (from nothing: commissioned). */
  move(batchId: number, from: string | null, to: string, units: number): void {
    let fields = this.perBatch.get(batchId);
    if (!fields) this.perBatch.set(batchId, (fields = new Map()));
    if (from !== null) fields.set(from, (fields.get(from) ?? 0) - units);
    fields.set(to, (fields.get(to) ?? 0) + units);
  }

  write(s: BatchState, ev: LedgerEvent, ctx: HandlerContext): void {
    const day = utcDayNumber(ev.time);
    for (const [batchId, fields] of this.perBatch) {
      const key = stockKey(batchId);
      closeStockDay(s, batchId, day, ctx.supplyDailyRetentionDays);
      for (const [field, by] of fields) {
        if (by === 0) continue;
        if (s.get(key, field) === null && stockFieldParty(field)) noteHolder(s, key, field);
        add(s, key, field, by);
      }
    }
  }
}

/** Adds a holder or in-transit field to the batch's list of those it ever used (what a day's closing copies). */
function noteHolder(s: BatchState, key: string, holderField: string): void {
  const list = s.get(key, STOCK_FIELD.holders);
  if (list !== null && list.split(",").includes(holderField)) return;
  s.set(key, STOCK_FIELD.holders, list === null ? holderField : `${list},${holderField}`);
}

/**
 * Before a batch's first stock change of `day` (a UTC day number): copies its counters as they closed on the day of
 * its latest change into the batch's history ring, in `day`'s slot, once per batch and day with changes (block times
 * never decrease).
 */
function closeStockDay(s: BatchState, batchId: number, day: number, retentionDays: number): void {
  const key = stockKey(batchId);
  const last = s.get(key, STOCK_FIELD.lastDay);
  const lastDay = last === null ? null : Number(last);
  if (lastDay === day) return;
  if (lastDay !== null) {
    const list = s.get(key, STOCK_FIELD.holders);
    const fields: string[] = [STOCK_FIELD.dispensed, STOCK_FIELD.decommissioned];
    if (list !== null) fields.push(...list.split(","));
    if (!s.need(key, fields)) throw MISS;
    const closing: Record<string, number> = {};
    for (const field of fields) {
      const value = s.get(key, field);
      if (value !== null) closing[field] = Number(value);
    }
    const entry = stockHistory.encode({ from: lastDay, until: day, stock: closing });
    s.set(stockHistoryKey(batchId), String(dailySlot(day, retentionDays)), entry);
  }
  s.set(key, STOCK_FIELD.lastDay, String(day));
}

// ---- handlers ----

const handlers: Record<string, Handler> = {
  ParticipantOnboarded(ev, s) {
    const a = args<ParticipantOnboardedEvent.OutputObject>(ev);
    const id = num(a.participantId);
    const record: ParticipantRecord = {
      id,
      account: a.account.toLowerCase(),
      role: num(a.role),
      name: a.name,
      licence: a.licence,
      region: a.region,
      suspended: false,
      onboardedAt: ev.time,
    };
    setJson(s, participantKey(id), String(id), record);
    s.set(accountKey(record.account), record.account, String(id));
    add(s, GLOBAL_KEY, "participants", 1);
    activity(s, "p", id, ev, { role: record.role, region: record.region });
  },

  ParticipantSuspended(ev, s) {
    const a = args<ParticipantSuspendedEvent.OutputObject>(ev);
    const id = num(a.participantId);
    update<ParticipantRecord>(s, participantKey(id), String(id), (p) => {
      p.suspended = true;
      p.suspensionReason = a.reason;
    });
    activity(s, "p", id, ev, { reason: a.reason });
  },

  ParticipantReinstated(ev, s) {
    const id = num(args<ParticipantReinstatedEvent.OutputObject>(ev).participantId);
    update<ParticipantRecord>(s, participantKey(id), String(id), (p) => {
      p.suspended = false;
      delete p.suspensionReason;
    });
    activity(s, "p", id, ev, {});
  },

  RoleGranted(ev, s) {
    const a = args<RoleGrantedEvent.OutputObject>(ev);
    s.set("ro", `${a.role}:${a.account.toLowerCase()}`, "1");
  },

  RoleRevoked(ev, s) {
    const a = args<RoleRevokedEvent.OutputObject>(ev);
    s.set("ro", `${a.role}:${a.account.toLowerCase()}`, null);
  },

  ProductRegistered(ev, s) {
    const a = args<ProductRegisteredEvent.OutputObject>(ev);
    const record: ProductRecord = {
      id: num(a.productId),
      manufacturerId: num(a.manufacturerId),
      productCode: a.productCode,
      name: a.name,
      approvalNumber: a.approvalNumber,
      packageSpec: a.packageSpec,
      packQuantity: num(a.packQuantity),
    };
    setJson(s, productKey(record.id), String(record.id), record);
    s.set("prc", record.productCode, String(record.id));
    count(s, "p", record.manufacturerId, { products: 1 });
    activity(s, "p", record.manufacturerId, ev, { productId: record.id, productCode: record.productCode });
  },

  BatchRegistered(ev, s) {
    const a = args<BatchRegisteredEvent.OutputObject>(ev);
    const record: BatchRecord = {
      id: num(a.batchId),
      productId: num(a.productId),
      manufacturerId: num(a.manufacturerId),
      lot: a.lot,
      manufacturedOn: num(a.manufacturedOn),
      expiresOn: num(a.expiresOn),
      recalled: false,
      recalls: [],
      runs: [],
    };
    setJson(s, batchKey(record.id), String(record.id), record);
    s.set(supplyKey(record.productId), SUPPLY_FIELD.batch(record.id), "1");
    count(s, "p", record.manufacturerId, { batches: 1 });
    activity(s, "p", record.manufacturerId, ev, { batchId: record.id, lot: record.lot });
    activity(s, "b", record.id, ev, { lot: record.lot });
  },

  BatchRecalled(ev, s) {
    recallChange(ev, s, args<BatchRecalledEvent.OutputObject>(ev), "recalled");
  },

  BatchRecallLifted(ev, s) {
    recallChange(ev, s, args<BatchRecallLiftedEvent.OutputObject>(ev), "lifted");
  },

  UnitsCommissioned(ev, s, ctx) {
    const a = args<UnitsCommissionedEvent.OutputObject>(ev);
    const runId = num(a.runId);
    const unitCount = num(a.unitCount);
    const unitsPerCase = num(a.unitsPerCase);
    const casesPerPallet = num(a.casesPerPallet);
    const caseCount = unitsPerCase === 0 ? 0 : Math.ceil(unitCount / unitsPerCase);
    const palletCount = casesPerPallet === 0 ? 0 : Math.ceil(caseCount / casesPerPallet);
    const meta: RunMeta = {
      runId,
      batchId: num(a.batchId),
      manufacturerId: num(a.manufacturerId),
      unitCount,
      unitsPerCase,
      casesPerPallet,
      caseCount,
      palletCount,
      root: a.root,
      block: ev.block,
      time: ev.time,
      tx: ev.tx,
    };
    s.set(runKey(runId), RUN_FIELD.meta, JSON.stringify(meta));
    add(s, supplyKey(productOfRun(s, meta)), SUPPLY_FIELD.commissioned, unitCount);
    const stock = new StockMoves();
    stock.move(meta.batchId, null, STOCK_FIELD.held(meta.manufacturerId), unitCount);
    stock.write(s, ev, ctx);
    // Which codes the run could not claim was settled for the whole batch beforehand (see codes.ts).
    const found = ctx.codeConflicts.get(ev) ?? [];
    for (const { code, holder, ref } of found) {
      // The same code in two runs: the first keeps the lookup, both are listed as a conflict.
      const listed = getJson<string[]>(s, CONFLICTS_KEY, code) ?? [Buffer.from(holder, "latin1").toString("hex")];
      const mine = Buffer.from(ref, "latin1").toString("hex");
      if (!listed.includes(mine)) setJson(s, CONFLICTS_KEY, code, [...listed, mine]);
    }
    const conflicts = found.length;
    const codeCount = (a.codes.length - 2) / 24;
    update<BatchRecord>(s, batchKey(meta.batchId), String(meta.batchId), (b) => b.runs.push(runId));
    count(s, "b", meta.batchId, { unitsCommissioned: unitCount, codeConflicts: conflicts });
    count(s, "p", meta.manufacturerId, { runs: 1, unitsCommissioned: unitCount, codeConflicts: conflicts });
    add(s, GLOBAL_KEY, "runs", 1);
    add(s, GLOBAL_KEY, "codes", codeCount);
    add(s, GLOBAL_KEY, "codeConflicts", conflicts);
    const detail = { runId, units: unitCount, cases: caseCount, pallets: palletCount, conflicts };
    activity(s, "p", meta.manufacturerId, ev, detail);
    activity(s, "b", meta.batchId, ev, detail);
  },

  ShipmentCreated(ev, s, ctx) {
    const a = args<ShipmentCreatedEvent.OutputObject>(ev);
    const id = num(a.shipmentId);
    const fromId = num(a.fromId);
    const transit = IN_TRANSIT | BigInt(id);
    const toReceiver = STOCK_FIELD.inTransitTo(num(a.toId));
    const items = takeAll(ev, s, ctx, a.items, fromId, transit, TrailKind.Shipped, id, toReceiver);
    const record: ShipmentRecord = {
      id,
      fromId,
      toId: num(a.toId),
      items: a.items,
      itemCount: items.length,
      received: 0,
      returned: 0,
      outstanding: items.length,
      discrepancy: false,
      shippedAt: ev.time,
      block: ev.block,
      tx: ev.tx,
      history: [],
    };
    setJson(s, shipmentKey(id), String(id), record);
    add(s, GLOBAL_KEY, "shipments", 1);
    count(s, "p", fromId, { shipmentsSent: 1, itemsShipped: items.length });
    count(s, "p", record.toId, { shipmentsIncoming: 1 });
    const detail = { shipmentId: id, fromId, toId: record.toId, items: items.length };
    activity(s, "p", fromId, ev, detail);
    activity(s, "p", record.toId, ev, detail);
  },

  ShipmentReceived(ev, s, ctx) {
    const a = args<ShipmentReceivedEvent.OutputObject>(ev);
    settleTransit(ev, s, ctx, num(a.shipmentId), num(a.toId), a.items, num(a.outstanding), "received");
    countReceivedFlows(ev, s, ctx, num(a.toId), a.items);
  },

  ShipmentReturned(ev, s, ctx) {
    const a = args<ShipmentReturnedEvent.OutputObject>(ev);
    settleTransit(ev, s, ctx, num(a.shipmentId), num(a.fromId), a.items, num(a.outstanding), "returned");
  },

  ShipmentDiscrepancy(ev, s) {
    const a = args<ShipmentDiscrepancyEvent.OutputObject>(ev);
    const id = num(a.shipmentId);
    update<ShipmentRecord>(s, shipmentKey(id), String(id), (r) => (r.discrepancy = true));
    const detail = { shipmentId: id, shipped: num(a.shipped), received: num(a.received), returned: num(a.returned) };
    for (const party of [num(a.fromId), num(a.toId)]) {
      count(s, "p", party, { discrepancies: 1 });
      activity(s, "p", party, ev, detail);
    }
  },

  Decommissioned(ev, s, ctx) {
    const a = args<DecommissionedEvent.OutputObject>(ev);
    const holderId = num(a.holderId);
    const reason = num(a.reason);
    const items = takeAll(
      ev,
      s,
      ctx,
      a.items,
      holderId,
      DECOMMISSIONED | BigInt(holderId),
      TrailKind.Decommissioned,
      reason,
      STOCK_FIELD.decommissioned,
    );
    count(s, "p", holderId, { itemsDecommissioned: items.length });
    countPerBatch(s, items, "itemsDecommissioned", 1);
    activity(s, "p", holderId, ev, { reason, items: items.length });
  },

  UnitsDispensed(ev, s, ctx) {
    const a = args<UnitsDispensedEvent.OutputObject>(ev);
    const pharmacyId = num(a.pharmacyId);
    const units = itemsByRun(s, a.units, unitFields);
    for (const { run, index } of units) recordDispensing(ev, s, run, index, pharmacyId, a.prescriptionHash);
    moveStock(s, ev, ctx, units, STOCK_FIELD.held(pharmacyId), STOCK_FIELD.dispensed);
    const dispensed = units.map((u) => ({ run: u.run, dispensedAt: ev.time }));
    countDispensedSupply(s, ctx, pharmacyId, dispensed, 1);
    countDispensedFlows(s, ctx, pharmacyId, dispensed, 1);
    count(s, "p", pharmacyId, { unitsDispensed: units.length });
    countPerBatch(s, units, "unitsDispensed", 1);
    activity(s, "p", pharmacyId, ev, { units: units.length, prescriptionHash: a.prescriptionHash });
  },

  DispensingUndone(ev, s, ctx) {
    const a = args<DispensingUndoneEvent.OutputObject>(ev);
    const pharmacyId = num(a.pharmacyId);
    const units = itemsByRun(s, a.units, unitFields);
    const undone = units.map(({ run, index }) => {
      const record = getJson<DispensingRecord>(s, runKey(run.runId), RUN_FIELD.dispensing(index));
      s.set(runKey(run.runId), RUN_FIELD.dispensing(index), null);
      return { run, dispensedAt: record?.time ?? ev.time };
    });
    moveStock(s, ev, ctx, units, STOCK_FIELD.dispensed, STOCK_FIELD.held(pharmacyId));
    countDispensedSupply(s, ctx, pharmacyId, undone, -1);
    countDispensedFlows(s, ctx, pharmacyId, undone, -1);
    count(s, "p", pharmacyId, { unitsDispensed: -units.length, unitsReturned: units.length });
    countPerBatch(s, units, "unitsDispensed", -1);
    activity(s, "p", pharmacyId, ev, { units: units.length });
  },

  UnitDispensedPartially(ev, s, ctx) {
    const a = args<UnitDispensedPartiallyEvent.OutputObject>(ev);
    const pharmacyId = num(a.pharmacyId);
    const [unit] = itemsByRun(s, refList(a.unit), unitFields);
    recordDispensing(ev, s, unit!.run, unit!.index, pharmacyId, a.prescriptionHash, {
      dispensed: num(a.dispensedTotal),
      packQuantity: num(a.packQuantity),
    });
    // A split pack leaves stock at its first dose (see stockKey).
    if (a.dispensedTotal === a.quantity)
      moveStock(s, ev, ctx, [unit!], STOCK_FIELD.held(pharmacyId), STOCK_FIELD.dispensed);
    count(s, "p", pharmacyId, { dosesDispensed: num(a.quantity) });
    activity(s, "p", pharmacyId, ev, { unit: a.unit.toString(), quantity: num(a.quantity) });
  },

  PartialDispensingUndone(ev, s, ctx) {
    const a = args<PartialDispensingUndoneEvent.OutputObject>(ev);
    const pharmacyId = num(a.pharmacyId);
    const [unit] = itemsByRun(s, refList(a.unit), unitFields);
    const key = runKey(unit!.runId);
    const field = RUN_FIELD.dispensing(unit!.index);
    const total = num(a.dispensedTotal);
    if (total === 0) moveStock(s, ev, ctx, [unit!], STOCK_FIELD.dispensed, STOCK_FIELD.held(pharmacyId));
    if (total === 0) s.set(key, field, null);
    else update<DispensingRecord>(s, key, field, (d) => (d.split!.dispensed = total));
    count(s, "p", pharmacyId, { dosesDispensed: -num(a.quantity), dosesReturned: num(a.quantity) });
    activity(s, "p", pharmacyId, ev, { unit: a.unit.toString(), quantity: num(a.quantity) });
  },

  UnitsSettled(ev, s, ctx) {
    const a = args<UnitsSettledEvent.OutputObject>(ev);
    const insurerId = num(a.insurerId);
    const pharmacyId = num(a.pharmacyId);
    const units = itemsByRun(s, a.units, unitFields);
    for (const { run, index } of units) {
      const record: SettlementRecord = {
        insurerId,
        pharmacyId,
        claimId: a.claimId,
        claimRef: a.claimRef,
        block: ev.block,
        time: ev.time,
        tx: ev.tx,
      };
      setJson(s, runKey(run.runId), RUN_FIELD.settlement(index), record);
    }
    claim(ev, s, a.claimId, a.claimRef, insurerId, pharmacyId, (c) => (c.unitsSettled += units.length));
    countSettledFlows(ev, s, ctx, insurerId, pharmacyId, units, 1);
    count(s, "p", insurerId, { unitsSettled: units.length });
    count(s, "p", pharmacyId, { unitsSettledFor: units.length });
    countPerBatch(s, units, "unitsSettled", 1);
    activity(s, "p", insurerId, ev, { claimId: a.claimId, units: units.length });
    activity(s, "p", pharmacyId, ev, { claimId: a.claimId, units: units.length });
  },

  SettlementReversed(ev, s, ctx) {
    const a = args<SettlementReversedEvent.OutputObject>(ev);
    const insurerId = num(a.insurerId);
    const pharmacyId = num(a.pharmacyId);
    const units = itemsByRun(s, a.units, unitFields);
    countSettledFlows(ev, s, ctx, insurerId, pharmacyId, units, -1);
    // The ledger checks the reversing insurer, not the claim reference it names: each unit leaves the claim that
    // settled it, as the index recorded it from UnitsSettled.
    const reversedPerClaim = new Map<string, number>();
    for (const { run, index } of units) {
      const settled = getJson<SettlementRecord>(s, runKey(run.runId), RUN_FIELD.settlement(index));
      const claimId = settled?.claimId ?? a.claimId;
      reversedPerClaim.set(claimId, (reversedPerClaim.get(claimId) ?? 0) + 1);
      s.set(runKey(run.runId), RUN_FIELD.settlement(index), null);
    }
    for (const [claimId, reversed] of reversedPerClaim) {
      updateClaim(s, claimId, (c) => {
        c.unitsSettled -= reversed;
        c.unitsReversed += reversed;
      });
    }
    count(s, "p", insurerId, { unitsSettled: -units.length, unitsReversed: units.length });
    count(s, "p", pharmacyId, { unitsSettledFor: -units.length });
    countPerBatch(s, units, "unitsSettled", -1);
    activity(s, "p", insurerId, ev, { claimId: a.claimId, units: units.length, reason: a.reason });
  },

  UnitSettledPartially(ev, s) {
    const a = args<UnitSettledPartiallyEvent.OutputObject>(ev);
    const insurerId = num(a.insurerId);
    const pharmacyId = num(a.pharmacyId);
    const [unit] = itemsByRun(s, refList(a.unit), unitFields);
    const key = runKey(unit!.runId);
    const field = RUN_FIELD.settlement(unit!.index);
    const prior = getJson<SettlementRecord>(s, key, field);
    const byClaim = { ...(prior?.split?.byClaim ?? {}) };
    byClaim[a.claimId] = (byClaim[a.claimId] ?? 0) + num(a.quantity);
    const record: SettlementRecord = {
      insurerId,
      pharmacyId,
      block: ev.block,
      time: ev.time,
      tx: ev.tx,
      split: { settled: num(a.settledTotal), byClaim },
    };
    setJson(s, key, field, record);
    claim(ev, s, a.claimId, a.claimRef, insurerId, pharmacyId, (c) => (c.dosesSettled += num(a.quantity)));
    count(s, "p", insurerId, { dosesSettled: num(a.quantity) });
    const detail = { claimId: a.claimId, unit: a.unit.toString(), quantity: num(a.quantity) };
    activity(s, "p", insurerId, ev, detail);
    activity(s, "p", pharmacyId, ev, detail);
  },

  PartialSettlementReversed(ev, s) {
    const a = args<PartialSettlementReversedEvent.OutputObject>(ev);
    const [unit] = itemsByRun(s, refList(a.unit), unitFields);
    const key = runKey(unit!.runId);
    const field = RUN_FIELD.settlement(unit!.index);
    const quantity = num(a.quantity);
    const record = getJson<SettlementRecord>(s, key, field);
    if (!record?.split) throw new Error(`index has no split settlement of ${a.unit}`);
    delete record.split.byClaim[a.claimId];
    record.split.settled -= quantity;
    setJson(s, key, field, record.split.settled === 0 ? null : record);
    updateClaim(s, a.claimId, (c) => (c.dosesSettled -= quantity));
    count(s, "p", num(a.insurerId), { dosesSettled: -quantity, dosesReversed: quantity });
    const detail = { claimId: a.claimId, unit: a.unit.toString(), quantity, reason: a.reason };
    activity(s, "p", num(a.insurerId), ev, detail);
    activity(s, "p", num(a.pharmacyId), ev, detail);
  },

  ReturnWindowChanged(ev, s) {
    const a = args<ReturnWindowChangedEvent.OutputObject>(ev);
    s.set(GLOBAL_KEY, "returnWindowDays", String(num(a.returnWindowDays)));
    setting(s, ev, { previousDays: num(a.previousDays), returnWindowDays: num(a.returnWindowDays) });
  },

  RunLimitChanged(ev, s) {
    const a = args<RunLimitChangedEvent.OutputObject>(ev);
    s.set(GLOBAL_KEY, "maxRunCodes", String(num(a.maxCodes)));
    setting(s, ev, { previousMaxCodes: num(a.previousMaxCodes), maxCodes: num(a.maxCodes) });
  },

  Paused(ev, s) {
    s.set(GLOBAL_KEY, "paused", "1");
    setting(s, ev, { by: String(ev.args.account).toLowerCase() });
  },

  Unpaused(ev, s) {
    s.set(GLOBAL_KEY, "paused", null);
    setting(s, ev, { by: String(ev.args.account).toLowerCase() });
  },

  CodePrefixAssigned(ev, s) {
    const a = args<CodePrefixAssignedEvent.OutputObject>(ev);
    const id = num(a.manufacturerId);
    s.set(PREFIX_KEY, a.prefix, String(id));
    update<ParticipantRecord>(s, participantKey(id), String(id), (p) => {
      const prefixes = p.codePrefixes ?? [];
      if (!prefixes.includes(a.prefix)) p.codePrefixes = [...prefixes, a.prefix];
    });
    activity(s, "p", id, ev, { prefix: a.prefix });
  },

  CodePrefixRevoked(ev, s) {
    const a = args<CodePrefixRevokedEvent.OutputObject>(ev);
    const id = num(a.manufacturerId);
    s.set(PREFIX_KEY, a.prefix, null);
    update<ParticipantRecord>(s, participantKey(id), String(id), (p) => {
      p.codePrefixes = (p.codePrefixes ?? []).filter((prefix) => prefix !== a.prefix);
    });
    activity(s, "p", id, ev, { prefix: a.prefix });
  },

  ProductReassigned(ev, s) {
    const a = args<ProductReassignedEvent.OutputObject>(ev);
    const productId = num(a.productId);
    const [fromId, toId] = [num(a.fromId), num(a.toId)];
    update<ProductRecord>(s, productKey(productId), String(productId), (p) => (p.manufacturerId = toId));
    count(s, "p", fromId, { products: -1 });
    count(s, "p", toId, { products: 1 });
    const detail = { productId, fromId, toId, reason: a.reason };
    activity(s, "p", fromId, ev, detail);
    activity(s, "p", toId, ev, detail);
  },
};

/** Network settings changes (return window, run limit, pause): the latest of each is kept for audit. */
function setting(s: BatchState, ev: LedgerEvent, detail: object): void {
  setJson(s, GLOBAL_KEY, `setting:${ev.name}`, { ...detail, block: ev.block, time: ev.time, tx: ev.tx });
}

/** Consortium-admin changes (two-step transfer, delay changes): the latest of each is kept for audit. */
const ADMIN_EVENTS = [
  "DefaultAdminTransferScheduled",
  "DefaultAdminTransferCanceled",
  "DefaultAdminDelayChangeScheduled",
  "DefaultAdminDelayChangeCanceled",
  "RoleAdminChanged",
];
for (const name of ADMIN_EVENTS) {
  handlers[name] = (ev, s) => {
    const detail = Object.fromEntries(Object.entries(ev.args).map(([k, v]) => [k, String(v)]));
    setJson(s, GLOBAL_KEY, `admin:${name}`, { ...detail, block: ev.block, time: ev.time, tx: ev.tx });
  };
}

const refList = (ref: bigint): string => "0x" + ref.toString(16).padStart(18, "0");

function recallChange(
  ev: LedgerEvent,
  s: BatchState,
  a: { batchId: bigint; by: string; reason: string },
  action: "recalled" | "lifted",
): void {
  const id = num(a.batchId);
  const batch = update<BatchRecord>(s, batchKey(id), String(id), (b) => {
    b.recalled = action === "recalled";
    b.recalls.push({ action, by: a.by.toLowerCase(), reason: a.reason, block: ev.block, time: ev.time });
  });
  if (action === "recalled") {
    add(s, GLOBAL_KEY, "recalls", 1);
    count(s, "p", batch.manufacturerId, { recalls: 1 });
  }
  activity(s, "b", id, ev, { reason: a.reason, by: a.by.toLowerCase() });
  activity(s, "p", batch.manufacturerId, ev, { batchId: id, reason: a.reason });
}

function settleTransit(
  ev: LedgerEvent,
  s: BatchState,
  ctx: HandlerContext,
  id: number,
  newHolderId: number,
  packed: string,
  outstanding: number,
  action: "received" | "returned",
): void {
  const items = itemsByRun(s, packed, moveFields);
  const kind = action === "received" ? TrailKind.Received : TrailKind.Returned;
  // Received or taken back, the units were on their way to the shipment's receiver.
  const shipment = getJson<ShipmentRecord>(s, shipmentKey(id), String(id));
  if (!shipment) throw s.hasMissing ? MISS : new Error(`index has no shipment ${id}`);
  const inTransit = STOCK_FIELD.inTransitTo(shipment.toId);
  const stock = new StockMoves();
  for (const { run, level, index } of items) {
    stock.move(run.batchId, inTransit, STOCK_FIELD.held(newHolderId), unitsCarried(s, run, level, index));
    setOwn(s, run.runId, level, index, BigInt(newHolderId));
    appendTrail(s, run.runId, level, index, kind, id, ev);
  }
  stock.write(s, ev, ctx);
  update<ShipmentRecord>(s, shipmentKey(id), String(id), (r) => {
    r[action] += items.length;
    r.outstanding = outstanding;
    r.history.push({ action, items: items.length, block: ev.block, time: ev.time, tx: ev.tx });
  });
  count(s, "p", newHolderId, action === "received" ? { itemsReceived: items.length } : { itemsReturned: items.length });
  activity(s, "p", newHolderId, ev, { shipmentId: id, items: items.length, outstanding });
}

function claim(
  ev: LedgerEvent,
  s: BatchState,
  claimId: string,
  claimRef: string,
  insurerId: number,
  pharmacyId: number,
  change: (c: ClaimRecord) => void,
): void {
  const record = getJson<ClaimRecord>(s, claimKey(claimId), claimId) ?? {
    claimId,
    claimRef,
    insurerId,
    pharmacyId,
    unitsSettled: 0,
    unitsReversed: 0,
    dosesSettled: 0,
    firstBlock: ev.block,
    lastBlock: ev.block,
    lastTime: ev.time,
  };
  change(record);
  record.lastBlock = ev.block;
  record.lastTime = ev.time;
  setJson(s, claimKey(claimId), claimId, record);
}

function updateClaim(s: BatchState, claimId: string, change: (c: ClaimRecord) => void): void {
  update<ClaimRecord>(s, claimKey(claimId), claimId, change);
}

/** Applies one event; events the index has no use for are counted and otherwise ignored. */
export function applyEvent(ev: LedgerEvent, s: BatchState, ctx: HandlerContext): void {
  const handler = handlers[ev.name];
  if (handler) handler(ev, s, ctx);
}

export const HANDLED_EVENTS = Object.keys(handlers);

/** The run a UnitsCommissioned event commissions, with its codes; null for any other event. */
export function commissionedRun(ev: LedgerEvent) {
  if (ev.name !== "UnitsCommissioned") return null;
  const a = args<UnitsCommissionedEvent.OutputObject>(ev);
  return {
    runId: num(a.runId),
    unitCount: num(a.unitCount),
    unitsPerCase: num(a.unitsPerCase),
    casesPerPallet: num(a.casesPerPallet),
    codes: a.codes,
  };
}

// ---- flows per organisation (fraud signals, backend/supply/flows.ts) ----

const PHARMACY_ROLE = 3;

/**
 * Adds up units per daily ring field and day first, so that a batch of items is one write per field, not one per
 * item: item `i` counts `unitsOf(i)` (1 unless given) on UTC day number `dayOf(i)`, in ring field `fieldOf(i, slot)`.
 */
function addPerDay(
  s: BatchState,
  ctx: HandlerContext,
  key: string,
  n: number,
  sign: 1 | -1,
  dayOf: (i: number) => number,
  fieldOf: (i: number, slot: number) => string,
  unitsOf: (i: number) => number = () => 1,
): void {
  const perField = new Map<string, { field: string; day: number; units: number }>();
  for (let i = 0; i < n; i++) {
    const day = dayOf(i);
    const field = fieldOf(i, dailySlot(day, ctx.supplyDailyRetentionDays));
    // One field may hold two days in a batch (an undo of a day the slot no longer holds): each is its own count.
    const at = `${field}@${day}`;
    const entry = perField.get(at);
    if (entry) entry.units += unitsOf(i);
    else perField.set(at, { field, day, units: unitsOf(i) });
  }
  for (const { field, day, units } of perField.values()) addToRing(s, key, field, day, sign * units);
}

/** The product of each run, read once per run rather than once per unit. */
function productOfRunOnce(s: BatchState): (run: RunMeta) => number {
  const seen = new Map<number, number>();
  return (run) => {
    let productId = seen.get(run.runId);
    if (productId === undefined) seen.set(run.runId, (productId = productOfRun(s, run)));
    return productId;
  };
}

function isPharmacy(s: BatchState, participantId: number): boolean {
  const record = getJson<ParticipantRecord>(s, participantKey(participantId), String(participantId));
  if (!record) throw s.hasMissing ? MISS : new Error(`index has no participant ${participantId}`);
  return record.role === PHARMACY_ROLE;
}

/** Units a pharmacy received, per product and UTC day of the receipt (`fl:{pharmacyId}` `r:`). */
function countReceivedFlows(
  ev: LedgerEvent,
  s: BatchState,
  ctx: HandlerContext,
  receiverId: number,
  packed: string,
): void {
  if (!isPharmacy(s, receiverId)) return;
  const day = utcDayNumber(ev.time);
  const items = itemsByRun(s, packed, moveFields);
  const productOf = productOfRunOnce(s);
  addPerDay(
    s,
    ctx,
    flowKey(receiverId),
    items.length,
    1,
    () => day,
    (i, slot) => FLOW_FIELD.received(productOf(items[i]!.run), slot),
    (i) => unitsCarried(s, items[i]!.run, items[i]!.level, items[i]!.index),
  );
}

/** Units a pharmacy dispensed (1) or took back (-1), per product and the UTC day they were dispensed on. */
function countDispensedFlows(
  s: BatchState,
  ctx: HandlerContext,
  pharmacyId: number,
  units: { run: RunMeta; dispensedAt: number }[],
  sign: 1 | -1,
): void {
  const productOf = productOfRunOnce(s);
  addPerDay(
    s,
    ctx,
    flowKey(pharmacyId),
    units.length,
    sign,
    (i) => utcDayNumber(units[i]!.dispensedAt),
    (i, slot) => FLOW_FIELD.dispensed(productOf(units[i]!.run), slot),
  );
}

/**
 * Whole packs settled (1) or reversed (-1), on the UTC day of the settlement: for the pharmacy per product, for
 * the insurer per pharmacy. A reversal reads each pack's settlement, so it runs before the records are cleared.
 */
function countSettledFlows(
  ev: LedgerEvent,
  s: BatchState,
  ctx: HandlerContext,
  insurerId: number,
  pharmacyId: number,
  units: { run: RunMeta; index: number }[],
  sign: 1 | -1,
): void {
  const days = units.map(({ run, index }) =>
    utcDayNumber(
      sign === 1
        ? ev.time
        : (getJson<SettlementRecord>(s, runKey(run.runId), RUN_FIELD.settlement(index))?.time ?? ev.time),
    ),
  );
  const productOf = productOfRunOnce(s);
  const dayOf = (i: number) => days[i]!;
  addPerDay(s, ctx, flowKey(pharmacyId), units.length, sign, dayOf, (i, slot) =>
    FLOW_FIELD.settledFor(productOf(units[i]!.run), slot),
  );
  addPerDay(s, ctx, flowKey(insurerId), units.length, sign, dayOf, (_, slot) => FLOW_FIELD.settledAt(pharmacyId, slot));
}
