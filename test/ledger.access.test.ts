/**
 * Access-control matrix: every mutating external function of DrugLedger, called by every kind of caller.
 *
 * One rich fixture gives each caller kind its own goods and its own pending business (held units, dispensed units,
 * shipments addressed to it or sent by it, settled claims), so that the only thing that can make a cell fail is
 * who calls. The table below lists, per function, the callers that must succeed and, for all other callers, the
 * exact custom error. One `it` is generated per (function, caller) cell.
 *
 * Besides the eight caller kinds (default admin, regulator, manufacturer, distributor, pharmacy, insurer, a
 * suspended organisation of the function's role, an outsider), functions that act on someone's goods or claims
 * have a ninth column, "peer": an active organisation of the right role acting on another organisation's goods,
 * shipment, claim or product code (for settlement: a rival insurer presenting the consent the pharmacy gave the
 * insurer it billed).
 *
 * One account, one role: rows at the end show that the admin and regulators cannot be onboarded and that no
 * onboarded organisation can be made regulator or admin, so governance never holds a business role.
 */
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import type { ContractTransactionResponse } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { buildRun, demoRunCodes, type RunPayload } from "../backend/chain/runs";
import {
  ADMIN_DELAY,
  commissionRun,
  DAY,
  deployLedger,
  packRefs,
  Role,
  consentOf,
  settlePartialWithConsent,
  settleWithConsent,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";

type Signer = HardhatEthersSigner;

const ROLES = {
  DEFAULT_ADMIN_ROLE: ethers.ZeroHash,
  REGULATOR_ROLE: ethers.id("REGULATOR_ROLE"),
  MANUFACTURER_ROLE: ethers.id("MANUFACTURER_ROLE"),
  DISTRIBUTOR_ROLE: ethers.id("DISTRIBUTOR_ROLE"),
  PHARMACY_ROLE: ethers.id("PHARMACY_ROLE"),
  INSURER_ROLE: ethers.id("INSURER_ROLE"),
} as const;
type RoleName = keyof typeof ROLES;

const CLAIM_A = ethers.id("claim-A"); // the insurer's settled claim
const CLAIM_B = ethers.id("claim-B"); // the suspended insurer's settled claim
const CLAIM_NEW = ethers.id("claim-new"); // a fresh claim for settle/settlePartial cells

const CALLERS = [
  "admin",
  "regulator",
  "manufacturer",
  "distributor",
  "pharmacy",
  "insurer",
  "suspended",
  "outsider",
] as const;
type Caller = (typeof CALLERS)[number] | "peer";

type SuspendedKind = "manufacturer" | "pharmacy" | "insurer";
type PeerKind = "otherMaker" | "otherPharmacy" | "otherInsurer";

interface Shipment {
  id: bigint;
  items: string;
}

interface AccessFixture extends LedgerFixture {
  suspendedOrg: Record<SuspendedKind, Signer>;
  /** Active distributor that suspend cells suspend. */
  suspendTarget: Signer;
  /** Suspended distributor that reinstate cells reinstate. */
  reinstateTarget: Signer;
  /** Never onboarded, never granted anything: target of onboard, grantRole, beginDefaultAdminTransfer. */
  newcomer: Signer;
  pharmacyId: bigint;
  makerId: bigint;
  insurerId: bigint;
  otherInsurerId: bigint;
  /** Units of the maker's run, by purpose (see the fixture). */
  u: Record<UnitName, bigint>;
  ship: Record<ShipmentName, Shipment>;
  suspProduct: bigint;
  suspBatch: bigint;
  recalledBatch: bigint;
  /** A valid commissioning payload for batch 1 (or the suspended maker's batch). */
  run: RunPayload;
  now: number;
}

const UNITS = [
  "mU", // held by the maker
  "mOut", // shipped maker -> distributor, in transit (maker's outgoing / distributor's incoming)
  "pIn", // shipped maker -> pharmacy, in transit (pharmacy's incoming)
  "sIn", // shipped maker -> suspended pharmacy, in transit
  "dU", // held by the distributor
  "dOut", // shipped distributor -> maker, in transit (distributor's outgoing / maker's incoming)
  "pU", // held by the pharmacy
  "pD", // dispensed by the pharmacy
  "pP", // partially dispensed (5 of 24) by the pharmacy
  "pS", // dispensed by the pharmacy, settled by the insurer under CLAIM_A
  "pPS", // partially dispensed by the pharmacy, 3 doses settled by the insurer under CLAIM_A
  "pS2", // dispensed by the pharmacy, settled by the suspended insurer under CLAIM_B
  "pPS2", // partially dispensed by the pharmacy, 3 doses settled by the suspended insurer under CLAIM_B
  "pOut", // shipped pharmacy -> distributor, in transit
  "sU", // held by the suspended pharmacy
  "sD", // dispensed by the suspended pharmacy
  "sP", // partially dispensed by the suspended pharmacy
  "sOut", // shipped suspended pharmacy -> distributor, in transit
] as const;
type UnitName = (typeof UNITS)[number];

type ShipmentName = "toMaker" | "toDistributor" | "toPharmacy" | "toSuspended" | "fromPharmacy" | "fromSuspended";

async function shipmentOf(ledger: LedgerFixture["ledger"], from: Signer, to: Signer, refs: bigint[]) {
  const items = packRefs(refs);
  const receipt = await (await ledger.connect(from).ship(to.address, items)).wait();
  for (const log of receipt!.logs) {
    const event = ledger.interface.parseLog(log);
    if (event?.name === "ShipmentCreated") return { id: event.args.shipmentId as bigint, items };
  }
  throw new Error("no ShipmentCreated event");
}

async function deployAccessFixture(): Promise<AccessFixture> {
  const base = await deployLedger();
  const { ledger, regulator, maker, distributor, pharmacy, insurer } = base;
  const signers = await ethers.getSigners();
  const [suspMaker, suspPharmacy, suspInsurer, suspendTarget, reinstateTarget, newcomer] = signers.slice(10, 16) as [
    Signer,
    Signer,
    Signer,
    Signer,
    Signer,
    Signer,
  ];
  const onboard = (who: Signer, role: number, name: string) =>
    ledger.connect(regulator).onboard(who.address, role, name, `LIC-${name}`, "310000");
  await onboard(suspMaker, Role.Manufacturer, "SuspendedMaker");
  await onboard(suspPharmacy, Role.Pharmacy, "SuspendedPharmacy");
  await onboard(suspInsurer, Role.Insurer, "SuspendedInsurer");
  await onboard(suspendTarget, Role.Distributor, "SuspendTarget");
  await onboard(reinstateTarget, Role.Distributor, "ReinstateTarget");

  // One run of loose units (no cases) in the maker's batch 1; units are handed out by purpose.
  const { runId } = await commissionRun(ledger, maker, base.batchId, {
    unitCount: UNITS.length,
    unitsPerCase: 0,
    casesPerPallet: 0,
  });
  const u = Object.fromEntries(UNITS.map((name, i) => [name, unitRef(runId, i)])) as Record<UnitName, bigint>;

  const toDistributor = await shipmentOf(ledger, maker, distributor, [u.dU, u.dOut]);
  await ledger.connect(distributor).receiveShipment(toDistributor.id, toDistributor.items);
  const pharmacyGoods = [u.pU, u.pD, u.pP, u.pS, u.pPS, u.pS2, u.pPS2, u.pOut];
  const toPharmacy = await shipmentOf(ledger, maker, pharmacy, pharmacyGoods);
  await ledger.connect(pharmacy).receiveShipment(toPharmacy.id, toPharmacy.items);
  const toSuspended = await shipmentOf(ledger, maker, suspPharmacy, [u.sU, u.sD, u.sP, u.sOut]);
  await ledger.connect(suspPharmacy).receiveShipment(toSuspended.id, toSuspended.items);

  await ledger.connect(pharmacy).dispense(packRefs([u.pD, u.pS, u.pS2]), ethers.ZeroHash);
  for (const unit of [u.pP, u.pPS, u.pPS2]) await ledger.connect(pharmacy).dispensePartial(unit, 5, ethers.ZeroHash);
  await ledger.connect(suspPharmacy).dispense(packRefs([u.sD]), ethers.ZeroHash);
  await ledger.connect(suspPharmacy).dispensePartial(u.sP, 5, ethers.ZeroHash);

  await settleWithConsent(ledger, insurer, pharmacy, CLAIM_A, packRefs([u.pS]));
  await settlePartialWithConsent(ledger, insurer, pharmacy, CLAIM_A, u.pPS, 3);
  await settleWithConsent(ledger, suspInsurer, pharmacy, CLAIM_B, packRefs([u.pS2]));
  await settlePartialWithConsent(ledger, suspInsurer, pharmacy, CLAIM_B, u.pPS2, 3);

  // Shipments left in transit: each holder kind has one addressed to it and one it sent.
  const ship: Record<ShipmentName, Shipment> = {
    toDistributor: await shipmentOf(ledger, maker, distributor, [u.mOut]),
    toPharmacy: await shipmentOf(ledger, maker, pharmacy, [u.pIn]),
    toSuspended: await shipmentOf(ledger, maker, suspPharmacy, [u.sIn]),
    toMaker: await shipmentOf(ledger, distributor, maker, [u.dOut]),
    fromPharmacy: await shipmentOf(ledger, pharmacy, distributor, [u.pOut]),
    fromSuspended: await shipmentOf(ledger, suspPharmacy, distributor, [u.sOut]),
  };

  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  await ledger.connect(regulator).assignCodePrefixes(suspMaker.address, ["CN:869"]);
  const product = ["8699999", "Suspended drug", "H20009999", "tablet 10/box", 10] as const;
  const suspProduct = await ledger.connect(suspMaker).registerProduct.staticCall(...product);
  await ledger.connect(suspMaker).registerProduct(...product);
  const suspLot = [suspProduct, "LOT-S1", now - DAY, now + 365 * DAY] as const;
  const suspBatch = await ledger.connect(suspMaker).registerBatch.staticCall(...suspLot);
  await ledger.connect(suspMaker).registerBatch(...suspLot);
  const recalledLot = [base.productId, "LOT-RECALLED", now - DAY, now + 365 * DAY] as const;
  const recalledBatch = await ledger.connect(maker).registerBatch.staticCall(...recalledLot);
  await ledger.connect(maker).registerBatch(...recalledLot);
  await ledger.connect(maker).recallBatch(recalledBatch, "contamination");

  for (const who of [suspMaker, suspPharmacy, suspInsurer, reinstateTarget]) {
    await ledger.connect(regulator).suspend(who.address, "audit");
  }

  const shape = { unitCount: 4, unitsPerCase: 0, casesPerPallet: 0 };
  const run = buildRun(demoRunCodes("8612345", shape, 900_000_000), shape);
  const id = async (who: Signer) => BigInt((await ledger.participantOf(who.address)).id);
  return {
    ...base,
    suspendedOrg: { manufacturer: suspMaker, pharmacy: suspPharmacy, insurer: suspInsurer },
    suspendTarget,
    reinstateTarget,
    newcomer,
    pharmacyId: await id(pharmacy),
    makerId: await id(maker),
    insurerId: await id(insurer),
    otherInsurerId: await id(base.otherInsurer),
    u,
    ship,
    suspProduct,
    suspBatch,
    recalledBatch,
    run,
    now,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Expectations

interface Refusal {
  error: string;
  /** Expected error arguments, given the fixture and the calling signer; none for argument-less errors. */
  args?: (f: AccessFixture, caller: Signer) => unknown[];
  describe: string;
}

const unauthorized = (role: RoleName): Refusal => ({
  error: "AccessControlUnauthorizedAccount",
  args: (_f, caller) => [caller.address, ROLES[role]],
  describe: `AccessControlUnauthorizedAccount(caller, ${role})`,
});
const SUSPENDED: Refusal = { error: "Suspended", args: (_f, c) => [c.address], describe: "Suspended(caller)" };
const NOT_ONBOARDED: Refusal = {
  error: "NotOnboarded",
  args: (_f, c) => [c.address],
  describe: "NotOnboarded(caller)",
};
const CANNOT_HOLD: Refusal = {
  error: "CannotHoldGoods",
  args: (_f, c) => [c.address],
  describe: "CannotHoldGoods(caller)",
};
const BUSINESS_ROLE_NEEDS_ONBOARDING: Refusal = {
  error: "BusinessRoleNeedsOnboarding",
  args: () => [ROLES.MANUFACTURER_ROLE],
  describe: "BusinessRoleNeedsOnboarding(MANUFACTURER_ROLE)",
};
const BAD_CONFIRMATION: Refusal = { error: "AccessControlBadConfirmation", describe: "AccessControlBadConfirmation()" };
const INVALID_DEFAULT_ADMIN: Refusal = {
  error: "AccessControlInvalidDefaultAdmin",
  args: (_f, c) => [c.address],
  describe: "AccessControlInvalidDefaultAdmin(caller)",
};
const notHolder = (unit: UnitName, holder: "pharmacyId" | "makerId"): Refusal => ({
  error: "NotHolder",
  args: (f) => [f.u[unit], f[holder]],
  describe: `NotHolder(${unit}, ${holder})`,
});
const notShipmentParty = (shipment: ShipmentName): Refusal => ({
  error: "NotShipmentParty",
  args: (f, c) => [f.ship[shipment].id, c.address],
  describe: `NotShipmentParty(${shipment}, caller)`,
});
const oneRolePerAccount = (who: (f: AccessFixture) => Signer, name: string): Refusal => ({
  error: "OneRolePerAccount",
  args: (f) => [who(f).address],
  describe: `OneRolePerAccount(${name})`,
});
const invalidConsent: Refusal = {
  error: "InvalidConsent",
  args: (f) => [f.pharmacy.address],
  describe: "InvalidConsent(pharmacy)",
};
const notSettledByInsurer = (unit: UnitName): Refusal => ({
  error: "NotSettledByInsurer",
  args: (f) => [f.u[unit], f.insurerId],
  describe: `NotSettledByInsurer(${unit}, insurer)`,
});
const notSettledUnderClaim = (unit: UnitName): Refusal => ({
  error: "NotSettledUnderClaim",
  args: (f) => [
    f.u[unit],
    ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["uint32", "bytes32"], [f.otherInsurerId, CLAIM_A])),
  ],
  describe: `NotSettledUnderClaim(${unit}, claimIdOf(otherInsurer, CLAIM_A))`,
});
const notBatchManufacturer: Refusal = {
  error: "NotBatchManufacturer",
  args: (f, c) => [f.batchId, c.address],
  describe: "NotBatchManufacturer(batch 1, caller)",
};
/** What holder-only custody functions answer to callers that cannot hold goods. */
const HOLDERS_ONLY: Partial<Record<Caller, Refusal>> = {
  admin: NOT_ONBOARDED,
  regulator: NOT_ONBOARDED,
  insurer: CANNOT_HOLD,
  suspended: SUSPENDED,
  outsider: NOT_ONBOARDED,
};

interface Row {
  fn: string;
  /** The suspended organisation used in this row's "suspended" cell (default: a suspended manufacturer). */
  suspended?: SuspendedKind;
  /** An active organisation of the right role acting on another organisation's goods or claim. */
  peer?: PeerKind;
  ok: Caller[];
  /** Refusals by caller; `others` covers every caller neither in `ok` nor here. */
  deny?: Partial<Record<Caller, Refusal>>;
  others?: Refusal;
  /** Extra set-up run (by the admin) after loading the fixture. */
  prepare?: (f: AccessFixture) => Promise<unknown>;
  call: (f: AccessFixture, caller: Caller, signer: Signer) => Promise<ContractTransactionResponse>;
}

/** Goods held outright by each holder kind; callers that hold nothing are given the pharmacy's unit. */
const held = (f: AccessFixture, caller: Caller): bigint =>
  ({ manufacturer: f.u.mU, distributor: f.u.dU, pharmacy: f.u.pU, suspended: f.u.sU })[caller as string] ?? f.u.pU;
/** Each holder kind's incoming shipment (others: the pharmacy's). */
const incoming = (f: AccessFixture, caller: Caller): Shipment =>
  ({
    manufacturer: f.ship.toMaker,
    distributor: f.ship.toDistributor,
    pharmacy: f.ship.toPharmacy,
    suspended: f.ship.toSuspended,
  })[caller as string] ?? f.ship.toPharmacy;
/** Each holder kind's outgoing shipment (others: the maker's). */
const outgoing = (f: AccessFixture, caller: Caller): Shipment =>
  ({
    manufacturer: f.ship.toDistributor,
    distributor: f.ship.toMaker,
    pharmacy: f.ship.fromPharmacy,
    suspended: f.ship.fromSuspended,
  })[caller as string] ?? f.ship.toDistributor;

const REGULATORS: Caller[] = ["admin", "regulator"];

const MATRIX: Row[] = [
  // --- Participants (regulators) ---
  {
    fn: "onboard",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).onboard(f.newcomer.address, Role.Distributor, "New", "LIC-New", "110000"),
  },
  {
    fn: "suspend",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).suspend(f.suspendTarget.address, "audit"),
  },
  {
    fn: "reinstate",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).reinstate(f.reinstateTarget.address),
  },
  // --- Products, batches, commissioning (manufacturers) ---
  {
    // 8600001 lies under the maker's prefix CN:86000, and the peer holds none that covers it; 8699001 under the
    // suspended maker's CN:869.
    fn: "registerProduct",
    peer: "otherMaker",
    ok: ["manufacturer"],
    deny: {
      suspended: SUSPENDED,
      peer: {
        error: "ProductCodeNotAssigned",
        args: (f) => ["8600001", f.makerId],
        describe: "ProductCodeNotAssigned(8600001, maker)",
      },
    },
    others: unauthorized("MANUFACTURER_ROLE"),
    call: (f, c, s) =>
      f.ledger
        .connect(s)
        .registerProduct(c === "suspended" ? "8699001" : "8600001", "New drug", "H20000099", "tablet 10/box", 10),
  },
  {
    fn: "assignCodePrefixes",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).assignCodePrefixes(f.maker.address, ["CN:862", "GS1:6901234"]),
  },
  {
    fn: "revokeCodePrefix",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).revokeCodePrefix("CN:861"),
  },
  {
    fn: "reassignProduct",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).reassignProduct(f.productId, f.otherMaker.address, "registered in error"),
  },
  {
    fn: "registerBatch",
    peer: "otherMaker",
    ok: ["manufacturer"],
    deny: {
      suspended: SUSPENDED,
      peer: {
        error: "NotProductManufacturer",
        args: (f, c) => [f.productId, c.address],
        describe: "NotProductManufacturer(product 1, caller)",
      },
    },
    others: unauthorized("MANUFACTURER_ROLE"),
    call: (f, c, s) =>
      f.ledger
        .connect(s)
        .registerBatch(c === "suspended" ? f.suspProduct : f.productId, "LOT-NEW", f.now - DAY, f.now + 365 * DAY),
  },
  {
    fn: "recallBatch",
    peer: "otherMaker",
    ok: ["admin", "regulator", "manufacturer"],
    deny: { suspended: SUSPENDED, peer: notBatchManufacturer },
    others: unauthorized("MANUFACTURER_ROLE"),
    call: (f, c, s) => f.ledger.connect(s).recallBatch(c === "suspended" ? f.suspBatch : f.batchId, "recall"),
  },
  {
    fn: "liftRecall",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).liftRecall(f.recalledBatch, "cleared"),
  },
  {
    fn: "commission",
    peer: "otherMaker",
    ok: ["manufacturer"],
    deny: { suspended: SUSPENDED, peer: notBatchManufacturer },
    others: unauthorized("MANUFACTURER_ROLE"),
    call: (f, c, s) =>
      f.ledger.connect(s).commission(c === "suspended" ? f.suspBatch : f.batchId, 4, 0, 0, f.run.codes, f.run.witness),
  },
  // --- Custody (holders: manufacturers, distributors, pharmacies) ---
  {
    fn: "ship",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["manufacturer", "distributor", "pharmacy"],
    deny: { ...HOLDERS_ONLY, peer: notHolder("pU", "pharmacyId") },
    call: (f, c, s) =>
      f.ledger.connect(s).ship((c === "distributor" ? f.pharmacy : f.distributor).address, packRefs([held(f, c)])),
  },
  {
    fn: "receiveShipment",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["manufacturer", "distributor", "pharmacy"],
    deny: { ...HOLDERS_ONLY, peer: notShipmentParty("toPharmacy") },
    call: (f, c, s) => f.ledger.connect(s).receiveShipment(incoming(f, c).id, incoming(f, c).items),
  },
  {
    fn: "returnToSender",
    suspended: "pharmacy",
    peer: "otherMaker",
    ok: ["manufacturer", "distributor", "pharmacy"],
    deny: { ...HOLDERS_ONLY, peer: notShipmentParty("toDistributor") },
    call: (f, c, s) => f.ledger.connect(s).returnToSender(outgoing(f, c).id, outgoing(f, c).items),
  },
  {
    fn: "decommission",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["manufacturer", "distributor", "pharmacy"],
    deny: { ...HOLDERS_ONLY, peer: notHolder("pU", "pharmacyId") },
    call: (f, c, s) => f.ledger.connect(s).decommission(packRefs([held(f, c)]), 1),
  },
  // --- Dispensing (pharmacies; manufacturer and distributor try their own stock) ---
  {
    fn: "dispense",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["pharmacy"],
    deny: { suspended: SUSPENDED, peer: notHolder("pU", "pharmacyId") },
    others: unauthorized("PHARMACY_ROLE"),
    call: (f, c, s) => f.ledger.connect(s).dispense(packRefs([held(f, c)]), ethers.id("rx")),
  },
  {
    fn: "undoDispense",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["pharmacy"],
    deny: { suspended: SUSPENDED, peer: notHolder("pD", "pharmacyId") },
    others: unauthorized("PHARMACY_ROLE"),
    call: (f, c, s) => f.ledger.connect(s).undoDispense(packRefs([c === "suspended" ? f.u.sD : f.u.pD])),
  },
  {
    fn: "dispensePartial",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["pharmacy"],
    deny: { suspended: SUSPENDED, peer: notHolder("pU", "pharmacyId") },
    others: unauthorized("PHARMACY_ROLE"),
    call: (f, c, s) => f.ledger.connect(s).dispensePartial(held(f, c), 5, ethers.id("rx")),
  },
  {
    fn: "undoDispensePartial",
    suspended: "pharmacy",
    peer: "otherPharmacy",
    ok: ["pharmacy"],
    deny: { suspended: SUSPENDED, peer: notHolder("pP", "pharmacyId") },
    others: unauthorized("PHARMACY_ROLE"),
    call: (f, c, s) => f.ledger.connect(s).undoDispensePartial(c === "suspended" ? f.u.sP : f.u.pP, 2),
  },
  {
    fn: "setReturnWindow",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).setReturnWindow(14),
  },
  // --- Settlement (insurers, with the dispensing pharmacy's consent; only one's own settlements reverse) ---
  {
    // Each caller presents the pharmacy's consent to itself; the peer, the consent given to the insurer.
    fn: "settle",
    suspended: "insurer",
    peer: "otherInsurer",
    ok: ["insurer"],
    deny: { suspended: SUSPENDED, peer: invalidConsent },
    others: unauthorized("INSURER_ROLE"),
    call: async (f, c, s) => {
      const units = packRefs([f.u.pD]);
      const consent = await consentOf(f.ledger, f.pharmacy, consentee(f, c, s), CLAIM_NEW, units);
      return f.ledger.connect(s).settle(CLAIM_NEW, f.pharmacy.address, units, consent);
    },
  },
  {
    // The same claim as settle's cell, as the one claim of a settleClaims.
    fn: "settleClaims",
    suspended: "insurer",
    peer: "otherInsurer",
    ok: ["insurer"],
    deny: { suspended: SUSPENDED, peer: invalidConsent },
    others: unauthorized("INSURER_ROLE"),
    call: async (f, c, s) => {
      const units = packRefs([f.u.pD]);
      const consent = await consentOf(f.ledger, f.pharmacy, consentee(f, c, s), CLAIM_NEW, units);
      return f.ledger.connect(s).settleClaims([{ claimRef: CLAIM_NEW, pharmacy: f.pharmacy.address, units, consent }]);
    },
  },
  {
    fn: "settlePartial",
    suspended: "insurer",
    peer: "otherInsurer",
    ok: ["insurer"],
    deny: { suspended: SUSPENDED, peer: invalidConsent },
    others: unauthorized("INSURER_ROLE"),
    call: async (f, c, s) => {
      const consent = await consentOf(f.ledger, f.pharmacy, consentee(f, c, s), CLAIM_NEW, packRefs([f.u.pP]), 2);
      return f.ledger.connect(s).settlePartial(CLAIM_NEW, f.pharmacy.address, f.u.pP, 2, consent);
    },
  },
  {
    fn: "reverseSettlement",
    suspended: "insurer",
    peer: "otherInsurer",
    ok: ["insurer"],
    deny: { suspended: SUSPENDED, peer: notSettledByInsurer("pS") },
    others: unauthorized("INSURER_ROLE"),
    call: (f, c, s) =>
      c === "suspended"
        ? f.ledger.connect(s).reverseSettlement(CLAIM_B, f.pharmacy.address, packRefs([f.u.pS2]), "chargeback")
        : f.ledger.connect(s).reverseSettlement(CLAIM_A, f.pharmacy.address, packRefs([f.u.pS]), "chargeback"),
  },
  {
    fn: "reversePartialSettlement",
    suspended: "insurer",
    peer: "otherInsurer",
    ok: ["insurer"],
    deny: { suspended: SUSPENDED, peer: notSettledUnderClaim("pPS") },
    others: unauthorized("INSURER_ROLE"),
    call: (f, c, s) =>
      c === "suspended"
        ? f.ledger.connect(s).reversePartialSettlement(CLAIM_B, f.pharmacy.address, f.u.pPS2, "chargeback")
        : f.ledger.connect(s).reversePartialSettlement(CLAIM_A, f.pharmacy.address, f.u.pPS, "chargeback"),
  },
  // --- Emergency stop (regulators) and the run limit (consortium admin) ---
  {
    fn: "pause",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).pause(),
  },
  {
    fn: "unpause",
    ok: REGULATORS,
    others: unauthorized("REGULATOR_ROLE"),
    prepare: (f) => f.ledger.connect(f.regulator).pause(),
    call: (f, _c, s) => f.ledger.connect(s).unpause(),
  },
  {
    fn: "setMaxRunCodes",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).setMaxRunCodes(20_000),
  },
  // --- AccessControl / AccessControlDefaultAdminRules (consortium admin) ---
  {
    fn: "grantRole(REGULATOR_ROLE)",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).grantRole(ROLES.REGULATOR_ROLE, f.newcomer.address),
  },
  {
    fn: "revokeRole(REGULATOR_ROLE)",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).revokeRole(ROLES.REGULATOR_ROLE, f.regulator.address),
  },
  {
    // Business roles live in the participant record: they are taken away by suspension, never revoked.
    fn: "revokeRole(MANUFACTURER_ROLE)",
    ok: [],
    deny: { admin: BUSINESS_ROLE_NEEDS_ONBOARDING },
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).revokeRole(ROLES.MANUFACTURER_ROLE, f.maker.address),
  },
  {
    fn: "renounceRole(REGULATOR_ROLE, regulator)",
    ok: ["regulator"],
    others: BAD_CONFIRMATION,
    call: (f, _c, s) => f.ledger.connect(s).renounceRole(ROLES.REGULATOR_ROLE, f.regulator.address),
  },
  {
    fn: "renounceRole(MANUFACTURER_ROLE, maker)",
    ok: [],
    deny: { manufacturer: BUSINESS_ROLE_NEEDS_ONBOARDING },
    others: BAD_CONFIRMATION,
    call: (f, _c, s) => f.ledger.connect(s).renounceRole(ROLES.MANUFACTURER_ROLE, f.maker.address),
  },
  {
    fn: "beginDefaultAdminTransfer",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).beginDefaultAdminTransfer(f.newcomer.address),
  },
  {
    fn: "cancelDefaultAdminTransfer",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    prepare: (f) => f.ledger.connect(f.admin).beginDefaultAdminTransfer(f.newcomer.address),
    call: (f, _c, s) => f.ledger.connect(s).cancelDefaultAdminTransfer(),
  },
  {
    fn: "acceptDefaultAdminTransfer",
    ok: ["regulator"],
    others: INVALID_DEFAULT_ADMIN,
    prepare: async (f) => {
      await f.ledger.connect(f.admin).beginDefaultAdminTransfer(f.regulator.address);
      await time.increase(ADMIN_DELAY + 1);
    },
    call: (f, _c, s) => f.ledger.connect(s).acceptDefaultAdminTransfer(),
  },
  {
    fn: "changeDefaultAdminDelay",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).changeDefaultAdminDelay(5 * DAY),
  },
  {
    fn: "rollbackDefaultAdminDelay",
    ok: ["admin"],
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    prepare: (f) => f.ledger.connect(f.admin).changeDefaultAdminDelay(5 * DAY),
    call: (f, _c, s) => f.ledger.connect(s).rollbackDefaultAdminDelay(),
  },
  // --- One account, one role: governance never holds a business role ---
  {
    fn: "onboard(regulator's account)",
    ok: [],
    deny: {
      admin: oneRolePerAccount((f) => f.regulator, "regulator"),
      regulator: oneRolePerAccount((f) => f.regulator, "regulator"),
    },
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).onboard(f.regulator.address, Role.Insurer, "Reg", "LIC-Reg", "110000"),
  },
  {
    fn: "onboard(admin's account)",
    ok: [],
    deny: { admin: oneRolePerAccount((f) => f.admin, "admin"), regulator: oneRolePerAccount((f) => f.admin, "admin") },
    others: unauthorized("REGULATOR_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).onboard(f.admin.address, Role.Pharmacy, "Adm", "LIC-Adm", "110000"),
  },
  {
    fn: "grantRole(REGULATOR_ROLE, insurer)",
    ok: [],
    deny: { admin: oneRolePerAccount((f) => f.insurer, "insurer") },
    others: unauthorized("DEFAULT_ADMIN_ROLE"),
    call: (f, _c, s) => f.ledger.connect(s).grantRole(ROLES.REGULATOR_ROLE, f.insurer.address),
  },
  {
    fn: "acceptDefaultAdminTransfer(to an onboarded pharmacy)",
    ok: [],
    deny: { pharmacy: oneRolePerAccount((f) => f.pharmacy, "pharmacy") },
    others: INVALID_DEFAULT_ADMIN,
    prepare: async (f) => {
      await f.ledger.connect(f.admin).beginDefaultAdminTransfer(f.pharmacy.address);
      await time.increase(ADMIN_DELAY + 1);
    },
    call: (f, _c, s) => f.ledger.connect(s).acceptDefaultAdminTransfer(),
  },
];

