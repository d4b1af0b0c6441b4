/**
 * Property-based tests: random sequences of custody, dispensing and settlement operations against the ledger,
 * checked step by step against a reference model (./model/reference-model.ts) and against invariants read from
 * the chain's views alone.
 *
 * Each run starts from the same fixture (one run of 24 units, 4 per case, 3 cases per pallet; a maker, another
 * maker, a distributor, two pharmacies, two insurers, an outsider and a regulator) and plays 25-40 generated
 * operations: custody, dispensing, settlement with the pharmacy's consent (now and then a consent for another
 * insurer, claim or list, signed by another pharmacy, or malformed), reversal, changes of the return window (which
 * bind only later dispensings) and the regulator's pause. An
 * operation is generated as a few choices interpreted against the model when it is played: in "fit" mode its
 * callers and item lists are narrowed towards what the caller may act on (so that goods really move), in "raw"
 * mode they are used as generated (so that the contract's refusals are exercised too); a "progress" operation
 * takes goods one step further along the chain, whatever that step is now. Either way the model predicts success
 * or the custom error, and the chain must agree. After every step all custody, dispensing, settlement and
 * shipment views of the chain are compared with the model and checked for invariants of their own.
 *
 * On failure the error lists the shrunk sequence as played (callers, items, outcomes); steps shrink to "skip".
 *
 * Reproduce or widen: LEDGER_PROPS_SEED, LEDGER_PROPS_RUNS, LEDGER_PROPS_PATH (printed by fast-check on failure).
 */
import { expect } from "chai";
import fc from "fast-check";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import type { ContractTransactionReceipt, ContractTransactionResponse } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { DrugLedger } from "../typechain-types";
import { caseRef, commissionRun, consentOf, DAY, deployLedger, packRefs, palletRef, unitRef } from "./helpers/ledger";
import {
  type Consent,
  type Item,
  itemName,
  LedgerModel,
  Level,
  ModelRevert,
  Role,
  type RunGeometry,
  type ShipmentState,
  type UnitState,
} from "./model/reference-model";

const SHAPE = { unitCount: 24, unitsPerCase: 4, casesPerPallet: 3 } as const;
const UNITS = SHAPE.unitCount;
const CASES = Math.ceil(UNITS / SHAPE.unitsPerCase);
const PALLETS = Math.ceil(CASES / SHAPE.casesPerPallet);
const ITEMS = UNITS + CASES + PALLETS;
/** Claim references the insurers use; 0 stands for the (invalid) zero reference. */
const CLAIM_REFS = [ethers.ZeroHash, ethers.id("claim-1"), ethers.id("claim-2"), ethers.id("claim-3")];

const NUM_RUNS = Number(process.env.LEDGER_PROPS_RUNS ?? 25);

// ------------------------------------------------------------------------------------------------ fixture

interface Actor {
  name: string;
  signer: HardhatEthersSigner;
  /** Participant id (0: not onboarded). */
  id: number;
  role: Role;
}

interface PropsFixture {
  ledger: DrugLedger;
  regulator: HardhatEthersSigner;
  runId: number;
  actors: Actor[];
  geometry: RunGeometry;
  /** Day number (unix days) of the fixture's last block, which is an hour into that day. */
  baseDay: number;
}

async function propsFixture(): Promise<PropsFixture> {
  const f = await deployLedger();
  const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, { ...SHAPE });
  const named: [string, HardhatEthersSigner][] = [
    ["maker", f.maker],
    ["otherMaker", f.otherMaker],
    ["distributor", f.distributor],
    ["pharmacy", f.pharmacy],
    ["otherPharmacy", f.otherPharmacy],
    ["insurer", f.insurer],
    ["otherInsurer", f.otherInsurer],
    ["outsider", f.outsider],
  ];
  const actors: Actor[] = [];
  for (const [name, signer] of named) {
    const p = await f.ledger.participantOf(signer.address);
    actors.push({ name, signer, id: Number(p.id), role: Number(p.role) as Role });
  }
  // Start the sequences early in a day, so that a block's day only changes when a step advances time.
  const dayStart = (Math.floor((await time.latest()) / DAY) + 1) * DAY;
  await time.increaseTo(dayStart + 3600);
  return {
    ledger: f.ledger,
    regulator: f.regulator,
    runId,
    actors,
    geometry: { manufacturerId: actors[0]!.id, ...SHAPE },
    baseDay: dayStart / DAY,
  };
}

// ------------------------------------------------------------------------------------------------ operations

/** Index into the actors: 0 maker, 1 otherMaker, 2 distributor, 3 pharmacy, 4 otherPharmacy, 5-6 insurers, 7 outsider. */
type ActorPick = number | "auto";

