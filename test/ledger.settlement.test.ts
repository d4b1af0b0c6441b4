import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import {
  caseRef,
  commissionRun,
  DAY,
  deployLedger,
  packRefs,
  unitRef,
  idOf,
  shipAndReceive,
  dispensingOf,
} from "./helpers/ledger";

// ---------------------------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------------------------

const RX = ethers.id("prescription-0001");
const SECTION = 4096;
const TABLE_MASK = 8191n;

/** Off-chain twin of `claimIdOf`: keccak256(abi.encode(uint32 insurerId, bytes32 claimRef)). */
function claimIdFor(insurerId: bigint, claimRef: string): string {
  return ethers.keccak256("0x" + insurerId.toString(16).padStart(64, "0") + claimRef.slice(2));
}

/** The claim table place a claim id probes first in a section (its low 13 bits). */
const homePlace = (claimId: string): bigint => BigInt(claimId) & TABLE_MASK;

/** Finds `count` claim refs of `insurerId` whose claim ids have home place `place` (~8k hashes each). */
function claimRefsWithPlace(insurerId: bigint, place: bigint, count: number): string[] {
  const found: string[] = [];
  for (let i = 1n; found.length < count; i++) {
    const ref = ethers.toBeHex(i, 32);
    if (homePlace(claimIdFor(insurerId, ref)) === place) found.push(ref);
  }
  return found;
}

/**
 * Run of 40 units, 10 per case (cases 0-3, no pallets): cases 0 and 1 are delivered to `pharmacy`, case 2 to
 * `otherPharmacy`; case 3 stays with the maker.
 */
async function settlementFixture() {
  const f = await deployLedger();
  const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
    unitCount: 40,
    unitsPerCase: 10,
    casesPerPallet: 0,
  });
  await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(runId, 0), caseRef(runId, 1)]);
  await shipAndReceive(f.ledger, f.maker, f.otherPharmacy, [caseRef(runId, 2)]);
  const insurerId = await idOf(f.ledger, f.insurer);
  const otherInsurerId = await idOf(f.ledger, f.otherInsurer);
  return {
    ...f,
    runId,
    pharmacyId: await idOf(f.ledger, f.pharmacy),
    otherPharmacyId: await idOf(f.ledger, f.otherPharmacy),
    insurerId,
    otherInsurerId,
  };
}

/** Units of the 8,200-unit run used by the section tests: both sides of each 4,096-unit section boundary. */
const SECTION_UNITS = [0, 1, 15, 16, 17, 4094, 4095, 4096, 4097, 4111, 4112, 8190, 8191, 8192, 8199];

/**
 * A second, uncased run of 8,200 units (sections 0, 1 and 2 of 4,096 units each). The maker ships
 * SECTION_UNITS loose straight to `pharmacy`, which dispenses them.
 */
async function sectionsFixture() {
  const f = await settlementFixture();
  const { runId: bigRun } = await commissionRun(f.ledger, f.maker, f.batchId, {
    unitCount: 8200,
    unitsPerCase: 0,
    casesPerPallet: 0,
  });
  const units = SECTION_UNITS.map((i) => unitRef(bigRun, i));
  await shipAndReceive(f.ledger, f.maker, f.pharmacy, units);
  await f.ledger.connect(f.pharmacy).dispense(packRefs(units), RX);
  return { ...f, bigRun };
}

// ---------------------------------------------------------------------------------------------------------------