/** The insurer a settle cell's consent names: the caller itself, except the peer, who presents the insurer's. */
function consentee(f: AccessFixture, caller: Caller, signer: Signer): string {
  return caller === "peer" ? f.insurer.address : signer.address;
}

// ---------------------------------------------------------------------------------------------------------------
// Generated cells

function signerOf(f: AccessFixture, row: Row, caller: Caller): Signer {
  switch (caller) {
    case "admin":
      return f.admin;
    case "regulator":
      return f.regulator;
    case "manufacturer":
      return f.maker;
    case "distributor":
      return f.distributor;
    case "pharmacy":
      return f.pharmacy;
    case "insurer":
      return f.insurer;
    case "suspended":
      return f.suspendedOrg[row.suspended ?? "manufacturer"];
    case "outsider":
      return f.outsider;
    case "peer":
      if (!row.peer) throw new Error(`${row.fn} has no peer column`);
      return f[row.peer];
  }
}

function callerLabel(row: Row, caller: Caller): string {
  if (caller === "suspended") return `suspended ${row.suspended ?? "manufacturer"}`;
  if (caller === "peer") return `peer (${row.peer})`;
  return caller;
}

function refusalOf(row: Row, caller: Caller): Refusal | undefined {
  if (row.ok.includes(caller)) return undefined;
  const refusal = row.deny?.[caller] ?? row.others;
  if (!refusal) throw new Error(`matrix: ${row.fn} has no expectation for ${caller}`);
  return refusal;
}