type Op =
  | { op: "ship"; fit: boolean; caller: ActorPick; to: number | "down"; toSeed: number; items: number[] }
  | {
      op: "receive" | "return";
      fit: boolean;
      shipment: number;
      caller: ActorPick;
      part: "all" | "some";
      pick: number[];
    }
  // "strict": only what is sure to succeed (used by "progress"); true also picks units that make the contract refuse
  | { op: "dispense" | "undo"; fit: Fit; caller: ActorPick; units: number[] }
  | { op: "settle"; fit: Fit; caller: number; pharmacy: ActorPick; claim: number; units: number[]; consent: Forgery }
  | { op: "reverse"; fit: Fit; caller: number; pharmacy: ActorPick; claim: number; units: number[] }
  /** setReturnWindow by the regulator or, now and then, by an actor (refused). */
  | { op: "window"; caller: number | "regulator"; days: number }
  | { op: "pause" | "unpause"; caller: number | "regulator" }
  | { op: "decommission"; fit: boolean; caller: ActorPick; reason: number; items: number[] }
  | { op: "advance"; days: number }
  /** The next step along the supply chain, whatever it is now: settle, dispense, receive or ship downstream. */
  | { op: "progress"; seed: number; units: number[] }
  /** Nothing: what shrinking turns the steps that do not matter into. */
  | { op: "skip" };

type Fit = boolean | "strict";

/** The consent a settle step presents: the right one, or one wrong in a single respect. */
type Forgery = "none" | "otherInsurer" | "otherSigner" | "otherClaim" | "otherUnits" | "malformed";

const forgery: fc.Arbitrary<Forgery> = fc.oneof(
  { weight: 12, arbitrary: fc.constant("none" as const) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "otherInsurer" as const,
      "otherSigner" as const,
      "otherClaim" as const,
      "otherUnits" as const,
      "malformed" as const,
    ),
  },
);
const governor = fc.oneof(
  { weight: 5, arbitrary: fc.constant("regulator" as const) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
);

type ConcreteOp = Exclude<Op, { op: "progress" | "skip" }>;

const anyActor = fc.integer({ min: 0, max: 7 });
const holderActor = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 4 }) },
  { weight: 1, arbitrary: anyActor },
);
const pharmacyCaller = fc.oneof(
  { weight: 3, arbitrary: fc.constant("auto" as const) },
  { weight: 3, arbitrary: fc.constantFrom(3, 4) },
  { weight: 1, arbitrary: anyActor },
);
const pharmacyActor = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(3, 4) }, { weight: 1, arbitrary: anyActor });
const insurerActor = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(5, 6) }, { weight: 1, arbitrary: anyActor });
const fit = fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
const claim = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }) },
  { weight: 1, arbitrary: fc.constant(0) },
);
/** An item index: units 0-23, cases 24-29, pallets 30-31 (weighted so that containers move too). */
const itemIndex = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: UNITS - 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: UNITS, max: UNITS + CASES - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: UNITS + CASES, max: ITEMS - 1 }) },
);
const itemList = fc.array(itemIndex, { minLength: 0, maxLength: 6 });
/** Unit indices, now and then a case or pallet (which unit operations refuse: NotAUnit). */
const unitList = fc.array(
  fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0, max: UNITS - 1 }) },
    { weight: 1, arbitrary: fc.integer({ min: UNITS, max: ITEMS - 1 }) },
  ),
  { minLength: 0, maxLength: 6 },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { withCrossShrink: true },
  { weight: 1, arbitrary: fc.constant({ op: "skip" as const }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("ship" as const),
      fit,
      caller: fc.oneof({ weight: 4, arbitrary: fc.constant("auto" as const) }, { weight: 1, arbitrary: anyActor }),
      to: fc.oneof({ weight: 3, arbitrary: fc.constant("down" as const) }, { weight: 2, arbitrary: holderActor }),
      toSeed: fc.nat(),
      items: itemList,
    }),
  },
  {
    weight: 7,
    arbitrary: fc.record({
      op: fc.oneof(
        { weight: 3, arbitrary: fc.constant("receive" as const) },
        { weight: 1, arbitrary: fc.constant("return" as const) },
      ),
      fit,
      shipment: fc.nat(),
      caller: fc.oneof({ weight: 6, arbitrary: fc.constant("auto" as const) }, { weight: 1, arbitrary: anyActor }),
      part: fc.constantFrom("all" as const, "some" as const),
      pick: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant("dispense" as const), fit, caller: pharmacyCaller, units: unitList }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("undo" as const), fit, caller: pharmacyCaller, units: unitList }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("settle" as const),
      fit,
      caller: insurerActor,
      pharmacy: fc.oneof(
        { weight: 3, arbitrary: fc.constant("auto" as const) },
        { weight: 2, arbitrary: pharmacyActor },
      ),
      claim,
      units: unitList,
      consent: forgery,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("reverse" as const),
      fit,
      caller: insurerActor,
      pharmacy: fc.oneof(
        { weight: 3, arbitrary: fc.constant("auto" as const) },
        { weight: 1, arbitrary: pharmacyActor },
      ),
      claim,
      units: unitList,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("window" as const),
      caller: governor,
      days: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 0, max: 15 }) },
        { weight: 1, arbitrary: fc.constant(91) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constantFrom("pause" as const, "unpause" as const), caller: governor }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("decommission" as const),
      fit,
      caller: fc.oneof({ weight: 4, arbitrary: fc.constant("auto" as const) }, { weight: 1, arbitrary: anyActor }),
      reason: fc.integer({ min: 0, max: 3 }),
      items: itemList,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), days: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant("progress" as const), seed: fc.nat(), units: itemList }) },
);

