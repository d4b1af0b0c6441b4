/**
 * The scan answer: what the index knows about a code, what is wrong with it (alerts), and what the caller may see
 * of it. Dispositions follow GS1 CBV 2.0 where one fits. One function decides a unit's status, so the scan, a
 * case's contents and a batch's counts by status can never disagree.
 */
import { Level, type ItemRef } from "../codes/refs";
import type { BatchRecord, ParticipantRecord, ProductRecord } from "../index/events";
import { type Custody, type DispensingRecord, type SettlementRecord, TrailKind } from "../index/model";
import type { IndexReader, ItemView, UnitState } from "../index/query";
import type { Caller } from "./context";
import { ROLE_BY_NUMBER } from "./context";
import { iso } from "../util/time";

export const ALERT_KINDS = [
  "DUPLICATE_CODE",
  "RECALLED",
  "EXPIRED",
  "DECOMMISSIONED",
  "ALREADY_DISPENSED",
  "ALREADY_SETTLED",
  "IN_TRANSIT",
  "NOT_IN_YOUR_CUSTODY",
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export const DISPOSITIONS = [
  "active",
  "in_transit",
  "dispensed",
  "partially_dispensed",
  "recalled",
  "expired",
  "destroyed",
  "damaged",
  "stolen",
  "decommissioned",
  "unknown",
] as const;
export type Disposition = (typeof DISPOSITIONS)[number];

/** Custody.DecommissionReason, in order, and the CBV disposition each one is. */
const DECOMMISSION_REASONS = ["destroyed", "damaged", "stolen", "sample"] as const;
const DECOMMISSION_DISPOSITION: Record<string, Disposition> = {
  destroyed: "destroyed",
  damaged: "damaged",
  stolen: "stolen",
  sample: "decommissioned",
};

const LEVEL_NAMES = { [Level.Unit]: "unit", [Level.Case]: "case", [Level.Pallet]: "pallet" } as const;
const TRAIL_NAMES = {
  [TrailKind.Shipped]: "shipped",
  [TrailKind.Received]: "received",
  [TrailKind.Returned]: "returned",
  [TrailKind.Decommissioned]: "decommissioned",
  [TrailKind.Opened]: "opened",
} as const;

const day = (seconds: number): string => iso(seconds).slice(0, 10);

export interface OrgView {
  id: number;
  name: string;
  role: string;
  region: string;
}

export const orgView = (p: ParticipantRecord | null): OrgView | null =>
  p ? { id: p.id, name: p.name, role: ROLE_BY_NUMBER[p.role] ?? "none", region: p.region } : null;

/** What decides a unit's status beside its own state: its batch, and the time of the scan. */
interface StatusContext {
  batch: BatchRecord | null;
  nowSeconds: number;
}

interface ItemState {
  custody: Custody;
  dispensing: DispensingRecord | null;
  decommissionReason?: string;
}

const fullyDispensed = (d: DispensingRecord | null): boolean =>
  !!d && (!d.split || d.split.dispensed >= d.split.packQuantity);

/**
 * A unit's (or container's) disposition: decommissioned first (it left the supply chain), then dispensed, then
 * what its batch says (recalled, expired), then where it is (in transit, active).
 */
export function dispositionOf(item: ItemState, ctx: StatusContext): Disposition {
  if (item.custody.decommissioned) return DECOMMISSION_DISPOSITION[item.decommissionReason ?? ""] ?? "decommissioned";
  if (item.dispensing) return fullyDispensed(item.dispensing) ? "dispensed" : "partially_dispensed";
  if (ctx.batch?.recalled) return "recalled";
  if (ctx.batch && ctx.batch.expiresOn < ctx.nowSeconds) return "expired";
  if (item.custody.inTransitShipment) return "in_transit";
  return "active";
}

/** Counts of units by disposition. */
export function countByStatus(units: readonly UnitState[], ctx: StatusContext): Partial<Record<Disposition, number>> {
  const counts: Partial<Record<Disposition, number>> = {};
  for (const u of units) {
    // Decommissioning reasons live in trails, which a count does not read: counted as "decommissioned".
    const d = u.custody.decommissioned ? "decommissioned" : dispositionOf(u, ctx);
    counts[d] = (counts[d] ?? 0) + 1;
  }
  return counts;
}

/** The unit range a case or pallet holds (positional aggregation). */
export function contentsRange(view: ItemView): { from: number; count: number } | null {
  const run = view.run;
  if (view.ref.level === Level.Case) return { from: view.ref.index * run.unitsPerCase, count: run.unitsPerCase };
  if (view.ref.level === Level.Pallet) {
    const units = run.unitsPerCase * run.casesPerPallet;
    return { from: view.ref.index * units, count: units };
  }
  return null;
}

export interface TrailStepView {
  event: (typeof TRAIL_NAMES)[TrailKind];
  via: "unit" | "case" | "pallet";
  at: string;
  block: number;
  shipmentId?: number;
  from?: OrgView | null;
  to?: OrgView | null;
  by?: OrgView | null;
  reason?: string;
}

/** The custody trail with its shipments' parties, and every participant it names. */
async function trailView(
  reader: IndexReader,
  view: ItemView,
): Promise<{ steps: TrailStepView[]; parties: Set<number> }> {
  const parties = new Set<number>();
  const steps = await Promise.all(
    // Each step written out field by field: an object spread per step was a hot spot of the scan.
    view.trail.map(async (t): Promise<TrailStepView> => {
      const event = TRAIL_NAMES[t.kind];
      const via = LEVEL_NAMES[t.via];
      const at = iso(t.time);
      if (t.kind === TrailKind.Decommissioned)
        return { event, via, at, block: t.block, reason: DECOMMISSION_REASONS[t.ref] ?? String(t.ref) };
      if (t.kind === TrailKind.Opened) {
        parties.add(t.ref);
        return { event, via, at, block: t.block, by: orgView(await reader.participant(t.ref)) };
      }
      const shipment = await reader.shipment(t.ref);
      if (!shipment) return { event, via, at, block: t.block, shipmentId: t.ref, from: null, to: null };
      parties.add(shipment.fromId).add(shipment.toId);
      const [from, to] = await Promise.all([reader.participant(shipment.fromId), reader.participant(shipment.toId)]);
      return { event, via, at, block: t.block, shipmentId: t.ref, from: orgView(from), to: orgView(to) };
    }),
  );
  return { steps, parties };
}

export interface ScanFacts {
  view: ItemView;
  duplicates: ItemRef[];
  /** The shipment an in-transit item is on, and its recipient. */
  incomingTo: number | null;
  trail: TrailStepView[];
  /** Participants that hold or held the item: holder, shipment parties, dispensing pharmacy, case openers. */
  parties: Set<number>;
  contents: { units: number; byStatus: Partial<Record<Disposition, number>> } | null;
}

/** Everything the answer is made of, read in as few round trips as the index allows. */
export async function gatherFacts(reader: IndexReader, view: ItemView, duplicates: ItemRef[]): Promise<ScanFacts> {
  const range = contentsRange(view);
  const [trail, shipment, units] = await Promise.all([
    trailView(reader, view),
    view.custody.inTransitShipment ? reader.shipment(view.custody.inTransitShipment) : null,
    range ? reader.unitStates(view.run, range.from, range.count) : null,
  ]);
  const parties = trail.parties;
  if (view.custody.holderId) parties.add(view.custody.holderId);
  if (view.dispensing) parties.add(view.dispensing.pharmacyId);
  const nowSeconds = Math.floor(Date.now() / 1000);
  return {
    view,
    duplicates,
    incomingTo: shipment?.toId ?? null,
    trail: trail.steps,
    parties,
    contents: units ? { units: units.length, byStatus: countByStatus(units, { batch: view.batch, nowSeconds }) } : null,
  };
}

/** What a caller may see of an item's custody: the regulator and the product's maker all, others what they hold or held. */
export function seesCustody(caller: Caller, facts: ScanFacts): boolean {
  if (caller.role === "regulator") return true;
  if (caller.participantId === null) return false;
  if (caller.role === "manufacturer" && facts.view.run.manufacturerId === caller.participantId) return true;
  return facts.parties.has(caller.participantId) || facts.incomingTo === caller.participantId;
}

/** The settling insurer, the pharmacy it paid and the regulator see a settlement's details. */
function seesSettlement(caller: Caller, s: SettlementRecord): boolean {
  return caller.role === "regulator" || caller.participantId === s.insurerId || caller.participantId === s.pharmacyId;
}

export function alertsOf(caller: Caller | null, facts: ScanFacts): AlertKind[] {
  const { view } = facts;
  const alerts: AlertKind[] = [];
  const nowSeconds = Math.floor(Date.now() / 1000);
  if (facts.duplicates.length > 0) alerts.push("DUPLICATE_CODE");
  if (view.batch?.recalled) alerts.push("RECALLED");
  if (view.batch && view.batch.expiresOn < nowSeconds) alerts.push("EXPIRED");
  if (view.custody.decommissioned) alerts.push("DECOMMISSIONED");
  if (fullyDispensed(view.dispensing)) alerts.push("ALREADY_DISPENSED");
  const s = view.settlement;
  if (s && (!s.split || (view.product && s.split.settled >= view.product.packQuantity))) alerts.push("ALREADY_SETTLED");
  const incomingToCaller = caller?.participantId != null && facts.incomingTo === caller.participantId;
  // A carton scanned at goods receipt is in transit to the one scanning it: that is no problem.
  if (view.custody.inTransitShipment && !incomingToCaller) alerts.push("IN_TRANSIT");
  if (caller?.role === "pharmacy" && view.custody.holderId !== caller.participantId && !incomingToCaller)
    alerts.push("NOT_IN_YOUR_CUSTODY");
  return alerts;
}

export function productView(p: ProductRecord | null) {
  return p
    ? {
        id: p.id,
        productCode: p.productCode,
        name: p.name,
        approvalNumber: p.approvalNumber,
        packageSpec: p.packageSpec,
        packQuantity: p.packQuantity,
      }
    : null;
}

export function batchView(b: BatchRecord | null) {
  return b
    ? { id: b.id, lot: b.lot, manufacturedOn: day(b.manufacturedOn), expiry: day(b.expiresOn), recalled: b.recalled }
    : null;
}

/** The parts of the answer that depend on the item and on who asks. */
export async function describeFor(reader: IndexReader, caller: Caller, facts: ScanFacts) {
  const { view } = facts;
  const visible = seesCustody(caller, facts);
  const decommissioned = [...facts.trail].reverse().find((t) => t.event === "decommissioned");
  const status = dispositionOf(
    {
      custody: view.custody,
      dispensing: view.dispensing,
      ...(decommissioned?.reason ? { decommissionReason: decommissioned.reason } : {}),
    },
    { batch: view.batch, nowSeconds: Math.floor(Date.now() / 1000) },
  );
  const d = view.dispensing;
  const s = view.settlement;
  const [pharmacy, insurer, to] = await Promise.all([
    d && visible ? reader.participant(d.pharmacyId) : null,
    s && seesSettlement(caller, s) ? reader.participant(s.insurerId) : null,
    facts.incomingTo && visible ? reader.participant(facts.incomingTo) : null,
  ]);
  const settlementVisible = !!s && seesSettlement(caller, s);
  return {
    level: LEVEL_NAMES[view.ref.level],
    status,
    // Always present (undefined when there is none, which JSON leaves out): the answer's fields keep one order.
    statusReason: decommissioned?.reason,
    product: productView(view.product),
    batch: batchView(view.batch),
    manufacturer: orgView(view.manufacturer),
    holder: visible ? orgView(view.holder) : null,
    inTransit:
      view.custody.inTransitShipment && visible
        ? { shipmentId: view.custody.inTransitShipment, from: orgView(view.holder), to: orgView(to) }
        : null,
    custody: visible ? facts.trail : null,
    dispensing: d
      ? {
          at: iso(d.time),
          block: d.block,
          pharmacy: orgView(pharmacy),
          prescriptionHash: visible ? d.prescriptionHash : null,
          split: d.split ?? null,
        }
      : null,
    settlement: s
      ? {
          at: iso(s.time),
          block: s.block,
          insurer: orgView(insurer),
          claimId: settlementVisible ? (s.claimId ?? null) : null,
          split: s.split
            ? { settled: s.split.settled, ...(settlementVisible ? { byClaim: s.split.byClaim } : {}) }
            : null,
        }
      : null,
    contents: facts.contents,
  };
}
