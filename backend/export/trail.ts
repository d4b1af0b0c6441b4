/**
 * A batch's or an item's history, read from the index (backend/index/query.ts) as plain trace events that the
 * EPCIS and CSV writers turn into documents: commissioning of each run (with the aggregation of its units into
 * cases and of its cases into pallets), then every item's own custody trail (shipped, received, returned,
 * decommissioned) and every unit's dispensing. Events of one transaction that share a step are one event with
 * several items, as EPCIS lists them.
 */
import { Level, type ItemRef } from "../codes/refs";
import type { IndexReader } from "../index/query";
import { containersOf, TrailKind, type RunMeta } from "../index/model";
import type { BatchRecord, ProductRecord } from "../index/events";
import { epcOfRef } from "./identifiers";

export type TraceKind =
  "commissioned" | "aggregated" | "shipped" | "received" | "returned" | "dispensed" | "decommissioned";

export interface TraceEvent {
  kind: TraceKind;
  /** Unix seconds of the block. */
  time: number;
  block: number;
  /** Items the event is about (for `aggregated`, the children). */
  epcs: string[];
  /** `aggregated`: the case or pallet. */
  parent?: string;
  runId?: number;
  shipmentId?: number;
  /** Participants: who did it (the maker, sender, receiver, pharmacy, holder). */
  by?: number;
  from?: number;
  to?: number;
  /** `decommissioned`: Custody.DecommissionReason as a number. */
  reason?: number;
  tx?: string;
}

export interface Trace {
  batch: BatchRecord;
  product: ProductRecord | null;
  events: TraceEvent[];
}

/** Names an item: its code when the caller knows it, else the ledger's address of it. */
export type Identify = (ref: ItemRef) => string;

const ITEM_READS_IN_FLIGHT = 200;

/** Reads a whole batch: every run, every item. */
export async function batchTrace(
  reader: IndexReader,
  batchId: number,
  identify: Identify = epcOfRef,
): Promise<Trace | null> {
  const batch = await reader.batch(batchId);
  if (!batch) return null;
  const product = await reader.product(batch.productId);
  const events: TraceEvent[] = [];
  for (const runId of batch.runs) {
    const run = await reader.run(runId);
    if (!run) continue;
    events.push(...commissioningEvents(run, identify));
    const refs: ItemRef[] = [];
    for (const [level, count] of [
      [Level.Unit, run.unitCount],
      [Level.Case, run.caseCount],
      [Level.Pallet, run.palletCount],
    ] as const)
      for (let index = 0; index < count; index++) refs.push({ runId, level, index });
    for (let i = 0; i < refs.length; i += ITEM_READS_IN_FLIGHT)
      for (const found of await Promise.all(
        refs.slice(i, i + ITEM_READS_IN_FLIGHT).map((r) => itemEvents(reader, r, identify, true)),
      ))
        events.push(...found);
  }
  return { batch, product, events: merge(events) };
}

/** Reads one item's history, its containers' moves included (a unit travels in its case and pallet). */
export async function itemTrace(
  reader: IndexReader,
  ref: ItemRef,
  identify: Identify = epcOfRef,
): Promise<Trace | null> {
  const view = await reader.item(ref);
  if (!view?.batch) return null;
  const own = commissioningEvents(view.run, identify).filter(
    (e) => e.kind === "commissioned" || e.parent === identify(containerOf(view.run, ref)) || e.parent === identify(ref),
  );
  const commissioned = own.map((e) =>
    e.kind === "commissioned" ? { ...e, epcs: e.epcs.filter((epc) => epc === identify(ref)) } : e,
  );
  return {
    batch: view.batch,
    product: view.product,
    events: merge([...commissioned, ...(await itemEvents(reader, ref, identify, false))]),
  };
}

function containerOf(run: RunMeta, ref: ItemRef): ItemRef {
  const c = containersOf(run, ref.level, ref.index)[0];
  return c ? { runId: ref.runId, ...c } : ref;
}

