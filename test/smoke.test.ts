import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import { commissionRun, deployLedger, packRefs, unitRef, caseRef } from "./helpers/ledger";

describe("DrugLedger end to end", () => {
  it("commissions, ships, receives, dispenses and settles once", async () => {
    const f = await loadFixture(deployLedger);
    const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
      unitCount: 20,
      unitsPerCase: 10,
      casesPerPallet: 0,
    });
    await f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([caseRef(runId, 0)]));
    await f.ledger.connect(f.pharmacy).receiveShipment(1, packRefs([caseRef(runId, 0)]));
    const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
    await f.ledger.connect(f.pharmacy).dispense(units, ethers.ZeroHash);
    await f.ledger.connect(f.insurer).settle(ethers.id("claim-1"), f.pharmacy.address, units);
    const insurerId = (await f.ledger.participantOf(f.insurer.address)).id;
    const claimId = await f.ledger.claimIdOf(insurerId, ethers.id("claim-1"));
    await expect(f.ledger.connect(f.otherInsurer).settle(ethers.id("claim-2"), f.pharmacy.address, units))
      .to.be.revertedWithCustomError(f.ledger, "UnitAlreadySettled")
      .withArgs(unitRef(runId, 0), claimId);
  });
});