describe("Settlement", () => {
  describe("settle", () => {
    it("settles dispensed units under the insurer's claim and emits UnitsSettled", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId, pharmacyId } = await loadFixture(settlementFixture);
      const units = [unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 12)];
      await ledger.connect(pharmacy).dispense(packRefs(units), RX);
      const claimRef = ethers.id("claim-1");
      const claimId = await ledger.claimIdOf(insurerId, claimRef);
      expect(claimId).to.equal(claimIdFor(insurerId, claimRef));
      await expect(ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs(units)))
        .to.emit(ledger, "UnitsSettled")
        .withArgs(claimId, insurerId, pharmacyId, claimRef, packRefs(units));
      for (const u of units) {
        expect(await ledger.settlementOf(u)).to.equal(claimId);
        expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, false, 0n, 0n]);
      }
      expect(await ledger.settlementOf(unitRef(runId, 2))).to.equal(ethers.ZeroHash);
    });

    it("names the earlier claim on a second settlement (UnitAlreadySettled), by the same or another insurer", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 2)]), RX);
      await ledger.connect(insurer).settle(ethers.id("claim-1"), pharmacy.address, units);
      const claimId = claimIdFor(insurerId, ethers.id("claim-1"));
      await expect(ledger.connect(insurer).settle(ethers.id("claim-2"), pharmacy.address, units))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), claimId);
      // Same claim again is no exception either.
      await expect(ledger.connect(insurer).settle(ethers.id("claim-1"), pharmacy.address, units))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), claimId);
      // Another insurer, even with the same claim reference, with an unsettled unit first in the list.
      await expect(
        ledger
          .connect(otherInsurer)
          .settle(ethers.id("claim-1"), pharmacy.address, packRefs([unitRef(runId, 2), unitRef(runId, 1)])),
      )
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 1), claimId);
      // The whole call was rolled back.
      expect(await ledger.settlementOf(unitRef(runId, 2))).to.equal(ethers.ZeroHash);
    });

    it("refuses the same unit twice in one settlement (UnitAlreadySettled naming this claim)", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      const claimRef = ethers.id("claim-dup");
      await expect(
        ledger
          .connect(insurer)
          .settle(claimRef, pharmacy.address, packRefs([unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 0)])),
      )
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), claimIdFor(insurerId, claimRef));
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(ethers.ZeroHash);
    });

    it("refuses units that were not dispensed (UnitNotDispensed), also after an undo", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 0));
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses naming a pharmacy that did not dispense the unit (DispensedByAnotherPharmacy)", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, pharmacyId, otherPharmacyId } =
        await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 20)]), RX);
      await expect(
        ledger
          .connect(insurer)
          .settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 0), unitRef(runId, 20)])),
      )
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 20), otherPharmacyId);
      await expect(ledger.connect(insurer).settle(ethers.id("c"), otherPharmacy.address, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 0), pharmacyId);
    });

    it("checks each loose unit of a case on its own (DispensedByAnotherPharmacy within one case)", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, otherPharmacyId } = await loadFixture(settlementFixture);
      // Unit 5 leaves case 0 loose for the other pharmacy, which dispenses it.
      await shipAndReceive(ledger, pharmacy, otherPharmacy, [unitRef(runId, 5)]);
      await ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 5)]), RX);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 4), unitRef(runId, 6)]), RX);
      await expect(
        ledger
          .connect(insurer)
          .settle(
            ethers.id("c"),
            pharmacy.address,
            packRefs([unitRef(runId, 4), unitRef(runId, 5), unitRef(runId, 6)]),
          ),
      )
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 5), otherPharmacyId);
      await ledger
        .connect(insurer)
        .settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 4), unitRef(runId, 6)]));
      await ledger.connect(insurer).settle(ethers.id("c2"), otherPharmacy.address, packRefs([unitRef(runId, 5)]));
    });

    it("refuses split packs (UnitIsSplit)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 0), 5, RX);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 1), 24, RX);
      for (const u of [unitRef(runId, 0), unitRef(runId, 1)]) {
        await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([u])))
          .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
          .withArgs(u);
      }
      // A split pack partly settled in parts is still split.
      await ledger.connect(insurer).settlePartial(ethers.id("p"), pharmacy.address, unitRef(runId, 1), 10);
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(unitRef(runId, 1));
    });

    it("refuses a whole settlement of a fully settled split pack as UnitIsSplit, never naming an unrelated claim", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      // An unrelated claim that happens to sit at place 0 of section 0's claim table settles unit 2.
      const [unrelatedRef] = claimRefsWithPlace(insurerId, 0n, 1) as [string];
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 2)]), RX);
      await ledger.connect(insurer).settle(unrelatedRef, pharmacy.address, packRefs([unitRef(runId, 2)]));
      const u = unitRef(runId, 1);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      await ledger.connect(insurer).settlePartial(ethers.id("p"), pharmacy.address, u, 24);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      // A split pack's lane carries no claim place (field 0): reading it as one would name the unrelated claim.
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([u])))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(u);
    });

    it("refuses a zero claim reference (InvalidClaimRef)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await expect(
        ledger.connect(insurer).settle(ethers.ZeroHash, pharmacy.address, packRefs([unitRef(runId, 0)])),
      ).to.be.revertedWithCustomError(ledger, "InvalidClaimRef");
    });

    it("refuses a suspended insurer or pharmacy (Suspended) and non-insurers or non-pharmacies", async () => {
      const { ledger, regulator, pharmacy, distributor, insurer, runId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await ledger.connect(regulator).suspend(pharmacy.address, "inspection");
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, units))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(pharmacy.address);
      await ledger.connect(regulator).reinstate(pharmacy.address);
      await ledger.connect(regulator).suspend(insurer.address, "audit");
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, units))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(insurer.address);
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("c"), units, "x"))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(insurer.address);
      await ledger.connect(regulator).reinstate(insurer.address);
      await expect(ledger.connect(pharmacy).settle(ethers.id("c"), pharmacy.address, units))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(pharmacy.address, await ledger.INSURER_ROLE());
      await expect(ledger.connect(insurer).settle(ethers.id("c"), distributor.address, units))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(distributor.address, await ledger.PHARMACY_ROLE());
      await ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, units);
    });

    it("refuses case refs (NotAUnit) and unknown units (UnknownItem)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([caseRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
      await expect(ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, packRefs([unitRef(runId, 40)])))
        .to.be.revertedWithCustomError(ledger, "UnknownItem")
        .withArgs(unitRef(runId, 40));
      await expect(ledger.settlementOf(caseRef(runId, 0)))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
    });

    it("settles units of two runs in one claim", async () => {
      const { ledger, maker, pharmacy, insurer, batchId, runId, insurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const { runId: run2 } = await commissionRun(ledger, maker, batchId, {
        unitCount: 20,
        unitsPerCase: 10,
        casesPerPallet: 0,
      });
      await shipAndReceive(ledger, maker, pharmacy, [caseRef(run2, 1)]);
      const units = [unitRef(runId, 0), unitRef(run2, 10), unitRef(runId, 1), unitRef(run2, 19), unitRef(runId, 17)];
      await ledger.connect(pharmacy).dispense(packRefs(units), RX);
      const claimRef = ethers.id("two-runs");
      const claimId = claimIdFor(insurerId, claimRef);
      await expect(ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs(units)))
        .to.emit(ledger, "UnitsSettled")
        .withArgs(claimId, insurerId, pharmacyId, claimRef, packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(claimId);
      expect(await ledger.settlementOf(unitRef(run2, 11))).to.equal(ethers.ZeroHash);
      // A second claim on the other run's units names the first.
      await expect(ledger.connect(insurer).settle(ethers.id("again"), pharmacy.address, packRefs([unitRef(run2, 19)])))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(run2, 19), claimId);
    });
  });

  describe("4,096-unit sections", () => {
    it("settles one claim across three sections and reports it for every unit", async () => {
      const { ledger, pharmacy, insurer, bigRun, insurerId } = await loadFixture(sectionsFixture);
      const units = SECTION_UNITS.map((i) => unitRef(bigRun, i));
      const claimRef = ethers.id("big-claim");
      const claimId = claimIdFor(insurerId, claimRef);
      await ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(claimId);
      for (const u of units) {
        await expect(ledger.connect(insurer).settle(ethers.id("second"), pharmacy.address, packRefs([u])))
          .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
          .withArgs(u, claimId);
      }
    });

    it("keeps different claims apart within and across sections", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, bigRun, insurerId, otherInsurerId } =
        await loadFixture(sectionsFixture);
      const u = (i: number) => unitRef(bigRun, i);
      // Claims interleave within a status word (units 0-15) and across the section boundary at 4,096.
      const plan: [HardhatEthersSigner, bigint, string, number[]][] = [
        [insurer, insurerId, ethers.id("A"), [0, 4095, 4097]],
        [otherInsurer, otherInsurerId, ethers.id("B"), [1, 4096, 8192]],
        [insurer, insurerId, ethers.id("C"), [15, 16, 4111, 8199]],
        [otherInsurer, otherInsurerId, ethers.id("A"), [17, 4094, 4112, 8190, 8191]],
      ];
      for (const [who, , claimRef, indices] of plan) {
        await ledger.connect(who).settle(claimRef, pharmacy.address, packRefs(indices.map(u)));
      }
      for (const [, id, claimRef, indices] of plan) {
        const claimId = claimIdFor(id, claimRef);
        for (const i of indices) {
          expect(await ledger.settlementOf(u(i))).to.equal(claimId, `unit ${i}`);
          await expect(ledger.connect(insurer).settle(ethers.id("late"), pharmacy.address, packRefs([u(i)])))
            .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
            .withArgs(u(i), claimId);
        }
      }
      // Both insurers' "A" claims are different claims.
      expect(claimIdFor(insurerId, ethers.id("A"))).to.not.equal(claimIdFor(otherInsurerId, ethers.id("A")));
      // The fixture's units span sections 0, 1 and 2.
      expect(new Set(SECTION_UNITS.map((i) => Math.floor(i / SECTION)))).to.deep.equal(new Set([0, 1, 2]));
    });

    it("names each claim correctly when their claim ids collide in the section's table", async () => {
      const { ledger, pharmacy, insurer, bigRun, insurerId } = await loadFixture(sectionsFixture);
      // Three claims probing the same first place (one of them at place 0), each settling units of section 0 and 1.
      const [first, second, third] = claimRefsWithPlace(insurerId, 0n, 3) as [string, string, string];
      const claims: [string, number[]][] = [
        [first, [0, 4096]],
        [second, [1, 4097]],
        [third, [15, 8191]],
      ];
      for (const [claimRef, indices] of claims) {
        await ledger
          .connect(insurer)
          .settle(claimRef, pharmacy.address, packRefs(indices.map((i) => unitRef(bigRun, i))));
      }
      for (const [claimRef, indices] of claims) {
        const claimId = claimIdFor(insurerId, claimRef);
        expect(homePlace(claimId)).to.equal(0n);
        for (const i of indices) {
          expect(await ledger.settlementOf(unitRef(bigRun, i))).to.equal(claimId);
          await expect(ledger.connect(insurer).settle(ethers.id("x"), pharmacy.address, packRefs([unitRef(bigRun, i)])))
            .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
            .withArgs(unitRef(bigRun, i), claimId);
        }
      }
      // Reversal recognises the right claim among the colliding ones.
      await expect(ledger.connect(insurer).reverseSettlement(second, packRefs([unitRef(bigRun, 0)]), "wrong claim"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(unitRef(bigRun, 0), claimIdFor(insurerId, second));
      await ledger.connect(insurer).reverseSettlement(second, packRefs([unitRef(bigRun, 1)]), "duplicate");
      expect(await ledger.settlementOf(unitRef(bigRun, 1))).to.equal(ethers.ZeroHash);
      expect(await ledger.settlementOf(unitRef(bigRun, 0))).to.equal(claimIdFor(insurerId, first));
    });

    it("settles units across two runs and sections in one call", async () => {
      const { ledger, pharmacy, insurer, runId, bigRun, insurerId } = await loadFixture(sectionsFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 3)]), RX);
      const units = [unitRef(bigRun, 8192), unitRef(runId, 3), unitRef(bigRun, 0), unitRef(bigRun, 4096)];
      const claimRef = ethers.id("mixed");
      await ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(claimIdFor(insurerId, claimRef));
      expect(await ledger.settlementOf(unitRef(bigRun, 1))).to.equal(ethers.ZeroHash);
    });
  });

  describe("reverseSettlement", () => {
    it("lets the settling insurer reverse; the unit stays dispensed, is settleable again and can no longer be undone", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId } =
        await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      const claimRef = ethers.id("claim-1");
      const claimId = claimIdFor(insurerId, claimRef);
      await ledger.connect(insurer).settle(claimRef, pharmacy.address, units);
      await expect(ledger.connect(insurer).reverseSettlement(claimRef, units, "billing error"))
        .to.emit(ledger, "SettlementReversed")
        .withArgs(claimId, insurerId, units, "billing error");
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(ethers.ZeroHash);
      expect(await dispensingOf(ledger, unitRef(runId, 0))).to.deep.equal([true, false, false, 0n, 0n]);
      // The return window is closed for good, even on the day of dispensing.
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(unitRef(runId, 0));
      // Settleable again under a new claim, by another insurer too.
      const newRef = ethers.id("claim-new");
      await ledger.connect(otherInsurer).settle(newRef, pharmacy.address, packRefs([unitRef(runId, 0)]));
      await ledger.connect(insurer).settle(newRef, pharmacy.address, packRefs([unitRef(runId, 1)]));
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(claimIdFor(otherInsurerId, newRef));
      expect(await ledger.settlementOf(unitRef(runId, 1))).to.equal(claimIdFor(insurerId, newRef));
      await expect(ledger.connect(insurer).settle(claimRef, pharmacy.address, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), claimIdFor(otherInsurerId, newRef));
    });

    it("lets a reversed unit be settled again under the very same claim", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, units);
      await ledger.connect(insurer).reverseSettlement(ethers.id("c"), units, "oops");
      await ledger.connect(insurer).settle(ethers.id("c"), pharmacy.address, units);
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(claimIdFor(insurerId, ethers.id("c")));
    });

    it("refuses another insurer, a wrong claim reference or an unsettled unit (NotSettledUnderClaim)", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId } =
        await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      const claimRef = ethers.id("claim-1");
      await ledger.connect(insurer).settle(claimRef, pharmacy.address, units);
      await expect(ledger.connect(otherInsurer).reverseSettlement(claimRef, units, "not mine"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(unitRef(runId, 0), claimIdFor(otherInsurerId, claimRef));
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("claim-2"), units, "wrong ref"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(unitRef(runId, 0), claimIdFor(insurerId, ethers.id("claim-2")));
      await expect(
        ledger.connect(insurer).reverseSettlement(claimRef, packRefs([unitRef(runId, 0), unitRef(runId, 1)]), "x"),
      )
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(unitRef(runId, 1), claimIdFor(insurerId, claimRef));
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(claimIdFor(insurerId, claimRef));
      await expect(ledger.connect(pharmacy).reverseSettlement(claimRef, units, "x"))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(pharmacy.address, await ledger.INSURER_ROLE());
    });
  });

  describe("split packs", () => {
    it("settles parts up to what was dispensed and flags the pack settled at 24 of 24", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      const ref1 = ethers.id("part-1");
      await expect(ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 6))
        .to.emit(ledger, "UnitSettledPartially")
        .withArgs(claimIdFor(insurerId, ref1), insurerId, pharmacyId, ref1, u, 6, 6);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 10n, 6n]);
      await expect(ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 5))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 5, 4);
      await expect(ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 0))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 0, 4);
      await ledger.connect(pharmacy).dispensePartial(u, 14, RX);
      const ref2 = ethers.id("part-2");
      await expect(ledger.connect(otherInsurer).settlePartial(ref2, pharmacy.address, u, 18))
        .to.emit(ledger, "UnitSettledPartially")
        .withArgs(claimIdFor(otherInsurerId, ref2), otherInsurerId, pharmacyId, ref2, u, 18, 24);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      // A split pack is never reported under one claim.
      expect(await ledger.settlementOf(u)).to.equal(ethers.ZeroHash);
      await expect(ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 1))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 1, 0);
    });

    it("refuses packs not dispensed in parts, the wrong pharmacy and a zero claim reference", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, pharmacyId } = await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await expect(ledger.connect(insurer).settlePartial(ethers.id("p"), pharmacy.address, u, 1))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(u);
      await ledger.connect(pharmacy).dispensePartial(u, 3, RX);
      await expect(ledger.connect(insurer).settlePartial(ethers.id("p"), otherPharmacy.address, u, 1))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(u, pharmacyId);
      await expect(
        ledger.connect(insurer).settlePartial(ethers.ZeroHash, pharmacy.address, u, 1),
      ).to.be.revertedWithCustomError(ledger, "InvalidClaimRef");
      await expect(ledger.connect(insurer).settlePartial(ethers.id("p"), pharmacy.address, caseRef(runId, 0), 1))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
    });

    it("reverses everything an insurer settled of a pack under one claim", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId } =
        await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      const ref1 = ethers.id("part-1");
      const ref2 = ethers.id("part-2");
      await ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 4);
      await ledger.connect(insurer).settlePartial(ref1, pharmacy.address, u, 2);
      await ledger.connect(otherInsurer).settlePartial(ref2, pharmacy.address, u, 18);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      await expect(ledger.connect(otherInsurer).reversePartialSettlement(ref1, u, "not mine"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(otherInsurerId, ref1));
      await expect(ledger.connect(insurer).reversePartialSettlement(ethers.id("nope"), u, "wrong ref"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(insurerId, ethers.id("nope")));
      await expect(ledger.connect(insurer).reversePartialSettlement(ref1, u, "duplicate claim"))
        .to.emit(ledger, "PartialSettlementReversed")
        .withArgs(claimIdFor(insurerId, ref1), insurerId, u, 6, "duplicate claim");
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, true, 24n, 18n]);
      await expect(ledger.connect(insurer).reversePartialSettlement(ref1, u, "again"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(insurerId, ref1));
      // The freed doses can be settled again.
      await ledger.connect(insurer).settlePartial(ethers.id("part-3"), pharmacy.address, u, 6);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
    });

    it("lets the pharmacy undo only unsettled parts after a partial reversal", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      await ledger.connect(insurer).settlePartial(ethers.id("p"), pharmacy.address, u, 10);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 1))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 1, 0);
      await ledger.connect(insurer).reversePartialSettlement(ethers.id("p"), u, "reversed");
      await time.increase(DAY);
      await ledger.connect(pharmacy).undoDispensePartial(u, 10);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, false, 0n, 0n]);
    });
  });
});

