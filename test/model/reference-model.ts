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
  /**
   * Last model day the dispensing can be undone, fixed when it was made (so a later change of the return window
   * does not move it); null once the window is closed for good (settled, or reversed).
   */
  windowUntil: number | null;
  settled: Settled | null;
}

/** A pharmacy's consent to a settlement as presented to `settle`: who signed what (see backend/chain/consent.ts). */
export interface Consent {
  /** False for bytes that are no signature at all. */
  wellFormed: boolean;
  signerId: number;
  insurerId: number;
  claimRef: string;
  units: readonly Item[];
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

/** Days a dispensing can be undone (the contract's default return window), and the most it can be set to. */
export const RETURN_WINDOW_DAYS = 10;
export const MAX_RETURN_WINDOW_DAYS = 90;

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
  /** The return window in force for dispensings from now on. */
  returnWindowDays = RETURN_WINDOW_DAYS;
  /** Business writes stopped by a regulator. */
  paused = false;

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
      windowUntil: null,
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
    copy.returnWindowDays = this.returnWindowDays;
    copy.paused = this.paused;
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

  /** What settlementOf(unit) must return: the settling insurer's participant id, or 0. */
  settlementOf(unitIndex: number): number {
    return this.unit(unitIndex).settled?.insurerId ?? 0;
  }

  /** Whether the unit's dispensing can still be undone today (ignoring who asks). */
  withinReturnWindow(unitIndex: number): boolean {
    const until = this.unit(unitIndex).windowUntil;
    return until !== null && this.day <= until;
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

  /** Every business write checks the pause first (OpenZeppelin Pausable). */
  private requireNotPaused(): void {
    if (this.paused) revert("EnforcedPause");
  }

  /** A business write by `id` as `role` ({Participants._activeCaller}). */
  private activeCaller(id: number, role: Role): void {
    this.requireNotPaused();
    this.activeAs(id, role);
  }

  /** A business write by holder `id` ({Participants._activeHolder()}). */
  private activeHolderCaller(id: number): void {
    this.requireNotPaused();
    this.activeHolder(id);
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
    this.activeHolderCaller(fromId);
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
    this.activeHolderCaller(callerId);
    if (callerId !== s.toId) revert("NotShipmentParty");
    this.settleTransit(id, items, s.toId);
    s.received += items.length;
    LedgerModel.closeIfDone(s);
  }

  /** A shipment with nothing left in transit closed short when fewer items arrived than were shipped. */
  private static closeIfDone(s: ShipmentState): void {
    // Closed short: part received, the rest returned (all returned is a cancellation).
    if (s.itemCount - s.received - s.returned === 0 && s.received > 0 && s.received < s.itemCount) s.discrepancy = true;
  }

  returnToSender(callerId: number, id: number, items: readonly Item[]): void {
    const s = this.shipment(id);
    if (!s) revert("UnknownShipment");
    this.activeHolderCaller(callerId);
    if (callerId !== s.fromId) revert("NotShipmentParty");
    this.settleTransit(id, items, s.fromId);
    s.returned += items.length;
    LedgerModel.closeIfDone(s);
  }

  decommission(callerId: number, items: readonly Item[]): void {
    this.activeHolderCaller(callerId);
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
    this.activeCaller(pharmacyId, Role.Pharmacy);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.dispensedBy !== null) revert("UnitAlreadyDispensed");
      this.requireAtRestWith(item, pharmacyId);
      this.openCaseOf(item.index, pharmacyId);
      u.dispensedBy = pharmacyId;
      u.windowUntil = this.day + this.returnWindowDays;
      u.settled = null;
    }
  }

  undoDispense(pharmacyId: number, units: readonly Item[]): void {
    this.activeCaller(pharmacyId, Role.Pharmacy);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.dispensedBy === null) revert("UnitNotDispensed");
      if (u.settled) revert("UnitIsSettled");
      if (!this.withinReturnWindow(item.index)) revert("ReturnWindowClosed");
      this.requireAtRestWith(item, pharmacyId);
      u.dispensedBy = null;
      u.windowUntil = null;
    }
  }

  /** The insurer and the pharmacy of a claim ({Settlement._claimParties}). */
  private claimParties(insurerId: number, pharmacyId: number, claimRef: string): string {
    this.activeCaller(insurerId, Role.Insurer);
    this.activeAs(pharmacyId, Role.Pharmacy);
    if (claimRef === ZeroHash) revert("InvalidClaimRef");
    return claimIdOf(insurerId, claimRef);
  }

  settle(insurerId: number, pharmacyId: number, claimRef: string, units: readonly Item[], consent: Consent): string {
    const claimId = this.claimParties(insurerId, pharmacyId, claimRef);
    const sameUnits =
      consent.units.length === units.length &&
      consent.units.every((c, i) => c.level === units[i]!.level && c.index === units[i]!.index);
    const consented =
      consent.wellFormed &&
      consent.signerId === pharmacyId &&
      consent.insurerId === insurerId &&
      consent.claimRef === claimRef &&
      sameUnits;
    if (!consented) revert("InvalidConsent");
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (u.settled) revert("UnitAlreadySettled");
      if (u.dispensedBy === null) revert("UnitNotDispensed");
      const at = this.location(item);
      if (at.kind === "transit" || at.holder !== pharmacyId) revert("DispensedByAnotherPharmacy");
      u.settled = { claimId, insurerId, claimRef, pharmacyId };
      u.windowUntil = null;
    }
    return claimId;
  }

  /** The insurer reverses units it settled, whatever claim reference it names (only its own units). */
  reverseSettlement(insurerId: number, pharmacyId: number, claimRef: string, units: readonly Item[]): void {
    this.claimParties(insurerId, pharmacyId, claimRef);
    LedgerModel.requireList(units);
    for (const item of units) {
      LedgerModel.requireUnit(item);
      const u = this.unit(item.index);
      if (!u.settled || u.settled.insurerId !== insurerId) revert("NotSettledByInsurer");
      const at = this.location(item);
      if (at.kind === "transit" || at.holder !== pharmacyId) revert("DispensedByAnotherPharmacy");
      u.settled = null;
      u.windowUntil = null; // the units stay dispensed and can no longer be returned at the counter
    }
  }

  // ---------------------------------------------------------------- governance

  /** {Dispensing.setReturnWindow} by a regulator (`byRegulator`) or someone else. */
  setReturnWindow(byRegulator: boolean, days: number): void {
    if (!byRegulator) revert("AccessControlUnauthorizedAccount");
    if (days > MAX_RETURN_WINDOW_DAYS) revert("ReturnWindowTooLong");
    this.returnWindowDays = days;
  }

  /** {Participants.pause} / {unpause} by a regulator (`byRegulator`) or someone else. */
  setPaused(byRegulator: boolean, paused: boolean): void {
    if (!byRegulator) revert("AccessControlUnauthorizedAccount");
    if (paused && this.paused) revert("EnforcedPause");
    if (!paused && !this.paused) revert("ExpectedPause");
    this.paused = paused;
  }

  advanceDays(days: number): void {
    this.day += days;
  }
}