// ------------------------------------------------------------------------------------------------ chain views

interface Custody {
  holderId: number;
  inTransitShipment: number;
  decommissioned: boolean;
}

interface ChainView {
  custody: Custody[];
  dispensed: boolean[];
  settled: boolean[];
  split: boolean[];
  /** settlementOf: the settling insurer's participant id, 0 when none. */
  settlement: number[];
  shipments: ShipmentState[];
  returnWindow: number;
  paused: boolean;
}

const itemAt = (i: number): Item =>
  i < UNITS
    ? { level: Level.Unit, index: i }
    : i < UNITS + CASES
      ? { level: Level.Case, index: i - UNITS }
      : { level: Level.Pallet, index: i - UNITS - CASES };

const ALL_ITEMS: Item[] = Array.from({ length: ITEMS }, (_, i) => itemAt(i));
const itemKey = (item: Item): number =>
  item.level === Level.Unit ? item.index : item.level === Level.Case ? UNITS + item.index : UNITS + CASES + item.index;

const refOf = (runId: number, item: Item): bigint =>
  item.level === Level.Unit
    ? unitRef(runId, item.index)
    : item.level === Level.Case
      ? caseRef(runId, item.index)
      : palletRef(runId, item.index);

async function readChain(ledger: DrugLedger, runId: number, shipmentCount: number): Promise<ChainView> {
  const units = Array.from({ length: UNITS }, (_, i) => unitRef(runId, i));
  const [custody, dispensing, settlement, shipments, returnWindow, paused] = await Promise.all([
    Promise.all(ALL_ITEMS.map((item) => ledger.custodyOf(refOf(runId, item)))),
    Promise.all(units.map((ref) => ledger.dispensingOf(ref))),
    Promise.all(units.map((ref) => ledger.settlementOf(ref))),
    // One past the last known shipment, which must not exist.
    Promise.all(Array.from({ length: shipmentCount + 1 }, (_, i) => ledger.shipmentOf(i + 1))),
    ledger.returnWindow(),
    ledger.paused(),
  ]);
  return {
    custody: custody.map((c) => ({
      holderId: Number(c.holderId),
      inTransitShipment: Number(c.inTransitShipment),
      decommissioned: c.decommissioned,
    })),
    dispensed: dispensing.map((d) => d.dispensed),
    settled: dispensing.map((d) => d.settled),
    split: dispensing.map((d) => d.split || d.splitDispensed !== 0n || d.splitSettled !== 0n),
    settlement: settlement.map(Number),
    returnWindow: Number(returnWindow),
    paused,
    shipments: shipments.map((s) => ({
      fromId: Number(s.fromId),
      toId: Number(s.toId),
      itemCount: Number(s.itemCount),
      received: Number(s.received),
      returned: Number(s.returned),
      discrepancy: s.discrepancy,
    })),
  };
}

// ------------------------------------------------------------------------------------------------ the property

class Violation extends Error {}

/** How often each operation succeeded or reverted with each error, over all runs (printed at the end). */
const outcomes = new Map<string, number>();

/** A resolved operation: who calls what with which items, what the model and the chain say. */
interface Step {
  text: string;
  kind: Op["op"];
  callerId: number;
  items: Item[];
  /** Recipient (ship), shipment (receive, return), pharmacy (settle), claim reference (settle, reverse), days. */
  toId?: number;
  shipmentId?: number;
  pharmacyId?: number;
  claimRef?: string;
  days?: number;
  /** The consent a settle step presents. */
  consent?: Consent;
  /** Whether a governance step (window, pause, unpause) is made by the regulator. */
  byRegulator?: boolean;
}

function pickSubset<T>(list: readonly T[], pick: readonly number[]): T[] {
  const out = list.filter((_, i) => (pick[i % pick.length]! + i) % 2 === 0);
  return out.length > 0 ? out : list.slice(0, 1);
}

function dedupe(items: Item[]): Item[] {
  const seen = new Set<number>();
  return items.filter((item) => !seen.has(itemKey(item)) && seen.add(itemKey(item)) !== undefined);
}