describe("DrugLedger access-control matrix", () => {
  it("the matrix covers every mutating external function of the ABI", async () => {
    const { ledger } = await loadFixture(deployAccessFixture);
    const mutating = ledger.interface.fragments
      .filter((fr) => fr.type === "function")
      .map((fr) => fr as unknown as { name: string; stateMutability: string })
      .filter((fr) => fr.stateMutability !== "view" && fr.stateMutability !== "pure")
      .map((fr) => fr.name);
    const covered = new Set(MATRIX.map((row) => row.fn.replace(/\(.*$/, "")));
    expect(mutating.filter((name) => !covered.has(name))).to.deep.equal([]);
  });

  for (const row of MATRIX) {
    describe(row.fn, () => {
      const callers: Caller[] = row.peer ? [...CALLERS, "peer"] : [...CALLERS];
      for (const caller of callers) {
        const refusal = refusalOf(row, caller);
        const label = callerLabel(row, caller);
        const title = refusal ? `${label} is refused: ${refusal.describe}` : `${label} may call`;
        const body = async () => {
          const f = await loadFixture(deployAccessFixture);
          if (row.prepare) await row.prepare(f);
          const signer = signerOf(f, row, caller);
          if (!refusal) {
            await expect(row.call(f, caller, signer)).to.not.be.reverted;
            return;
          }
          const assertion = expect(row.call(f, caller, signer)).to.be.revertedWithCustomError(f.ledger, refusal.error);
          if (refusal.args) await assertion.withArgs(...refusal.args(f, signer));
          else await assertion;
        };
        it(title, body);
      }
      // Control: the suspended organisation, once reinstated, may make the very call it was refused, so the
      // suspension (not its goods or arguments) is what the "suspended" cell exercises.
      if (row.deny?.suspended === SUSPENDED) {
        it(`control: ${callerLabel(row, "suspended")}, once reinstated, may call`, async () => {
          const f = await loadFixture(deployAccessFixture);
          if (row.prepare) await row.prepare(f);
          const signer = signerOf(f, row, "suspended");
          await f.ledger.connect(f.regulator).reinstate(signer.address);
          await expect(row.call(f, "suspended", signer)).to.not.be.reverted;
        });
      }
    });
  }
});
