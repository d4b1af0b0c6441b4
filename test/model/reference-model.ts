/**
 * A small executable reference model of the ledger's custody, dispensing and settlement rules, for the
 * property-based tests in ../ledger.properties.test.ts. It knows nothing about storage layout: an item either
 * follows its parent (a unit its case, a case its pallet, a pallet its manufacturer) or has a place of its own
 * (held by someone, in transit under a shipment, or decommissioned by its last holder).
 *
 * Every operation works on the model in place and throws {@link ModelRevert} with the contract's custom error
 * name when the contract must revert; callers apply operations to a {@link LedgerModel.clone} and keep the clone
 * only when the operation succeeds, as a reverted transaction changes nothing.
 */
import { AbiCoder, keccak256, ZeroHash } from "ethers";
import { Level } from "../../backend/codes/refs";

export { Level };

export enum Role {
  None = 0,
  Manufacturer = 1,
  Distributor = 2,
  Pharmacy = 3,
  Insurer = 4,
}

export interface Item {
  level: Level;
  index: number;
}

/** Where an item is by its own record. `follow`: wherever its parent is. */
export type Place =
  | { kind: "follow" }
  | { kind: "held"; holder: number }
  | { kind: "transit"; shipment: number }
  | { kind: "decommissioned"; holder: number };

/** Where an item effectively is, after following parents. */
export type Location = Exclude<Place, { kind: "follow" }>;

export interface Settled {
  claimId: string;
  insurerId: number;
  claimRef: string;
  pharmacyId: number;
}

export interface UnitState {
  place: Place;
  /** The pharmacy that dispensed the unit, or null. */
  dispensedBy: number | null;
  /** Model day the unit was dispensed on while it can still be undone; null once the window is closed. */
  windowFrom: number | null;
  settled: Settled | null;
}

export interface CaseState {
  place: Place;
  /** A unit has left the case (shipped loose, dispensed, decommissioned): it is pinned and never moves whole. */
  opened: boolean;
}

export interface ShipmentState {
  fromId: number;
  toId: number;
  itemCount: number;
  received: number;
  returned: number;
  discrepancy: boolean;
}

export interface RunGeometry {
  manufacturerId: number;
  unitCount: number;
  unitsPerCase: number;
  casesPerPallet: number;
}

/** Days a dispensing can be undone (the contract's default return window). */
export const RETURN_WINDOW_DAYS = 10;

/** The contract reverts with custom error `error`. */
export class ModelRevert extends Error {
  constructor(readonly error: string) {
    super(error);
  }
}

function revert(error: string): never {
  throw new ModelRevert(error);
}

/** The ledger's id of an insurer's claim, as {Settlement.claimIdOf} computes it. */
export function claimIdOf(insurerId: number, claimRef: string): string {
  return keccak256(AbiCoder.defaultAbiCoder().encode(["uint32", "bytes32"], [insurerId, claimRef]));
}

export function itemName(item: Item): string {
  return `${["u", "c", "p"][item.level]}${item.index}`;
}

export class LedgerModel {
  units: UnitState[];
  cases: CaseState[];
  pallets: { place: Place }[];
  /** Shipments by id (ids from 1). */
  shipments: ShipmentState[] = [];
  /** Model day (days since the start of the run). */
  day = 0;

  constructor(
    readonly run: RunGeometry,
    /** Role of each participant id (id 0 and unknown ids: not onboarded). */
    readonly roles: ReadonlyMap<number, Role>,
  ) {
    const caseCount = Math.ceil(run.unitCount / run.unitsPerCase);
    const palletCount = Math.ceil(caseCount / run.casesPerPallet);
    this.units = Array.from({ length: run.unitCount }, () => ({
      place: { kind: "follow" },
      dispensedBy: null,
      windowFrom: null,
      settled: null,
    }));
    this.cases = Array.from({ length: caseCount }, () => ({ place: { kind: "follow" }, opened: false }));
    this.pallets = Array.from({ length: palletCount }, () => ({ place: { kind: "follow" } }));
  }

  clone(): LedgerModel {
    const copy = new LedgerModel(this.run, this.roles);
    copy.units = this.units.map((u) => ({ ...u, place: { ...u.place }, settled: u.settled && { ...u.settled } }));
    copy.cases = this.cases.map((c) => ({ ...c, place: { ...c.place } }));
    copy.pallets = this.pallets.map((p) => ({ place: { ...p.place } }));
    copy.shipments = this.shipments.map((s) => ({ ...s }));
    copy.day = this.day;
    return copy;
  }

  // ---------------------------------------------------------------- structure and locations