async function playSequence(ops: readonly Op[]): Promise<void> {
  const fx = await loadFixture(propsFixture);
  const { ledger, runId, actors } = fx;
  const roles = new Map(actors.filter((a) => a.id !== 0).map((a) => [a.id, a.role] as const));
  const nameOf = new Map(actors.map((a) => [a.id, a.name] as const));
  const actor = (i: number): Actor => actors[i]!;
  let model = new LedgerModel(fx.geometry, roles);
  const trace: string[] = [];
  /** Unit -> the insurer and pharmacy of the last successful settle call that named it (from the chain's side). */
  const lastSettle = new Map<number, { insurerId: number; pharmacyId: number }>();

  const fail = (message: string): never => {
    throw new Violation(`${message}\n  sequence (${trace.length} steps):\n    ${trace.join("\n    ")}`);
  };
  const pack = (items: readonly Item[]): string =>
    items.length === 0 ? "0x" : packRefs(items.map((item) => refOf(runId, item)));
  const names = (items: readonly Item[]): string => `[${items.map(itemName).join(",")}]`;
  const who = (id: number): string => nameOf.get(id) ?? `#${id}`;

  let before = await readChain(ledger, runId, 0);
  checkAgainstModel(before);

  for (const generated of ops) {
    if (generated.op === "skip") continue;
    const op = generated.op === "progress" ? progress(generated) : generated;
    const { step, send } = resolve(op);
    // The model's verdict, on a copy: a reverted transaction changes nothing.
    const next = model.clone();
    let predicted: string | null = null;
    try {
      apply(next, step);
    } catch (e) {
      if (!(e instanceof ModelRevert)) throw e;
      predicted = e.error;
    }
    let outcome: string | null = null;
    let receipt: ContractTransactionReceipt | null = null;
    if (op.op === "advance") {
      await time.increase(op.days * DAY);
    } else {
      try {
        receipt = await (await send()).wait();
      } catch (e) {
        outcome = revertName(ledger, e);
      }
    }
    trace.push(`${step.text}  => ${outcome === null ? "ok" : `reverts ${outcome}`}`);
    const tally = `${step.kind} ${outcome ?? "ok"}`;
    outcomes.set(tally, (outcomes.get(tally) ?? 0) + 1);
    if (outcome !== predicted) {
      fail(
        `model predicted ${predicted === null ? "success" : `revert ${predicted}`}, chain ${outcome ?? "succeeded"}`,
      );
    }
    if (outcome === null) model = next;
    if (receipt && op.op === "ship") {
      const created = receipt.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "ShipmentCreated");
      if (Number(created?.args.shipmentId) !== model.shipments.length) fail("shipment id differs from the model's");
    }
    if (outcome === null && step.kind === "settle") {
      for (const item of step.items) {
        lastSettle.set(item.index, { insurerId: step.callerId, pharmacyId: step.pharmacyId! });
      }
    }
    if (outcome === null && op.op === "reverse") for (const item of step.items) lastSettle.delete(item.index);

    const after = await readChain(ledger, runId, model.shipments.length);
    const blockDay = Math.floor((await time.latest()) / DAY) - fx.baseDay;
    if (blockDay !== model.day) fail(`block day ${blockDay}, model day ${model.day}: timing assumption broken`);
    checkAgainstModel(after);
    checkInvariants(after);
    if (outcome === null) checkTransition(step, before, after);
    before = after;
  }

  // ---- helpers closing over the run's state

  /** Turns a "progress" operation into the concrete operation that takes goods one step further. */
  function progress({ seed, units: seeds }: Extract<Op, { op: "progress" }>): ConcreteOp {
    // Deepest first; the choice leans towards the front of the list.
    // A paused ledger moves nothing: lift the pause first.
    if (model.paused) return { op: "unpause", caller: "regulator" };
    const kinds: ConcreteOp["op"][] = [];
    const pharmacies = [actor(3).id, actor(4).id];
    if (model.units.some((u) => u.dispensedBy !== null && !u.settled)) kinds.push("settle");
    if (
      model.units.some(
        (u, i) => u.dispensedBy === null && pharmacies.some((id) => model.holds(id, { level: Level.Unit, index: i })),
      )
    ) {
      kinds.push("dispense");
    }
    if (model.units.some((u) => u.settled)) kinds.push("reverse");
    if (model.units.some((u, i) => u.dispensedBy !== null && !u.settled && model.withinReturnWindow(i))) {
      kinds.push("undo");
    }
    if (model.shipments.some((_, i) => model.outstanding(i + 1).length > 0)) kinds.push("receive");
    kinds.push("ship");
    const kind = kinds[Math.min(seed % kinds.length, (seed >> 4) % kinds.length)]!;
    const unitSeeds = seeds.map((n) => n % UNITS);
    switch (kind) {
      case "settle":
        return {
          op: kind,
          fit: "strict",
          caller: 5 + (seed % 2),
          pharmacy: "auto",
          claim: 1 + (seed % 3),
          units: unitSeeds,
          consent: "none",
        };
      case "dispense":
      case "undo":
        return { op: kind, fit: "strict", caller: "auto", units: unitSeeds };
      case "reverse": {
        // One of the insurers that settled something.
        const settlers = [5, 6].filter((i) => model.units.some((u) => u.settled?.insurerId === actor(i).id));
        return {
          op: kind,
          fit: "strict",
          caller: settlers[seed % settlers.length]!,
          pharmacy: "auto",
          claim: 1 + (seed % 3),
          units: unitSeeds,
        };
      }
      case "return":
      case "decommission":
      case "advance":
      case "window":
      case "pause":
      case "unpause":
        throw new Error(`progress never picks ${kind}`);
      case "receive":
        return {
          op: kind,
          fit: true,
          shipment: seed,
          caller: "auto",
          part: seed % 4 === 0 ? "some" : "all",
          pick: [seed],
        };
      case "ship":
        return { op: kind, fit: true, caller: "auto", to: "down", toSeed: seed, items: seeds };
    }
  }

  /** The signer of participant `id` (the outsider for id 0). */
  function signerFor(id: number): HardhatEthersSigner {
    return (actors.find((a) => a.id === id) ?? actor(7)).signer;
  }

  /**
   * In fit mode, narrows a generated list to the candidates: the listed ones that are candidates, else
   * candidates chosen by the listed indices; a raw list, or no candidates at all, leaves the list as generated.
   */
  function fitList(fitMode: boolean, seeds: readonly number[], candidates: readonly Item[]): Item[] {
    const listed = seeds.map(itemAt);
    if (!fitMode || candidates.length === 0) return listed;
    const keys = new Set(candidates.map(itemKey));
    const fitting = dedupe(listed.filter((item) => keys.has(itemKey(item))));
    if (fitting.length > 0) return fitting;
    return dedupe((seeds.length > 0 ? seeds : [0]).map((n) => candidates[n % candidates.length]!));
  }

  /** Interprets a generated operation against the current model: caller, items, and the transaction to send. */
  function resolve(op: ConcreteOp): { step: Step; send: () => Promise<ContractTransactionResponse> } {
    const movable = (holder: number) =>
      ALL_ITEMS.filter(
        (item) =>
          model.holds(holder, item) &&
          !(item.level === Level.Case && model.cases[item.index]!.opened) &&
          !(item.level === Level.Unit && model.unit(item.index).dispensedBy !== null),
      );
    const units = (keep: (u: UnitState) => boolean) =>
      ALL_ITEMS.filter((item) => item.level === Level.Unit && keep(model.unit(item.index)));
    const holderIds = actors.filter((a) => [1, 2, 3].includes(a.role)).map((a) => a.id);
    switch (op.op) {
      case "ship":
      case "decommission": {
        let callerId: number;
        if (op.caller !== "auto") callerId = actor(op.caller).id;
        else {
          // The holder of the first listed item at rest, else someone who holds something.
          const first = op.items.map((i) => model.location(itemAt(i))).find((at) => at.kind === "held");
          const someone = holderIds.filter((id) => movable(id).length > 0);
          callerId =
            first?.kind === "held"
              ? first.holder
              : (someone[op.items.length % Math.max(1, someone.length)] ?? actor(0).id);
        }
        const items = fitList(op.fit, op.items, movable(callerId));
        const signer = signerFor(callerId);
        if (op.op === "ship") {
          let toId: number;
          if (op.to !== "down") toId = actor(op.to).id;
          else {
            // Downstream: a maker ships to the distributor or a pharmacy, the distributor to a pharmacy,
            // a pharmacy to the other pharmacy or back to the distributor.
            const role = roles.get(callerId);
            const down =
              role === Role.Manufacturer
                ? [2, 3, 4]
                : role === Role.Distributor
                  ? [3, 4]
                  : role === Role.Pharmacy
                    ? [2, 3, 4]
                    : [2];
            const choices = down.map((i) => actor(i).id).filter((id) => id !== callerId);
            toId = choices[op.toSeed % choices.length]!;
          }
          return {
            step: { kind: op.op, callerId, items, toId, text: `ship ${who(callerId)} -> ${who(toId)} ${names(items)}` },
            send: () => ledger.connect(signer).ship(signerFor(toId).address, pack(items)),
          };
        }
        return {
          step: { kind: op.op, callerId, items, text: `decommission by ${who(callerId)} ${names(items)}` },
          send: () => ledger.connect(signer).decommission(pack(items), op.reason),
        };
      }
      case "receive":
      case "return": {
        const count = model.shipments.length;
        const open = model.shipments.map((_, i) => i + 1).filter((id) => model.outstanding(id).length > 0);
        const id =
          op.fit && open.length > 0
            ? open[op.shipment % open.length]!
            : count === 0
              ? 1
              : (op.shipment % (count + 1)) + 1;
        const s = model.shipment(id);
        const callerId =
          op.caller !== "auto" ? actor(op.caller).id : s ? (op.op === "receive" ? s.toId : s.fromId) : actor(2).id;
        const outstanding = model.outstanding(id);
        let items: Item[];
        if (op.fit && outstanding.length > 0)
          items = op.part === "all" ? outstanding : pickSubset(outstanding, op.pick);
        else items = op.pick.map((n) => itemAt(n % ITEMS));
        const signer = signerFor(callerId);
        return {
          step: {
            kind: op.op,
            callerId,
            items,
            shipmentId: id,
            text: `${op.op} #${id} by ${who(callerId)} ${names(items)}`,
          },
          send: () =>
            op.op === "receive"
              ? ledger.connect(signer).receiveShipment(id, pack(items))
              : ledger.connect(signer).returnToSender(id, pack(items)),
        };
      }
      case "dispense":
      case "undo": {
        const candidatesOf = (id: number) =>
          op.op === "dispense"
            ? movable(id).filter((item) => item.level === Level.Unit)
            : units((u) => u.dispensedBy === id && !u.settled).filter((item) => model.withinReturnWindow(item.index));
        // Loosely fit undo: any dispensed unit (another pharmacy's, settled, past its window).
        const loose = op.op === "undo" && op.fit === true;
        let callerId: number;
        if (op.caller !== "auto") callerId = actor(op.caller).id;
        else {
          const pharmacies = [actor(3).id, actor(4).id];
          callerId = pharmacies.find((id) => candidatesOf(id).length > 0) ?? pharmacies[op.units.length % 2]!;
        }
        const items = fitList(
          op.fit !== false,
          op.units,
          loose ? units((u) => u.dispensedBy !== null) : candidatesOf(callerId),
        );
        const signer = signerFor(callerId);
        return {
          step: { kind: op.op, callerId, items, text: `${op.op} by ${who(callerId)} ${names(items)}` },
          send: () =>
            op.op === "dispense"
              ? ledger.connect(signer).dispense(pack(items), ethers.ZeroHash)
              : ledger.connect(signer).undoDispense(pack(items)),
        };
      }
      case "settle": {
        const caller = actor(op.caller);
        const open = units((u) => u.dispensedBy !== null && !u.settled);
        let pharmacyId: number;
        if (op.pharmacy !== "auto") pharmacyId = actor(op.pharmacy).id;
        else {
          // The pharmacy that dispensed the first listed (else some) dispensed and unsettled unit.
          const listed = op.units
            .filter((i) => i < UNITS)
            .map((i) => model.unit(i))
            .find((u) => u.dispensedBy !== null && !u.settled);
          const some = open[(op.units[0] ?? 0) % Math.max(1, open.length)];
          pharmacyId = listed?.dispensedBy ?? (some && model.unit(some.index).dispensedBy) ?? actor(3).id;
        }
        // Strictly fit: unsettled units of that pharmacy; loosely: any dispensed unit.
        const items = fitList(
          op.fit !== false,
          op.units,
          op.fit === "strict"
            ? open.filter((item) => model.unit(item.index).dispensedBy === pharmacyId)
            : units((u) => u.dispensedBy !== null),
        );
        const claimRef = CLAIM_REFS[op.claim]!;
        const consent = consentFor(op.consent, caller.id, pharmacyId, claimRef, items);
        return {
          step: {
            kind: op.op,
            callerId: caller.id,
            items,
            pharmacyId,
            claimRef,
            consent,
            text:
              `settle by ${caller.name} claim-${op.claim} for ${who(pharmacyId)} ${names(items)}` +
              (op.consent === "none" ? "" : ` with consent ${op.consent}`),
          },
          send: async () => {
            const signature = consent.wellFormed
              ? await consentOf(
                  ledger,
                  signerFor(consent.signerId),
                  signerFor(consent.insurerId).address,
                  consent.claimRef,
                  pack(consent.units),
                )
              : "0xdeadbeef";
            return ledger
              .connect(caller.signer)
              .settle(claimRef, signerFor(pharmacyId).address, pack(items), signature);
          },
        };
      }
      case "reverse": {
        const caller = actor(op.caller);
        // Strictly fit: units the caller settled; loosely: any settled unit.
        const mine = units((u) => u.settled?.insurerId === caller.id);
        let items = fitList(op.fit !== false, op.units, op.fit === "strict" ? mine : units((u) => u.settled !== null));
        const first = items.find((item) => item.level === Level.Unit && model.unit(item.index).settled);
        const dispensedBy = first ? model.unit(first.index).settled!.pharmacyId : actor(3).id;
        const pharmacyId = op.pharmacy === "auto" ? dispensedBy : actor(op.pharmacy).id;
        // Strictly, of one pharmacy's units; the claim reference (for the record) of the first of them.
        if (op.fit === "strict") {
          items = items.filter(
            (item) => item.level === Level.Unit && model.unit(item.index).settled?.pharmacyId === pharmacyId,
          );
        }
        let claimRef = CLAIM_REFS[op.claim]!;
        if (op.fit && first && claimRef !== ethers.ZeroHash) claimRef = model.unit(first.index).settled!.claimRef;
        const shownRef = CLAIM_REFS.indexOf(claimRef);
        return {
          step: {
            kind: op.op,
            callerId: caller.id,
            items,
            pharmacyId,
            claimRef,
            text: `reverse by ${caller.name} claim-${shownRef} for ${who(pharmacyId)} ${names(items)}`,
          },
          send: () =>
            ledger
              .connect(caller.signer)
              .reverseSettlement(claimRef, signerFor(pharmacyId).address, pack(items), "test"),
        };
      }
      case "window":
      case "pause":
      case "unpause": {
        const byRegulator = op.caller === "regulator";
        const signer = byRegulator ? fx.regulator : actor(op.caller as number).signer;
        const by = byRegulator ? "regulator" : actor(op.caller as number).name;
        const days = op.op === "window" ? op.days : undefined;
        return {
          step: {
            kind: op.op,
            callerId: byRegulator ? 0 : actor(op.caller as number).id,
            items: [],
            days,
            byRegulator,
            text: `${op.op}${days === undefined ? "" : ` ${days} days`} by ${by}`,
          },
          send: () =>
            op.op === "window"
              ? ledger.connect(signer).setReturnWindow(op.days)
              : op.op === "pause"
                ? ledger.connect(signer).pause()
                : ledger.connect(signer).unpause(),
        };
      }
      case "advance":
        return {
          step: { kind: op.op, callerId: 0, items: [], days: op.days, text: `advance ${op.days} days` },
          send: () => Promise.reject(new Error("not a transaction")),
        };
    }
  }

  function apply(m: LedgerModel, step: Step): void {
    const { callerId, items } = step;
    switch (step.kind) {
      case "ship":
        m.ship(callerId, step.toId!, items);
        return;
      case "receive":
        m.receive(callerId, step.shipmentId!, items);
        return;
      case "return":
        m.returnToSender(callerId, step.shipmentId!, items);
        return;
      case "dispense":
        m.dispense(callerId, items);
        return;
      case "undo":
        m.undoDispense(callerId, items);
        return;
      case "settle":
        m.settle(callerId, step.pharmacyId!, step.claimRef!, items, step.consent!);
        return;
      case "reverse":
        m.reverseSettlement(callerId, step.pharmacyId!, step.claimRef!, items);
        return;
      case "window":
        m.setReturnWindow(step.byRegulator!, step.days!);
        return;
      case "pause":
      case "unpause":
        m.setPaused(step.byRegulator!, step.kind === "pause");
        return;
      case "decommission":
        m.decommission(callerId, items);
        return;
      case "advance":
        m.advanceDays(step.days!);
        return;
    }
  }

  /** Every view the chain offers equals what the model says. */
  function checkAgainstModel(view: ChainView): void {
    ALL_ITEMS.forEach((item, i) => {
      const want = model.custody(item);
      const got = view.custody[i]!;
      if (
        got.holderId !== want.holderId ||
        got.inTransitShipment !== want.inTransitShipment ||
        got.decommissioned !== want.decommissioned
      ) {
        fail(`custodyOf(${itemName(item)}) is ${JSON.stringify(got)}, model says ${JSON.stringify(want)}`);
      }
    });
    for (let i = 0; i < UNITS; i++) {
      const u = model.unit(i);
      if (view.dispensed[i] !== (u.dispensedBy !== null) || view.settled[i] !== (u.settled !== null)) {
        fail(
          `dispensingOf(u${i}) is dispensed=${view.dispensed[i]} settled=${view.settled[i]}, model says ` +
            `dispensed=${u.dispensedBy !== null} settled=${u.settled !== null}`,
        );
      }
      if (view.settlement[i] !== model.settlementOf(i)) {
        fail(`settlementOf(u${i}) is ${view.settlement[i]}, model says ${model.settlementOf(i)}`);
      }
    }
    model.shipments.forEach((s, i) => {
      const got = view.shipments[i]!;
      if (JSON.stringify(got) !== JSON.stringify({ ...s })) {
        fail(`shipmentOf(${i + 1}) is ${JSON.stringify(got)}, model says ${JSON.stringify(s)}`);
      }
    });
    if (view.shipments[model.shipments.length]!.fromId !== 0) fail(`shipment ${model.shipments.length + 1} exists`);
    if (view.returnWindow !== model.returnWindowDays) {
      fail(`returnWindow() is ${view.returnWindow}, model says ${model.returnWindowDays}`);
    }
    if (view.paused !== model.paused) fail(`paused() is ${view.paused}, model says ${model.paused}`);
  }

  /** The consent a settle step presents: the right terms, or the right terms but for one thing. */
  function consentFor(kind: Forgery, insurerId: number, pharmacyId: number, claimRef: string, items: Item[]): Consent {
    const right: Consent = { wellFormed: true, signerId: pharmacyId, insurerId, claimRef, units: items };
    switch (kind) {
      case "none":
        return right;
      case "otherInsurer":
        return { ...right, insurerId: insurerId === actor(5).id ? actor(6).id : actor(5).id };
      case "otherSigner":
        return { ...right, signerId: pharmacyId === actor(3).id ? actor(4).id : actor(3).id };
      case "otherClaim":
        return { ...right, claimRef: CLAIM_REFS[(CLAIM_REFS.indexOf(claimRef) % 3) + 1]! };
      case "otherUnits":
        return { ...right, units: items.length > 1 ? items.slice(1) : [itemAt(((items[0]?.index ?? 0) + 1) % UNITS)] };
      case "malformed":
        return { ...right, wellFormed: false };
    }
  }

  /** Invariants of the chain's views alone, whatever the model says. */
  function checkInvariants(view: ChainView): void {
    const isHolder = (id: number) => [Role.Manufacturer, Role.Distributor, Role.Pharmacy].includes(roles.get(id)!);
    let atRest = 0;
    let inTransit = 0;
    let decommissioned = 0;
    for (let i = 0; i < UNITS; i++) {
      const c = view.custody[i]!;
      // Exactly one place: a holder at rest, a shipment, or out of circulation.
      if (c.inTransitShipment !== 0 && c.decommissioned) fail(`u${i} is both in transit and decommissioned`);
      if (c.inTransitShipment !== 0) {
        inTransit++;
        const s = view.shipments[c.inTransitShipment - 1];
        if (!s || s.fromId === 0) fail(`u${i} is in transit under unknown shipment ${c.inTransitShipment}`);
        if (s!.itemCount - s!.received - s!.returned <= 0) fail(`u${i} rides shipment ${c.inTransitShipment}, done`);
        if (c.holderId !== s!.fromId) fail(`u${i} in transit: holder ${c.holderId} is not the sender`);
      } else if (c.decommissioned) decommissioned++;
      else atRest++;
      if (!isHolder(c.holderId)) fail(`u${i} is with #${c.holderId}, who cannot hold goods`);
      if (view.split[i]) fail(`u${i} is split, yet nothing dispenses in parts here`);
      if (view.settled[i] && !view.dispensed[i]) fail(`u${i} is settled but not dispensed`);
      if ((view.settlement[i] !== 0) !== view.settled[i]) fail(`u${i}: settlementOf and lane disagree`);
      if (view.settled[i] && roles.get(view.settlement[i]!) !== Role.Insurer) {
        fail(`u${i} is settled by ${who(view.settlement[i]!)}, no insurer`);
      }
      if (view.dispensed[i]) {
        if (c.inTransitShipment !== 0 || c.decommissioned) fail(`dispensed u${i} is in transit or decommissioned`);
        if (roles.get(c.holderId) !== Role.Pharmacy) fail(`dispensed u${i} is held by ${who(c.holderId)}`);
      }
      if (view.settled[i]) {
        const s = lastSettle.get(i);
        if (!s) fail(`u${i} is settled but no successful settle named it since`);
        if (s!.insurerId !== view.settlement[i]) fail(`u${i} is settled by another insurer than its settle call's`);
        if (s!.pharmacyId !== c.holderId) {
          fail(`u${i} was settled for ${who(s!.pharmacyId)} but dispensed by ${who(c.holderId)}`);
        }
      }
    }
    if (atRest + inTransit + decommissioned !== UNITS) fail("units are not conserved");
    for (let i = UNITS; i < ITEMS; i++) {
      const c = view.custody[i]!;
      if (!isHolder(c.holderId)) fail(`${itemName(itemAt(i))} is with #${c.holderId}, who cannot hold goods`);
    }
  }

  /** What a successful step may have changed: only what it names, and only from its caller. */
  function checkTransition(step: Step, prev: ChainView, view: ChainView): void {
    const keys = step.items.map(itemKey);
    if (new Set(keys).size !== keys.length) fail(`${step.kind} succeeded with an item listed twice`);
    const moves = ["ship", "receive", "return", "decommission"].includes(step.kind);
    ALL_ITEMS.forEach((item, i) => {
      const was = prev.custody[i]!;
      const now = view.custody[i]!;
      if (JSON.stringify(was) === JSON.stringify(now)) return;
      if (!moves || !step.items.some((named) => model.within(item, named))) {
        fail(`${itemName(item)} moved (${JSON.stringify(was)} -> ${JSON.stringify(now)}) by a step not naming it`);
      }
    });
    for (const item of step.items) {
      const i = itemKey(item);
      const was = prev.custody[i]!;
      if (step.kind === "ship" || step.kind === "decommission" || step.kind === "dispense") {
        // Nothing moves, or is dispensed, without its holder.
        if (was.holderId !== step.callerId || was.inTransitShipment !== 0 || was.decommissioned) {
          fail(`${step.kind} of ${itemName(item)} by ${who(step.callerId)}, which held ${JSON.stringify(was)}`);
        }
      }
      if (step.kind === "receive" || step.kind === "return") {
        // Only what rides the shipment arrives, at its recipient (or back at its sender).
        const s = view.shipments[step.shipmentId! - 1]!;
        const now = view.custody[i]!;
        const to = step.kind === "receive" ? s.toId : s.fromId;
        if (was.inTransitShipment !== step.shipmentId || now.inTransitShipment !== 0 || now.holderId !== to) {
          fail(`${step.kind} of ${itemName(item)}: ${JSON.stringify(was)} -> ${JSON.stringify(now)}`);
        }
      }
      if (step.kind === "dispense" && prev.dispensed[i]) fail(`u${i} dispensed twice`);
      if (step.kind === "settle" && (prev.settled[i] || !prev.dispensed[i])) fail(`u${i} settled twice or undispensed`);
    }
  }
}

