import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import { commissionRun, deployLedger, packRefs, unitRef, caseRef, settleWithConsent } from "./helpers/ledger";

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
    await settleWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("claim-1"), units);
    const insurerId = (await f.ledger.participantOf(f.insurer.address)).id;
    expect(await f.ledger.settlementOf(unitRef(runId, 0))).to.equal(insurerId);
    // Even with the pharmacy's consent (billing twice), a second insurer cannot settle the same packs.
    await expect(settleWithConsent(f.ledger, f.otherInsurer, f.pharmacy, ethers.id("claim-2"), units))
      .to.be.revertedWithCustomError(f.ledger, "UnitAlreadySettled")
      .withArgs(unitRef(runId, 0), insurerId);
  });
});
