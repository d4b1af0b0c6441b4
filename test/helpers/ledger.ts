import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { DrugLedger__factory, type DrugLedger } from "../../typechain-types";
import { buildRun, demoRunCodes, RunPayload } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";

import { packRefs } from "../../backend/codes/refs";
import { consentDomain, signConsent } from "../../backend/chain/consent";
import type { ContractTransactionResponse, Signer } from "ethers";

export { packRefs, unitRef, caseRef, palletRef, unpackRefs } from "../../backend/codes/refs";

export const Role = { None: 0, Manufacturer: 1, Distributor: 2, Pharmacy: 3, Insurer: 4 } as const;
export const DAY = 24 * 60 * 60;
export const ADMIN_DELAY = 3 * DAY;

export interface Actors {
  admin: HardhatEthersSigner;
  regulator: HardhatEthersSigner;
  maker: HardhatEthersSigner;
  otherMaker: HardhatEthersSigner;
  distributor: HardhatEthersSigner;
  pharmacy: HardhatEthersSigner;
  otherPharmacy: HardhatEthersSigner;
  insurer: HardhatEthersSigner;
  otherInsurer: HardhatEthersSigner;
  outsider: HardhatEthersSigner;
}

export interface LedgerFixture extends Actors {
  ledger: DrugLedger;
  productId: bigint;
  batchId: bigint;
  expiresOn: number;
}

/** Code prefixes the regulator assigns to the two test manufacturers (the longest covering prefix decides). */
export const MAKER_PREFIXES = ["CN:861", "CN:86000", "GS1:690123"];
export const OTHER_MAKER_PREFIXES = ["CN:865", "CN:8600002", "GS1:690999"];

/**
 * Deploys the ledger and onboards one organisation of each kind (two makers, pharmacies and insurers); the makers
 * get their code prefixes.
 */
export async function deployLedger(): Promise<LedgerFixture> {
  const signers = await ethers.getSigners();
  const [admin, regulator, maker, otherMaker, distributor, pharmacy, otherPharmacy, insurer, otherInsurer, outsider] =
    signers as [HardhatEthersSigner, ...HardhatEthersSigner[]] as HardhatEthersSigner[];
  const ledger = (await ethers.deployContract("DrugLedger", [ADMIN_DELAY, admin!.address])) as unknown as DrugLedger;
  await ledger.grantRole(await ledger.REGULATOR_ROLE(), regulator!.address);
  const onboard = async (who: HardhatEthersSigner, role: number, name: string) =>
    ledger.connect(regulator!).onboard(who.address, role, name, `LIC-${name}`, "110000");
  await onboard(maker!, Role.Manufacturer, "Maker");
  await onboard(otherMaker!, Role.Manufacturer, "OtherMaker");
  await onboard(distributor!, Role.Distributor, "Distributor");
  await onboard(pharmacy!, Role.Pharmacy, "Pharmacy");
  await onboard(otherPharmacy!, Role.Pharmacy, "OtherPharmacy");
  await onboard(insurer!, Role.Insurer, "Insurer");
  await onboard(otherInsurer!, Role.Insurer, "OtherInsurer");
  await ledger.connect(regulator!).assignCodePrefixes(maker!.address, MAKER_PREFIXES);
  await ledger.connect(regulator!).assignCodePrefixes(otherMaker!.address, OTHER_MAKER_PREFIXES);
  await ledger.connect(maker!).registerProduct("8612345", "Amoxicillin 250mg", "H20000001", "capsule 24/box", 24);
  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  const expiresOn = now + 2 * 365 * DAY;
  await ledger.connect(maker!).registerBatch(1, "LOT-A1", now - DAY, expiresOn);
  return {
    ledger,
    admin: admin!,
    regulator: regulator!,
    maker: maker!,
    otherMaker: otherMaker!,
    distributor: distributor!,
    pharmacy: pharmacy!,
    otherPharmacy: otherPharmacy!,
    insurer: insurer!,
    otherInsurer: otherInsurer!,
    outsider: outsider!,
    productId: 1n,
    batchId: 1n,
    expiresOn,
  };
}

let serialCounter = 1;