describe("Settlement: a full claim table fails fast", () => {
  it("refuses with SectionClaimTableFull after 256 occupied places instead of running out of gas", async () => {
    const f = await loadFixture(settlementFixture);
    const u0 = unitRef(f.runId, 0);
    const u1 = unitRef(f.runId, 1);
    await f.ledger.connect(f.pharmacy).dispense(packRefs([u0, u1]), RX);
    // Locate the claim table's storage: settle once and find the mapping slot holding that claim id.
    const probeRef = ethers.id("locate");
    await f.ledger.connect(f.insurer).settle(probeRef, f.pharmacy.address, packRefs([u0]));
    const located = claimIdFor(f.insurerId, probeRef);
    const address = await f.ledger.getAddress();
    const tableKey = (place: bigint) => (BigInt(f.runId) << 40n) | place;
    const slotOf = (mappingSlot: bigint, place: bigint) =>
      ethers.keccak256(
        ethers.AbiCoder.defaultAbiCoder().encode(["uint256", "uint256"], [tableKey(place), mappingSlot]),
      );
    let mappingSlot = -1n;
    for (let s = 0n; s < 256n && mappingSlot < 0n; s++) {
      if ((await ethers.provider.getStorage(address, slotOf(s, homePlace(located)))) === located) mappingSlot = s;
    }
    expect(mappingSlot).to.be.greaterThan(-1n);
    // Occupy the 256 places a new claim would probe, as thousands of settle-and-reverse cycles would.
    const victimRef = ethers.id("victim");
    const home = homePlace(claimIdFor(f.insurerId, victimRef));
    for (let k = 0n; k < 256n; k++) {
      const place = (home + k) & TABLE_MASK;
      await ethers.provider.send("hardhat_setStorageAt", [
        address,
        slotOf(mappingSlot, place),
        ethers.id(`filler-${k}`),
      ]);
    }
    await expect(f.ledger.connect(f.insurer).settle(victimRef, f.pharmacy.address, packRefs([u1])))
      .to.be.revertedWithCustomError(f.ledger, "SectionClaimTableFull")
      .withArgs(f.runId, 0);
  });
});
