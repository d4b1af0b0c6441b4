import { ethers } from "hardhat";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";
import {
  caseRef,
  deployLedger,
  idOf,
  packRefs,
  palletRef,
  settlePartialWithConsent,
  settleWithConsent,
  ship,
  unitRef,
  type LedgerFixture,
} from "./ledger";

export interface Scenario extends LedgerFixture {
  /** The serial base of the first run's codes (`demoRunCodes("8612345", shape, serialBase)`). */
  serialBase: number;
  /** The run commissioned first, and a small run repeating its first four unit codes. */
  runId: number;
  duplicateRunId: number;
  /** A run of another maker's product holding copies of the first run's first four unit code hashes. */
  foreignCopyRunId: number;
  duplicatedCode: Buffer;
  recalledBatchId: bigint;
  partialShipmentId: bigint;
  claimRef: string;
  claimId: string;
  splitClaimRef: string;
}

let serialBase = 700_000_000;

async function commission(f: LedgerFixture, batchId: bigint, shape: RunShape, base: number, maker = f.maker) {
  const run = buildRun(demoRunCodes("8612345", shape, base), shape);
  const receipt = await (
    await f.ledger
      .connect(maker)
      .commission(batchId, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness)
  ).wait();
  const event = receipt!.logs.map((l) => f.ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
  return { runId: Number(event!.args.runId), run };
}

/**
 * A ledger history that emits every event the contract has: onboarding, suspension, products, batches and
 * recalls, commissioning (with a code commissioned twice), shipments received in part, returned and passed on,
 * loose units, decommissioning, dispensing whole and split packs and undoing both, settling and reversing both,
 * settings and role changes, code prefixes and a product reassigned, a pause, and a rival maker's copy of genuine
 * codes in a run of its own product.
 */
export async function everyEventScenario(): Promise<Scenario> {
  const f = await deployLedger();
  const { ledger, admin, regulator, maker, otherMaker, distributor, pharmacy, otherPharmacy, insurer, outsider } = f;
  const base = (serialBase += 1_000_000);
  const { runId, run } = await commission(f, f.batchId, { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, base);
  const { runId: duplicateRunId } = await commission(
    f,
    f.batchId,
    { unitCount: 4, unitsPerCase: 0, casesPerPallet: 0 },
    base,
  );

  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  await ledger.connect(maker).registerBatch(1, `LOT-R-${base}`, now - 86_400, now + 400 * 86_400);
  const recalledBatchId = 2n;
  await ledger.connect(maker).recallBatch(recalledBatchId, "label misprint");
  await ledger.connect(regulator).liftRecall(recalledBatchId, "relabelled");

  // Both pallets shipped, one received, the other taken back by the maker.
  const pallets = [palletRef(runId, 0), palletRef(runId, 1)];
  const partialShipmentId = await ship(ledger, maker, distributor, pallets);
  await ledger.connect(distributor).receiveShipment(partialShipmentId, packRefs([pallets[0]!]));
  await ledger.connect(maker).returnToSender(partialShipmentId, packRefs([pallets[1]!]));

  // A case and a loose unit of another case on to the pharmacy; a unit of that other case decommissioned.
  const toPharmacy = [caseRef(runId, 0), unitRef(runId, 15)];
  const second = await ship(ledger, distributor, pharmacy, toPharmacy);
  await ledger.connect(pharmacy).receiveShipment(second, packRefs(toPharmacy));
  await ledger.connect(distributor).decommission(packRefs([unitRef(runId, 16)]), 1);
  // The pallet moves on without its cases: one went ahead to the pharmacy, the other was opened.
  const onward = await ship(ledger, distributor, otherPharmacy, [pallets[0]!]);
  await ledger.connect(otherPharmacy).receiveShipment(onward, packRefs([pallets[0]!]));

  const rx = ethers.id("prescription-1");
  await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 2)]), rx);
  await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 2)]));
  await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 3), 5, rx);
  await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 3), 3, ethers.ZeroHash);
  await ledger.connect(pharmacy).undoDispensePartial(unitRef(runId, 3), 2);
  await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 15)]), rx);

  const claimRef = ethers.id("claim-1");
  await settleWithConsent(ledger, insurer, pharmacy, claimRef, packRefs([unitRef(runId, 0), unitRef(runId, 1)]));
  await ledger
    .connect(insurer)
    .reverseSettlement(claimRef, pharmacy.address, packRefs([unitRef(runId, 1)]), "billing error");
  const splitClaimRef = ethers.id("claim-2");
  await settlePartialWithConsent(ledger, insurer, pharmacy, splitClaimRef, unitRef(runId, 3), 4);
  await settlePartialWithConsent(ledger, insurer, pharmacy, ethers.id("claim-3"), unitRef(runId, 3), 1);
  await ledger
    .connect(insurer)
    .reversePartialSettlement(ethers.id("claim-3"), pharmacy.address, unitRef(runId, 3), "duplicate");

  // A rival maker copies the first run's public code hashes into a run of its own product.
  await ledger.connect(otherMaker).registerProduct("8654321", "Ibuprofen 200mg", "H20000002", "tablet 10/box", 10);
  await ledger.connect(otherMaker).registerBatch(2, `LOT-C-${base}`, now - 86_400, now + 400 * 86_400);
  const { runId: foreignCopyRunId } = await commission(
    f,
    3n,
    { unitCount: 4, unitsPerCase: 0, casesPerPallet: 0 },
    base,
    otherMaker,
  );
  // A product registered in error, given to its rightful maker; a prefix taken back.
  await ledger.connect(regulator).assignCodePrefixes(otherMaker.address, ["CN:8659"]);
  await ledger.connect(otherMaker).registerProduct("8659999", "Misfiled", "H20000003", "tablet 10/box", 10);
  await ledger.connect(regulator).reassignProduct(3, maker.address, "registered in error");
  await ledger.connect(regulator).revokeCodePrefix("CN:8659");

  await ledger.connect(regulator).suspend(otherPharmacy.address, "inspection");
  await ledger.connect(regulator).reinstate(otherPharmacy.address);
  await ledger.connect(regulator).setReturnWindow(20);
  await ledger.connect(regulator).pause();
  await ledger.connect(regulator).unpause();
  await ledger.connect(admin).setMaxRunCodes(20_000);
  const regulatorRole = await ledger.REGULATOR_ROLE();
  await ledger.connect(admin).grantRole(regulatorRole, outsider.address);
  await ledger.connect(admin).revokeRole(regulatorRole, outsider.address);
  await ledger.connect(admin).beginDefaultAdminTransfer(outsider.address);

  const insurerId = await idOf(ledger, insurer);
  return {
    ...f,
    serialBase: base,
    runId,
    duplicateRunId,
    foreignCopyRunId,
    duplicatedCode: run.hashes[0]!,
    recalledBatchId,
    partialShipmentId,
    claimRef,
    claimId: await ledger.claimIdOf(insurerId, claimRef),
    splitClaimRef,
  };
}
