import { expect } from "chai";
import { ethers } from "hardhat";
import type { DrugLedger } from "../typechain-types";
import { seedDemo } from "../scripts/lib/demo";
import { DEFAULT_CODE_HASH_DOMAIN } from "../backend/codes/parse";
import { unitRef } from "../backend/codes/refs";

describe("demo data (npm start)", () => {
  it("loads a coherent demo world", async () => {
    const signers = await ethers.getSigners();
    const ledger = (await ethers.deployContract("DrugLedger", [0, signers[0]!.address])) as unknown as DrugLedger;
    const summary = await seedDemo(ledger, signers, DEFAULT_CODE_HASH_DOMAIN);
    const pharmacyId = (await ledger.participantOf(summary.participants.pharmacy)).id;
    const distributorId = (await ledger.participantOf(summary.participants.distributor)).id;
    expect((await ledger.custodyOf(unitRef(summary.runId, 150))).holderId).to.equal(pharmacyId);
    expect((await ledger.custodyOf(unitRef(summary.runId, 250))).holderId).to.equal(distributorId);
    expect((await ledger.dispensingOf(unitRef(summary.runId, 2))).dispensed).to.equal(true);
    // settlementOf names the settling insurer (0: not settled).
    const insurerId = (await ledger.participantOf(summary.participants.insurer)).id;
    expect(await ledger.settlementOf(unitRef(summary.runId, 0))).to.equal(insurerId);
    expect(await ledger.settlementOf(unitRef(summary.runId, 2))).to.equal(0);
  });
});