  allItems(): Item[] {
    return [
      ...this.units.map((_, index) => ({ level: Level.Unit, index })),
      ...this.cases.map((_, index) => ({ level: Level.Case, index })),
      ...this.pallets.map((_, index) => ({ level: Level.Pallet, index })),
    ];
  }

  parent(item: Item): Item | null {
    if (item.level === Level.Unit) return { level: Level.Case, index: Math.floor(item.index / this.run.unitsPerCase) };
    if (item.level === Level.Case) {
      return { level: Level.Pallet, index: Math.floor(item.index / this.run.casesPerPallet) };
    }
    return null;
  }

  /** Whether `item` is `ancestor` or inside it. */
  within(item: Item, ancestor: Item): boolean {
    for (let at: Item | null = item; at; at = this.parent(at)) {
      if (at.level === ancestor.level && at.index === ancestor.index) return true;
    }
    return false;
  }

  private record(item: Item): { place: Place } {
    const list = item.level === Level.Unit ? this.units : item.level === Level.Case ? this.cases : this.pallets;
    const rec = list[item.index];
    if (!rec) throw new Error(`model: no ${itemName(item)}`);
    return rec;
  }

  unit(index: number): UnitState {
    const u = this.units[index];
    if (!u) throw new Error(`model: no unit ${index}`);
    return u;
  }

  caseOf(unitIndex: number): CaseState {
    const c = this.cases[Math.floor(unitIndex / this.run.unitsPerCase)];
    if (!c) throw new Error(`model: no case of unit ${unitIndex}`);
    return c;
  }

  shipment(id: number): ShipmentState | undefined {
    return this.shipments[id - 1];
  }

  ownPlace(item: Item): Place {
    return this.record(item).place;
  }

  /** Where `item` is, following its parents. */
  location(item: Item): Location {
    const own = this.record(item).place;
    if (own.kind !== "follow") return own;
    const parent = this.parent(item);
    return parent ? this.location(parent) : { kind: "held", holder: this.run.manufacturerId };
  }

  /** What custodyOf(item) must return. */
  custody(item: Item): { holderId: number; inTransitShipment: number; decommissioned: boolean } {
    const at = this.location(item);
    if (at.kind === "transit") {
      return { holderId: this.shipment(at.shipment)!.fromId, inTransitShipment: at.shipment, decommissioned: false };
    }
    return { holderId: at.holder, inTransitShipment: 0, decommissioned: at.kind === "decommissioned" };
  }

  /** Items (of any level) whose own place is in transit under shipment `id`: what it still carries. */
  outstanding(id: number): Item[] {
    return this.allItems().filter((item) => {
      const own = this.ownPlace(item);
      return own.kind === "transit" && own.shipment === id;
    });
  }

  /** Whether `holder` holds `item` at rest (held, not in transit, not decommissioned). */
  holds(holder: number, item: Item): boolean {
    const at = this.location(item);
    return at.kind === "held" && at.holder === holder;
  }

  /** Claim id a unit is settled under, or the zero hash. */
  settlementOf(unitIndex: number): string {
    return this.unit(unitIndex).settled?.claimId ?? ZeroHash;
  }

  // ---------------------------------------------------------------- participants

  private role(id: number): Role {
    return this.roles.get(id) ?? Role.None;
  }

  /** {Participants._activeHolderRecord}: onboarded and may hold goods. */
  private activeHolder(id: number): void {
    const role = this.role(id);
    if (role === Role.None) revert("NotOnboarded");
    if (role === Role.Insurer) revert("CannotHoldGoods");
  }

  /** {Participants._activeCaller} / {_activeParticipant}: onboarded with `role`. */
  private activeAs(id: number, role: Role): void {
    if (this.role(id) !== role) revert("AccessControlUnauthorizedAccount");
  }

  private static requireList<T>(list: readonly T[]): void {
    if (list.length === 0) revert("InvalidRefList");
  }

  // ---------------------------------------------------------------- custody

  /**
   * `holder` takes `item` out of where it rests (to ship or decommission it): it must hold it at rest, an opened
   * case never moves whole and a dispensed unit never moves. A unit leaving its case opens the case, which stays
   * pinned where it is.
   */
  private take(item: Item, holder: number): void {
    if (item.level === Level.Case && this.cases[item.index]!.opened) revert("CaseOpened");
    if (item.level === Level.Unit && this.unit(item.index).dispensedBy !== null) revert("UnitDispensed");
    this.requireAtRestWith(item, holder);
    if (item.level === Level.Unit) this.openCaseOf(item.index, holder);
  }

  private requireAtRestWith(item: Item, holder: number): void {
    const at = this.location(item);
    if (at.kind === "transit") revert("ItemInTransit");
    if (at.kind === "decommissioned") revert("ItemDecommissioned");
    if (at.holder !== holder) revert("NotHolder");
  }

