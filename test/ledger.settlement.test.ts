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
  settleWithConsent as settle,
  settlePartialWithConsent as settlePartial,
  consentOf,
} from "./helpers/ledger";

// ---------------------------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------------------------

const RX = ethers.id("prescription-0001");
const SECTION = 4096;

/** Off-chain twin of `claimIdOf`: keccak256(abi.encode(uint32 insurerId, bytes32 claimRef)). */
function claimIdFor(insurerId: bigint, claimRef: string): string {
  return ethers.keccak256("0x" + insurerId.toString(16).padStart(64, "0") + claimRef.slice(2));
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

/** Units of the 8,200-unit run used by the section tests: both sides of each 4,096-unit boundary and status word. */
const SECTION_UNITS = [0, 1, 15, 16, 17, 4094, 4095, 4096, 4097, 4111, 4112, 8190, 8191, 8192, 8199];

/**
 * A second, uncased run of 8,200 units (three 4,096-unit sections, where the previous contracts kept their claim
 * tables). The maker ships SECTION_UNITS loose straight to `pharmacy`, which dispenses them.
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
    it("settles dispensed units under the insurer's claim, with the pharmacy's consent, and emits UnitsSettled", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId, pharmacyId } = await loadFixture(settlementFixture);
      const units = [unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 12)];
      await ledger.connect(pharmacy).dispense(packRefs(units), RX);
      const claimRef = ethers.id("claim-1");
      const claimId = await ledger.claimIdOf(insurerId, claimRef);
      expect(claimId).to.equal(claimIdFor(insurerId, claimRef));
      await expect(settle(ledger, insurer, pharmacy, claimRef, packRefs(units)))
        .to.emit(ledger, "UnitsSettled")
        .withArgs(claimId, insurerId, pharmacyId, claimRef, packRefs(units));
      for (const u of units) {
        expect(await ledger.settlementOf(u)).to.equal(insurerId);
        expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, false, 0n, 0n]);
      }
      expect(await ledger.settlementOf(unitRef(runId, 2))).to.equal(0);
    });

    it("names the earlier insurer on a second settlement (UnitAlreadySettled), by the same or another insurer", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 2)]), RX);
      await settle(ledger, insurer, pharmacy, ethers.id("claim-1"), units);
      await expect(settle(ledger, insurer, pharmacy, ethers.id("claim-2"), units))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), insurerId);
      // Same claim again is no exception either.
      await expect(settle(ledger, insurer, pharmacy, ethers.id("claim-1"), units))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), insurerId);
      // Another insurer the pharmacy billed too, even with the same claim reference, with an unsettled unit first.
      await expect(
        settle(ledger, otherInsurer, pharmacy, ethers.id("claim-1"), packRefs([unitRef(runId, 2), unitRef(runId, 1)])),
      )
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 1), insurerId);
      // The whole call was rolled back.
      expect(await ledger.settlementOf(unitRef(runId, 2))).to.equal(0);
    });

    it("refuses the same unit twice in one settlement (UnitAlreadySettled naming this insurer)", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      const claimRef = ethers.id("claim-dup");
      await expect(
        settle(
          ledger,
          insurer,
          pharmacy,
          claimRef,
          packRefs([unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 0)]),
        ),
      )
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), insurerId);
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(0);
    });

    it("refuses units that were not dispensed (UnitNotDispensed), also after an undo", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 0));
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses naming a pharmacy that did not dispense the unit (DispensedByAnotherPharmacy)", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, pharmacyId, otherPharmacyId } =
        await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 20)]), RX);
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 0), unitRef(runId, 20)])))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 20), otherPharmacyId);
      // Even with that pharmacy's own consent: it did not dispense the unit.
      await expect(settle(ledger, insurer, otherPharmacy, ethers.id("c"), packRefs([unitRef(runId, 0)])))
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
        settle(
          ledger,
          insurer,
          pharmacy,
          ethers.id("c"),
          packRefs([unitRef(runId, 4), unitRef(runId, 5), unitRef(runId, 6)]),
        ),
      )
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 5), otherPharmacyId);
      await settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 4), unitRef(runId, 6)]));
      await settle(ledger, insurer, otherPharmacy, ethers.id("c2"), packRefs([unitRef(runId, 5)]));
    });

    it("refuses split packs (UnitIsSplit)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 0), 5, RX);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 1), 24, RX);
      for (const u of [unitRef(runId, 0), unitRef(runId, 1)]) {
        await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([u])))
          .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
          .withArgs(u);
      }
      // A split pack partly settled in parts is still split.
      await settlePartial(ledger, insurer, pharmacy, ethers.id("p"), unitRef(runId, 1), 10);
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(unitRef(runId, 1));
    });

    it("refuses a whole settlement of a fully settled split pack as UnitIsSplit, never naming an insurer", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      // A whole pack settled by the insurer beside it, in the same status word.
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 2)]), RX);
      await settle(ledger, insurer, pharmacy, ethers.id("whole"), packRefs([unitRef(runId, 2)]));
      const u = unitRef(runId, 1);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      await settlePartial(ledger, insurer, pharmacy, ethers.id("p"), u, 24);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      // A split pack's lane field is no insurer index: reading it as one would name a wrong insurer.
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([u])))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(u);
      expect(await ledger.settlementOf(u)).to.equal(0);
    });

    it("refuses a zero claim reference (InvalidClaimRef)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await expect(
        settle(ledger, insurer, pharmacy, ethers.ZeroHash, packRefs([unitRef(runId, 0)])),
      ).to.be.revertedWithCustomError(ledger, "InvalidClaimRef");
    });

    it("refuses a suspended insurer or pharmacy (Suspended) and non-insurers or non-pharmacies", async () => {
      const { ledger, regulator, pharmacy, distributor, insurer, runId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await ledger.connect(regulator).suspend(pharmacy.address, "inspection");
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), units))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(pharmacy.address);
      await ledger.connect(regulator).reinstate(pharmacy.address);
      await ledger.connect(regulator).suspend(insurer.address, "audit");
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), units))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(insurer.address);
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("c"), pharmacy.address, units, "x"))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(insurer.address);
      await ledger.connect(regulator).reinstate(insurer.address);
      await expect(settle(ledger, pharmacy, pharmacy, ethers.id("c"), units))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(pharmacy.address, await ledger.INSURER_ROLE());
      await expect(settle(ledger, insurer, distributor, ethers.id("c"), units))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(distributor.address, await ledger.PHARMACY_ROLE());
      await settle(ledger, insurer, pharmacy, ethers.id("c"), units);
    });

    it("refuses case refs (NotAUnit) and unknown units (UnknownItem)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([caseRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
      await expect(settle(ledger, insurer, pharmacy, ethers.id("c"), packRefs([unitRef(runId, 40)])))
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
      await expect(settle(ledger, insurer, pharmacy, claimRef, packRefs(units)))
        .to.emit(ledger, "UnitsSettled")
        .withArgs(claimId, insurerId, pharmacyId, claimRef, packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(insurerId);
      expect(await ledger.settlementOf(unitRef(run2, 11))).to.equal(0);
      // A second claim on the other run's units names the insurer of the first.
      await expect(settle(ledger, insurer, pharmacy, ethers.id("again"), packRefs([unitRef(run2, 19)])))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(run2, 19), insurerId);
    });
  });

  describe("settleClaims", () => {
    it("settles several claims of two pharmacies, each with its own consent, emitting each claim's UnitsSettled", async () => {
      const f = await loadFixture(settlementFixture);
      const { ledger, pharmacy, otherPharmacy, insurer, runId, insurerId, pharmacyId, otherPharmacyId } = f;
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 12)]), RX);
      await ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 20)]), RX);
      const shapes = [
        {
          claimRef: ethers.id("day-1"),
          who: pharmacy,
          id: pharmacyId,
          units: packRefs([unitRef(runId, 0), unitRef(runId, 1)]),
        },
        { claimRef: ethers.id("day-2"), who: pharmacy, id: pharmacyId, units: packRefs([unitRef(runId, 12)]) },
        {
          claimRef: ethers.id("day-3"),
          who: otherPharmacy,
          id: otherPharmacyId,
          units: packRefs([unitRef(runId, 20)]),
        },
      ];
      const claims = await Promise.all(
        shapes.map(async (c) => ({
          claimRef: c.claimRef,
          pharmacy: c.who.address,
          units: c.units,
          consent: await consentOf(ledger, c.who, insurer.address, c.claimRef, c.units),
        })),
      );
      let tx = expect(ledger.connect(insurer).settleClaims(claims));
      for (const c of shapes)
        tx = tx.to
          .emit(ledger, "UnitsSettled")
          .withArgs(claimIdFor(insurerId, c.claimRef), insurerId, c.id, c.claimRef, c.units);
      await tx;
      for (const i of [0, 1, 12, 20]) expect(await ledger.settlementOf(unitRef(runId, i))).to.equal(insurerId);
    });

    it("reverts as a whole on any failing claim (a consent of the wrong pharmacy, a unit settled already)", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      const good = packRefs([unitRef(runId, 0)]);
      const claimOf = async (ref: string, units: string, signer = pharmacy) => ({
        claimRef: ethers.id(ref),
        pharmacy: pharmacy.address,
        units,
        consent: await consentOf(ledger, signer, insurer.address, ethers.id(ref), units),
      });
      const forged = await claimOf("b", packRefs([unitRef(runId, 1)]), otherPharmacy);
      await expect(ledger.connect(insurer).settleClaims([await claimOf("a", good), forged]))
        .to.be.revertedWithCustomError(ledger, "InvalidConsent")
        .withArgs(pharmacy.address);
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(0);
      await settle(ledger, insurer, pharmacy, ethers.id("earlier"), good);
      await expect(
        ledger
          .connect(insurer)
          .settleClaims([await claimOf("c", packRefs([unitRef(runId, 1)])), await claimOf("a", good)]),
      )
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), insurerId);
      expect(await ledger.settlementOf(unitRef(runId, 1))).to.equal(0);
    });

    it("refuses a caller that is not an active insurer, and a zero claim reference", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      const units = packRefs([unitRef(runId, 0)]);
      const claim = { claimRef: ethers.ZeroHash, pharmacy: pharmacy.address, units, consent: "0x" };
      await expect(ledger.connect(pharmacy).settleClaims([claim])).to.be.revertedWithCustomError(
        ledger,
        "AccessControlUnauthorizedAccount",
      );
      await expect(ledger.connect(insurer).settleClaims([claim])).to.be.revertedWithCustomError(
        ledger,
        "InvalidClaimRef",
      );
      await expect(ledger.connect(insurer).settleClaims([])).to.not.be.reverted;
    });
  });

  describe("large runs (no per-section state)", () => {
    it("settles one claim across three 4,096-unit sections and reports its insurer for every unit", async () => {
      const { ledger, pharmacy, insurer, bigRun, insurerId } = await loadFixture(sectionsFixture);
      const units = SECTION_UNITS.map((i) => unitRef(bigRun, i));
      await settle(ledger, insurer, pharmacy, ethers.id("big-claim"), packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(insurerId);
      for (const u of units) {
        await expect(settle(ledger, insurer, pharmacy, ethers.id("second"), packRefs([u])))
          .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
          .withArgs(u, insurerId);
      }
    });

    it("keeps two insurers' settlements apart within a status word and across sections", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, bigRun, insurerId, otherInsurerId } =
        await loadFixture(sectionsFixture);
      const u = (i: number) => unitRef(bigRun, i);
      // Insurers interleave within a status word (units 0-15) and across the section boundary at 4,096.
      const plan: [HardhatEthersSigner, bigint, string, number[]][] = [
        [insurer, insurerId, ethers.id("A"), [0, 4095, 4097]],
        [otherInsurer, otherInsurerId, ethers.id("B"), [1, 4096, 8192]],
        [insurer, insurerId, ethers.id("C"), [15, 16, 4111, 8199]],
        [otherInsurer, otherInsurerId, ethers.id("A"), [17, 4094, 4112, 8190, 8191]],
      ];
      for (const [who, , claimRef, indices] of plan) {
        await settle(ledger, who, pharmacy, claimRef, packRefs(indices.map(u)));
      }
      for (const [, id, , indices] of plan) {
        for (const i of indices) {
          expect(await ledger.settlementOf(u(i))).to.equal(id, `unit ${i}`);
          await expect(settle(ledger, insurer, pharmacy, ethers.id("late"), packRefs([u(i)])))
            .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
            .withArgs(u(i), id);
        }
      }
      // Both insurers' "A" claims are different claims.
      expect(claimIdFor(insurerId, ethers.id("A"))).to.not.equal(claimIdFor(otherInsurerId, ethers.id("A")));
      // The fixture's units span sections 0, 1 and 2.
      expect(new Set(SECTION_UNITS.map((i) => Math.floor(i / SECTION)))).to.deep.equal(new Set([0, 1, 2]));
      // Each insurer reverses only its own units, whatever claim reference it names.
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("B"), pharmacy.address, packRefs([u(1)]), "x"))
        .to.be.revertedWithCustomError(ledger, "NotSettledByInsurer")
        .withArgs(u(1), otherInsurerId);
      await ledger.connect(otherInsurer).reverseSettlement(ethers.id("B"), pharmacy.address, packRefs([u(1)]), "dup");
      expect(await ledger.settlementOf(u(1))).to.equal(0);
      expect(await ledger.settlementOf(u(0))).to.equal(insurerId);
      expect(await ledger.settlementOf(u(15))).to.equal(insurerId);
    });

    it("settles units across two runs and sections in one call", async () => {
      const { ledger, pharmacy, insurer, runId, bigRun, insurerId } = await loadFixture(sectionsFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 3)]), RX);
      const units = [unitRef(bigRun, 8192), unitRef(runId, 3), unitRef(bigRun, 0), unitRef(bigRun, 4096)];
      await settle(ledger, insurer, pharmacy, ethers.id("mixed"), packRefs(units));
      for (const u of units) expect(await ledger.settlementOf(u)).to.equal(insurerId);
      expect(await ledger.settlementOf(unitRef(bigRun, 1))).to.equal(0);
    });
  });

  describe("reverseSettlement", () => {
    it("lets the settling insurer reverse; the unit stays dispensed, is settleable again and can no longer be undone", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      const claimRef = ethers.id("claim-1");
      const claimId = claimIdFor(insurerId, claimRef);
      await settle(ledger, insurer, pharmacy, claimRef, units);
      await expect(ledger.connect(insurer).reverseSettlement(claimRef, pharmacy.address, units, "billing error"))
        .to.emit(ledger, "SettlementReversed")
        .withArgs(claimId, insurerId, pharmacyId, claimRef, units, "billing error");
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(0);
      expect(await dispensingOf(ledger, unitRef(runId, 0))).to.deep.equal([true, false, false, 0n, 0n]);
      // The return window is closed for good, even on the day of dispensing.
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(unitRef(runId, 0));
      // Settleable again under a new claim, by another insurer too (with the pharmacy's consent).
      const newRef = ethers.id("claim-new");
      await settle(ledger, otherInsurer, pharmacy, newRef, packRefs([unitRef(runId, 0)]));
      await settle(ledger, insurer, pharmacy, newRef, packRefs([unitRef(runId, 1)]));
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(otherInsurerId);
      expect(await ledger.settlementOf(unitRef(runId, 1))).to.equal(insurerId);
      await expect(settle(ledger, insurer, pharmacy, claimRef, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadySettled")
        .withArgs(unitRef(runId, 0), otherInsurerId);
    });

    it("lets a reversed unit be settled again under the very same claim", async () => {
      const { ledger, pharmacy, insurer, runId, insurerId } = await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await settle(ledger, insurer, pharmacy, ethers.id("c"), units);
      await ledger.connect(insurer).reverseSettlement(ethers.id("c"), pharmacy.address, units, "oops");
      await settle(ledger, insurer, pharmacy, ethers.id("c"), units);
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(insurerId);
    });

    it("refuses another insurer or an unsettled unit (NotSettledByInsurer), and the wrong pharmacy", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, otherInsurer, runId, insurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      const claimRef = ethers.id("claim-1");
      await settle(ledger, insurer, pharmacy, claimRef, units);
      await expect(ledger.connect(otherInsurer).reverseSettlement(claimRef, pharmacy.address, units, "not mine"))
        .to.be.revertedWithCustomError(ledger, "NotSettledByInsurer")
        .withArgs(unitRef(runId, 0), insurerId);
      await expect(
        ledger
          .connect(insurer)
          .reverseSettlement(claimRef, pharmacy.address, packRefs([unitRef(runId, 0), unitRef(runId, 1)]), "x"),
      )
        .to.be.revertedWithCustomError(ledger, "NotSettledByInsurer")
        .withArgs(unitRef(runId, 1), 0);
      await expect(ledger.connect(insurer).reverseSettlement(claimRef, otherPharmacy.address, units, "x"))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(unitRef(runId, 0), pharmacyId);
      expect(await ledger.settlementOf(unitRef(runId, 0))).to.equal(insurerId);
      await expect(ledger.connect(pharmacy).reverseSettlement(claimRef, pharmacy.address, units, "x"))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(pharmacy.address, await ledger.INSURER_ROLE());
      // The claim reference is for the record: the ledger checks the insurer, so another reference reverses too.
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("claim-2"), pharmacy.address, units, "ref"))
        .to.emit(ledger, "SettlementReversed")
        .withArgs(
          claimIdFor(insurerId, ethers.id("claim-2")),
          insurerId,
          pharmacyId,
          ethers.id("claim-2"),
          units,
          "ref",
        );
    });

    it("refuses reversing a split pack (UnitIsSplit)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      await settlePartial(ledger, insurer, pharmacy, ethers.id("p"), u, 24);
      await expect(ledger.connect(insurer).reverseSettlement(ethers.id("p"), pharmacy.address, packRefs([u]), "x"))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(u);
    });
  });

  describe("split packs", () => {
    it("settles parts up to what was dispensed and flags the pack settled at 24 of 24", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      const ref1 = ethers.id("part-1");
      await expect(settlePartial(ledger, insurer, pharmacy, ref1, u, 6))
        .to.emit(ledger, "UnitSettledPartially")
        .withArgs(claimIdFor(insurerId, ref1), insurerId, pharmacyId, ref1, u, 6, 6);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 10n, 6n]);
      await expect(settlePartial(ledger, insurer, pharmacy, ref1, u, 5))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 5, 4);
      await expect(settlePartial(ledger, insurer, pharmacy, ref1, u, 0))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 0, 4);
      await ledger.connect(pharmacy).dispensePartial(u, 14, RX);
      const ref2 = ethers.id("part-2");
      await expect(settlePartial(ledger, otherInsurer, pharmacy, ref2, u, 18))
        .to.emit(ledger, "UnitSettledPartially")
        .withArgs(claimIdFor(otherInsurerId, ref2), otherInsurerId, pharmacyId, ref2, u, 18, 24);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      // A split pack is never reported under one insurer.
      expect(await ledger.settlementOf(u)).to.equal(0);
      await expect(settlePartial(ledger, insurer, pharmacy, ref1, u, 1))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 1, 0);
    });

    it("refuses packs not dispensed in parts (UnitNotSplit), the wrong pharmacy and a zero claim reference", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, pharmacyId } = await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await expect(settlePartial(ledger, insurer, pharmacy, ethers.id("p"), u, 1))
        .to.be.revertedWithCustomError(ledger, "UnitNotSplit")
        .withArgs(u);
      // A whole-dispensed pack is not split either.
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 1)]), RX);
      await expect(settlePartial(ledger, insurer, pharmacy, ethers.id("p"), unitRef(runId, 1), 1))
        .to.be.revertedWithCustomError(ledger, "UnitNotSplit")
        .withArgs(unitRef(runId, 1));
      await ledger.connect(pharmacy).dispensePartial(u, 3, RX);
      await expect(settlePartial(ledger, insurer, otherPharmacy, ethers.id("p"), u, 1))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(u, pharmacyId);
      await expect(settlePartial(ledger, insurer, pharmacy, ethers.ZeroHash, u, 1)).to.be.revertedWithCustomError(
        ledger,
        "InvalidClaimRef",
      );
      await expect(settlePartial(ledger, insurer, pharmacy, ethers.id("p"), caseRef(runId, 0), 1))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
    });

    it("reverses everything an insurer settled of a pack under one claim", async () => {
      const { ledger, pharmacy, insurer, otherInsurer, runId, insurerId, otherInsurerId, pharmacyId } =
        await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      const ref1 = ethers.id("part-1");
      const ref2 = ethers.id("part-2");
      await settlePartial(ledger, insurer, pharmacy, ref1, u, 6);
      await settlePartial(ledger, otherInsurer, pharmacy, ref2, u, 18);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
      const reverse = (who: HardhatEthersSigner, claimRef: string, reason: string) =>
        ledger.connect(who).reversePartialSettlement(claimRef, pharmacy.address, u, reason);
      await expect(reverse(otherInsurer, ref1, "not mine"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(otherInsurerId, ref1));
      await expect(reverse(insurer, ethers.id("nope"), "wrong ref"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(insurerId, ethers.id("nope")));
      await expect(reverse(insurer, ref1, "duplicate claim"))
        .to.emit(ledger, "PartialSettlementReversed")
        .withArgs(claimIdFor(insurerId, ref1), insurerId, pharmacyId, ref1, u, 6, "duplicate claim");
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, true, 24n, 18n]);
      await expect(reverse(insurer, ref1, "again"))
        .to.be.revertedWithCustomError(ledger, "NotSettledUnderClaim")
        .withArgs(u, claimIdFor(insurerId, ref1));
      // The freed doses can be settled again.
      await settlePartial(ledger, insurer, pharmacy, ethers.id("part-3"), u, 6);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, true, true, 24n, 24n]);
    });

    it("refuses a partial reversal of a pack that is not split (UnitNotSplit) or naming the wrong pharmacy", async () => {
      const { ledger, pharmacy, otherPharmacy, insurer, runId, pharmacyId } = await loadFixture(settlementFixture);
      const whole = unitRef(runId, 1);
      await ledger.connect(pharmacy).dispense(packRefs([whole]), RX);
      await settle(ledger, insurer, pharmacy, ethers.id("w"), packRefs([whole]));
      await expect(ledger.connect(insurer).reversePartialSettlement(ethers.id("w"), pharmacy.address, whole, "x"))
        .to.be.revertedWithCustomError(ledger, "UnitNotSplit")
        .withArgs(whole);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 5, RX);
      await settlePartial(ledger, insurer, pharmacy, ethers.id("p"), u, 5);
      await expect(ledger.connect(insurer).reversePartialSettlement(ethers.id("p"), otherPharmacy.address, u, "x"))
        .to.be.revertedWithCustomError(ledger, "DispensedByAnotherPharmacy")
        .withArgs(u, pharmacyId);
    });

    it("lets the pharmacy undo only unsettled parts after a partial reversal", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(settlementFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      await settlePartial(ledger, insurer, pharmacy, ethers.id("p"), u, 10);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 1))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 1, 0);
      await ledger.connect(insurer).reversePartialSettlement(ethers.id("p"), pharmacy.address, u, "reversed");
      await time.increase(DAY);
      await ledger.connect(pharmacy).undoDispensePartial(u, 10);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, false, 0n, 0n]);
    });
  });
});
