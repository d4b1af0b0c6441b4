import { ethers } from "hardhat";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";
import { caseRef, deployLedger, idOf, packRefs, palletRef, ship, unitRef, type LedgerFixture } from "./ledger";

export interface Scenario extends LedgerFixture {
  /** The run commissioned first, and a small run repeating its first four unit codes. */
  runId: number;
  duplicateRunId: number;
  duplicatedCode: Buffer;
  recalledBatchId: bigint;
  partialShipmentId: bigint;
  claimRef: string;
  claimId: string;
  splitClaimRef: string;
}

let serialBase = 700_000_000;

async function commission(f: LedgerFixture, batchId: bigint, shape: RunShape, base: number) {
  const run = buildRun(demoRunCodes("8612345", shape, base), shape);
  const receipt = await (
    await f.ledger
      .connect(f.maker)
      .commission(batchId, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness)
  ).wait();
  const event = receipt!.logs.map((l) => f.ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
  return { runId: Number(event!.args.runId), run };
}

/**
 * A ledger history that emits every event the contract has: onboarding, suspension, products, batches and
 * recalls, commissioning (with a code commissioned twice), shipments received in part, returned and passed on,
 * loose units, decommissioning, dispensing whole and split packs and undoing both, settling and reversing both,
 * settings and role changes.
 */
export async function everyEventScenario(): Promise<Scenario> {
  const f = await deployLedger();
  const { ledger, admin, regulator, maker, distributor, pharmacy, otherPharmacy, insurer, outsider } = f;
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
  await ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs([unitRef(runId, 0), unitRef(runId, 1)]));
  await ledger.connect(insurer).reverseSettlement(claimRef, packRefs([unitRef(runId, 1)]), "billing error");
  const splitClaimRef = ethers.id("claim-2");
  await ledger.connect(insurer).settlePartial(splitClaimRef, pharmacy.address, unitRef(runId, 3), 4);
  await ledger.connect(insurer).settlePartial(ethers.id("claim-3"), pharmacy.address, unitRef(runId, 3), 1);
  await ledger.connect(insurer).reversePartialSettlement(ethers.id("claim-3"), unitRef(runId, 3), "duplicate");

  await ledger.connect(regulator).suspend(otherPharmacy.address, "inspection");
  await ledger.connect(regulator).reinstate(otherPharmacy.address);
  await ledger.connect(admin).setReturnWindow(20);
  const regulatorRole = await ledger.REGULATOR_ROLE();
  await ledger.connect(admin).grantRole(regulatorRole, outsider.address);
  await ledger.connect(admin).revokeRole(regulatorRole, outsider.address);
  await ledger.connect(admin).beginDefaultAdminTransfer(outsider.address);

  const insurerId = await idOf(ledger, insurer);
  return {
    ...f,
    runId,
    duplicateRunId,
    duplicatedCode: run.hashes[0]!,
    recalledBatchId,
    partialShipmentId,
    claimRef,
    claimId: await ledger.claimIdOf(insurerId, claimRef),
    splitClaimRef,
  };
}