  private openCaseOf(unitIndex: number, holder: number): void {
    const c = this.caseOf(unitIndex);
    if (c.opened) return;
    c.opened = true;
    c.place = { kind: "held", holder };
  }

  ship(fromId: number, toId: number, items: readonly Item[]): number {
    this.activeHolder(fromId);
    this.activeHolder(toId);
    if (toId === fromId) revert("ShipToSelf");
    LedgerModel.requireList(items);
    const id = this.shipments.length + 1;
    for (const item of items) {
      this.take(item, fromId);
      this.record(item).place = { kind: "transit", shipment: id };
    }
    this.shipments.push({ fromId, toId, itemCount: items.length, received: 0, returned: 0, discrepancy: false });
    return id;
  }

  /** Moves items out of transit under shipment `id` to `newHolder`; only items shipped as such (own place). */
  private settleTransit(id: number, items: readonly Item[], newHolder: number): void {
    LedgerModel.requireList(items);
    for (const item of items) {
      const own = this.record(item).place;
      if (own.kind !== "transit" || own.shipment !== id) revert("NotInShipment");
      this.record(item).place = { kind: "held", holder: newHolder };
    }
  }

  receive(callerId: number, id: number, items: readonly Item[]): void {
    const s = this.shipment(id);
    if (!s) revert("UnknownShipment");
    this.activeHolder(callerId);
    if (callerId !== s.toId) revert("NotShipmentParty");
    this.settleTransit(id, items, s.toId);
    s.received += items.length;
    if (s.itemCount - s.received - s.returned !== 0) s.discrepancy = true;
  }

  returnToSender(callerId: number, id: number, items: readonly Item[]): void {
    const s = this.shipment(id);
    if (!s) revert("UnknownShipment");
    this.activeHolder(callerId);
    if (callerId !== s.fromId) revert("NotShipmentParty");
    this.settleTransit(id, items, s.fromId);
    s.returned += items.length;
  }

  decommission(callerId: number, items: readonly Item[]): void {
    this.activeHolder(callerId);
    LedgerModel.requireList(items);
    for (const item of items) {
      this.take(item, callerId);
      this.record(item).place = { kind: "decommissioned", holder: callerId };
    }
  }

  // ---------------------------------------------------------------- dispensing and settlement

  private static requireUnit(item: Item): void {
    if (item.level !== Level.Unit) revert("NotAUnit");
  }

  dispense(pharmacyId: number, units: readonly Item[]): void {
    this.activeAs(pharmacyId, Role.Pharmacy);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.dispensedBy !== null) revert("UnitAlreadyDispensed");
      this.requireAtRestWith(item, pharmacyId);
      this.openCaseOf(item.index, pharmacyId);
      u.dispensedBy = pharmacyId;
      u.windowFrom = this.day;
      u.settled = null;
    }
  }

  undoDispense(pharmacyId: number, units: readonly Item[]): void {
    this.activeAs(pharmacyId, Role.Pharmacy);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.dispensedBy === null) revert("UnitNotDispensed");
      if (u.settled) revert("UnitIsSettled");
      if (u.windowFrom === null || this.day - u.windowFrom > RETURN_WINDOW_DAYS) revert("ReturnWindowClosed");
      this.requireAtRestWith(item, pharmacyId);
      u.dispensedBy = null;
      u.windowFrom = null;
    }
  }

  settle(insurerId: number, pharmacyId: number, claimRef: string, units: readonly Item[]): string {
    this.activeAs(insurerId, Role.Insurer);
    this.activeAs(pharmacyId, Role.Pharmacy);
    if (claimRef === ZeroHash) revert("InvalidClaimRef");
    const claimId = claimIdOf(insurerId, claimRef);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.settled) revert("UnitAlreadySettled");
      if (u.dispensedBy === null) revert("UnitNotDispensed");
      const at = this.location(item);
      if (at.kind === "transit" || at.holder !== pharmacyId) revert("DispensedByAnotherPharmacy");
      u.settled = { claimId, insurerId, claimRef, pharmacyId };
      u.windowFrom = null;
    }
    return claimId;
  }

  reverseSettlement(insurerId: number, claimRef: string, units: readonly Item[]): void {
    this.activeAs(insurerId, Role.Insurer);
    const claimId = claimIdOf(insurerId, claimRef);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (!u.settled || u.settled.claimId !== claimId) revert("NotSettledUnderClaim");
      u.settled = null;
      u.windowFrom = null; // the units stay dispensed and can no longer be returned at the counter
    }
  }

  advanceDays(days: number): void {
    this.day += days;
  }
}