/** Commissions a run of demo codes into `batchId`; returns its id and payload. */
export async function commissionRun(
  ledger: DrugLedger,
  maker: HardhatEthersSigner,
  batchId: bigint,
  shape: RunShape,
): Promise<{ runId: number; run: RunPayload }> {
  const run = buildRun(demoRunCodes("8612345", shape, serialCounter), shape);
  serialCounter += 100_000;
  const tx = await ledger
    .connect(maker)
    .commission(batchId, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness);
  const receipt = await tx.wait();
  const event = receipt!.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
  return { runId: Number(event!.args.runId), run };
}

/** The compact participant id of `who`. */
export async function idOf(ledger: DrugLedger, who: HardhatEthersSigner): Promise<bigint> {
  return (await ledger.participantOf(who.address)).id;
}

/** The shipment id a `ship` transaction created (from its ShipmentCreated event). */
export async function shipmentIdOf(ledger: DrugLedger, tx: ContractTransactionResponse): Promise<bigint> {
  const receipt = await tx.wait();
  const event = receipt!.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "ShipmentCreated");
  return event!.args.shipmentId as bigint;
}

/** Ships `refs` from `from` to `to`; returns the shipment id. */
export async function ship(
  ledger: DrugLedger,
  from: HardhatEthersSigner,
  to: HardhatEthersSigner,
  refs: bigint[],
): Promise<bigint> {
  return shipmentIdOf(ledger, await ledger.connect(from).ship(to.address, packRefs(refs)));
}

/** Ships `refs` and has the recipient receive all of them; returns the shipment id. */
export async function shipAndReceive(
  ledger: DrugLedger,
  from: HardhatEthersSigner,
  to: HardhatEthersSigner,
  refs: bigint[],
): Promise<bigint> {
  const shipmentId = await ship(ledger, from, to, refs);
  await ledger.connect(to).receiveShipment(shipmentId, packRefs(refs));
  return shipmentId;
}

/** dispensingOf as a tuple: dispensed, settled, split, split doses dispensed, split doses settled. */
export type DispensingView = [boolean, boolean, boolean, bigint, bigint];

export async function dispensingOf(ledger: DrugLedger, ref: bigint): Promise<DispensingView> {
  const r = await ledger.dispensingOf(ref);
  return [r.dispensed, r.settled, r.split, r.splitDispensed, r.splitSettled];
}

/** `pharmacy`'s consent to `insurer` settling `units` (packed) under `claimRef`; `quantity` for a split pack. */
export async function consentOf(
  ledger: DrugLedger,
  pharmacy: Signer,
  insurer: string,
  claimRef: string,
  units: string,
  quantity = 0,
): Promise<string> {
  const { chainId } = await ledger.runner!.provider!.getNetwork();
  const domain = consentDomain(chainId, await ledger.getAddress());
  return signConsent(pharmacy, domain, { insurer, claimRef, units, quantity });
}

/** `insurer` settles whole packs dispensed by `pharmacy`, with the pharmacy's consent. */
export async function settleWithConsent(
  ledger: DrugLedger,
  insurer: HardhatEthersSigner,
  pharmacy: HardhatEthersSigner,
  claimRef: string,
  units: string,
): Promise<ContractTransactionResponse> {
  const consent = await consentOf(ledger, pharmacy, insurer.address, claimRef, units);
  return ledger.connect(insurer).settle(claimRef, pharmacy.address, units, consent);
}

/** `insurer` settles `quantity` doses of split pack `unit` dispensed by `pharmacy`, with its consent. */
export async function settlePartialWithConsent(
  ledger: DrugLedger,
  insurer: HardhatEthersSigner,
  pharmacy: HardhatEthersSigner,
  claimRef: string,
  unit: bigint,
  quantity: number,
): Promise<ContractTransactionResponse> {
  const consent = await consentOf(ledger, pharmacy, insurer.address, claimRef, packRefs([unit]), quantity);
  return ledger.connect(insurer).settlePartial(claimRef, pharmacy.address, unit, quantity, consent);
}

/** The id a registration's event gives the new product or batch (ids depend on what a scenario did before). */
export async function newId(
  tx: Promise<ContractTransactionResponse>,
  event: "ProductRegistered" | "BatchRegistered",
  arg: "productId" | "batchId",
): Promise<bigint> {
  const receipt = await (await tx).wait();
  const iface = DrugLedger__factory.createInterface();
  const log = receipt!.logs.map((l) => iface.parseLog(l)).find((e) => e?.name === event);
  return log!.args[arg] as bigint;
}