function revertName(ledger: DrugLedger, e: unknown): string {
  const err = e as { revert?: { name?: string }; data?: unknown; message?: string };
  if (err.revert?.name) return err.revert.name;
  if (typeof err.data === "string" && err.data.length >= 10) {
    const parsed = ledger.interface.parseError(err.data);
    if (parsed) return parsed.name;
  }
  return `a revert that is no custom error: ${err.message ?? String(e)}`;
}

describe("DrugLedger properties (model-based)", () => {
  it("random custody, dispensing and settlement sequences follow the reference model and keep the invariants", async function () {
    this.timeout(600_000);
    const started = Date.now();
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 25, maxLength: 40 }), async (ops) => {
        steps += ops.length;
        await playSequence(ops);
      }),
      {
        numRuns: NUM_RUNS,
        seed: process.env.LEDGER_PROPS_SEED ? Number(process.env.LEDGER_PROPS_SEED) : undefined,
        path: process.env.LEDGER_PROPS_PATH,
        endOnFailure: false,
      },
    );
    expect(steps).to.be.greaterThan(0);
    if (process.env.LEDGER_PROPS_STATS)
      console.log(
        [...outcomes]
          .sort()
          .map(([k, n]) => `      ${k}: ${n}`)
          .join("\n"),
      );
    console.log(`      ${NUM_RUNS} runs, ${steps} steps in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