/** A run's commissioning (all its codes at once) and its positional aggregation into cases and pallets. */
function commissioningEvents(run: RunMeta, identify: Identify): TraceEvent[] {
  const at = { time: run.time, block: run.block, runId: run.runId, by: run.manufacturerId, tx: run.tx };
  const ref = (level: Level, index: number) => identify({ runId: run.runId, level, index });
  const all: string[] = [];
  for (let u = 0; u < run.unitCount; u++) all.push(ref(Level.Unit, u));
  for (let c = 0; c < run.caseCount; c++) all.push(ref(Level.Case, c));
  for (let p = 0; p < run.palletCount; p++) all.push(ref(Level.Pallet, p));
  const events: TraceEvent[] = [{ kind: "commissioned", ...at, epcs: all }];
  for (let c = 0; c < run.caseCount; c++) {
    const units: string[] = [];
    for (let u = c * run.unitsPerCase; u < Math.min(run.unitCount, (c + 1) * run.unitsPerCase); u++)
      units.push(ref(Level.Unit, u));
    events.push({ kind: "aggregated", ...at, parent: ref(Level.Case, c), epcs: units });
  }
  for (let p = 0; p < run.palletCount; p++) {
    const cases: string[] = [];
    for (let c = p * run.casesPerPallet; c < Math.min(run.caseCount, (p + 1) * run.casesPerPallet); c++)
      cases.push(ref(Level.Case, c));
    events.push({ kind: "aggregated", ...at, parent: ref(Level.Pallet, p), epcs: cases });
  }
  return events;
}

const TRAIL_KINDS: Partial<Record<TrailKind, TraceKind>> = {
  [TrailKind.Shipped]: "shipped",
  [TrailKind.Received]: "received",
  [TrailKind.Returned]: "returned",
  [TrailKind.Decommissioned]: "decommissioned",
};

/** An item's custody trail and dispensing; `ownOnly` leaves out its containers' moves (listed for them). */
async function itemEvents(
  reader: IndexReader,
  ref: ItemRef,
  identify: Identify,
  ownOnly: boolean,
): Promise<TraceEvent[]> {
  const view = await reader.item(ref);
  if (!view) return [];
  const epc = identify(ref);
  const events: TraceEvent[] = [];
  for (const step of view.trail) {
    if (ownOnly && step.via !== ref.level) continue;
    const kind = TRAIL_KINDS[step.kind];
    if (!kind) continue; // a case opened is no move of the item
    const event: TraceEvent = { kind, time: step.time, block: step.block, epcs: [epc] };
    if (kind === "decommissioned") event.reason = step.ref;
    else {
      event.shipmentId = step.ref;
      const shipment = await reader.shipment(step.ref);
      if (shipment) Object.assign(event, { from: shipment.fromId, to: shipment.toId });
    }
    events.push(event);
  }
  if (view.dispensing) {
    const d = view.dispensing;
    events.push({ kind: "dispensed", time: d.time, block: d.block, epcs: [epc], by: d.pharmacyId, tx: d.tx });
  }
  return events;
}

/** One event per (kind, block, shipment or reason, parent): the items of one step together. */
function merge(events: TraceEvent[]): TraceEvent[] {
  const byKey = new Map<string, TraceEvent>();
  for (const e of events) {
    const key = [e.kind, e.block, e.shipmentId ?? "", e.reason ?? "", e.parent ?? "", e.runId ?? "", e.by ?? ""].join(
      "|",
    );
    const seen = byKey.get(key);
    if (!seen) byKey.set(key, { ...e, epcs: [...e.epcs] });
    else for (const epc of e.epcs) if (!seen.epcs.includes(epc)) seen.epcs.push(epc);
  }
  return [...byKey.values()].sort((a, b) => a.block - b.block || ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
}

const ORDER: TraceKind[] = [
  "commissioned",
  "aggregated",
  "shipped",
  "received",
  "returned",
  "dispensed",
  "decommissioned",
];
