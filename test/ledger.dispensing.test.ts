import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import {
  caseRef,
  commissionRun,
  DAY,
  deployLedger,
  packRefs,
  palletRef,
  unitRef,
  idOf,
  ship,
  shipAndReceive,
  dispensingOf,
  settlePartialWithConsent,
  settleWithConsent,
} from "./helpers/ledger";

// ---------------------------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------------------------

const RX = ethers.id("prescription-0001");
const PACK_QUANTITY = 24;
const DecommissionReason = { Destroyed: 0, Damaged: 1, Stolen: 2, Sample: 3 } as const;

/** Moves the chain to one hour past the next UTC day boundary, so that "N days later" is exactly N day codes. */
async function startOfNextDay(): Promise<number> {
  const now = await time.latest();
  const target = (Math.floor(now / DAY) + 1) * DAY + 3600;
  await time.increaseTo(target);
  return target;
}

/**
 * Run of 40 units, 10 per case, 2 cases per pallet (cases 0-3, pallets 0-1). Case 0 is delivered to `pharmacy`;
 * case 1 is shipped to `pharmacy` but not received; cases 2 and 3 (pallet 1) stay with the maker.
 */
async function dispensingFixture() {
  const f = await deployLedger();
  const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
    unitCount: 40,
    unitsPerCase: 10,
    casesPerPallet: 2,
  });
  const delivered = await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(runId, 0)]);
  const inTransit = await ship(f.ledger, f.maker, f.pharmacy, [caseRef(runId, 1)]);
  return {
    ...f,
    runId,
    delivered,
    inTransit,
    makerId: await idOf(f.ledger, f.maker),
    pharmacyId: await idOf(f.ledger, f.pharmacy),
    otherPharmacyId: await idOf(f.ledger, f.otherPharmacy),
    insurerId: await idOf(f.ledger, f.insurer),
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe("Dispensing", () => {
  describe("dispense", () => {
    it("records whole packs and emits UnitsDispensed with the packed units and prescription hash", async () => {
      const { ledger, pharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const units = [unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 9)];
      await expect(ledger.connect(pharmacy).dispense(packRefs(units), RX))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, RX, packRefs(units));
      for (const u of units) expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, false, 0n, 0n]);
      expect(await dispensingOf(ledger, unitRef(runId, 2))).to.deep.equal([false, false, false, 0n, 0n]);
      // The unit stays with the dispensing pharmacy; its case is opened and pinned there.
      const custody = await ledger.custodyOf(unitRef(runId, 0));
      expect([custody.holderId, custody.inTransitShipment, custody.decommissioned]).to.deep.equal([
        pharmacyId,
        0n,
        false,
      ]);
      expect((await ledger.custodyOf(caseRef(runId, 0))).holderId).to.equal(pharmacyId);
    });

    it("accepts a zero prescription hash", async () => {
      const { ledger, pharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const units = packRefs([unitRef(runId, 3)]);
      await expect(ledger.connect(pharmacy).dispense(units, ethers.ZeroHash))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, ethers.ZeroHash, units);
    });

    it("refuses a unit dispensed in an earlier transaction (UnitAlreadyDispensed) and rolls back the whole list", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 1), unitRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(unitRef(runId, 0));
      expect((await ledger.dispensingOf(unitRef(runId, 1))).dispensed).to.equal(false);
      // Even with another prescription, a unit is dispensed once only.
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), ethers.id("other-rx")))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses the same unit twice in one transaction (UnitAlreadyDispensed)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 4);
      await expect(ledger.connect(pharmacy).dispense(packRefs([u, unitRef(runId, 5), u]), RX))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(u);
      expect((await ledger.dispensingOf(u)).dispensed).to.equal(false);
    });

    it("refuses units the pharmacy does not hold (NotHolder)", async () => {
      const { ledger, pharmacy, otherPharmacy, runId, pharmacyId, makerId } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(unitRef(runId, 0), pharmacyId);
      // Case 2 is still at the maker (inherited from its pallet, then the manufacturer).
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 25)]), RX))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(unitRef(runId, 25), makerId);
      expect((await ledger.dispensingOf(unitRef(runId, 0))).dispensed).to.equal(false);
    });

    it("refuses units whose case is still in transit (ItemInTransit) until the case is received", async () => {
      const { ledger, pharmacy, runId, inTransit, pharmacyId } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 10)]), RX))
        .to.be.revertedWithCustomError(ledger, "ItemInTransit")
        .withArgs(unitRef(runId, 10), inTransit);
      await ledger.connect(pharmacy).receiveShipment(inTransit, packRefs([caseRef(runId, 1)]));
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 10)]), RX))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, RX, packRefs([unitRef(runId, 10)]));
    });

    it("refuses expired units (UnitExpired) from the expiry instant on", async () => {
      const { ledger, pharmacy, runId, expiresOn } = await loadFixture(dispensingFixture);
      await time.setNextBlockTimestamp(expiresOn - 1);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await time.setNextBlockTimestamp(expiresOn);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 1)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnitExpired")
        .withArgs(unitRef(runId, 1), expiresOn);
      await time.increaseTo(expiresOn + 30 * DAY);
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 2), 1, RX))
        .to.be.revertedWithCustomError(ledger, "UnitExpired")
        .withArgs(unitRef(runId, 2), expiresOn);
    });

    it("refuses recalled units (UnitRecalled) and allows them again once the recall is lifted", async () => {
      const { ledger, pharmacy, maker, regulator, runId, batchId, pharmacyId } = await loadFixture(dispensingFixture);
      await ledger.connect(maker).recallBatch(batchId, "contamination");
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnitRecalled")
        .withArgs(unitRef(runId, 0), batchId);
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 1), 2, RX))
        .to.be.revertedWithCustomError(ledger, "UnitRecalled")
        .withArgs(unitRef(runId, 1), batchId);
      await ledger.connect(regulator).liftRecall(batchId, "tests negative");
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, RX, packRefs([unitRef(runId, 0)]));
    });

    it("refuses decommissioned units (ItemDecommissioned), also behind a unit of the same case", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).decommission(packRefs([unitRef(runId, 5)]), DecommissionReason.Damaged);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 5)]), RX))
        .to.be.revertedWithCustomError(ledger, "ItemDecommissioned")
        .withArgs(unitRef(runId, 5));
      // Unit 4 of the same case checks fine; unit 5 must still be checked on its own.
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 4), unitRef(runId, 5)]), RX))
        .to.be.revertedWithCustomError(ledger, "ItemDecommissioned")
        .withArgs(unitRef(runId, 5));
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 5), 1, RX))
        .to.be.revertedWithCustomError(ledger, "ItemDecommissioned")
        .withArgs(unitRef(runId, 5));
    });

    it("refuses case and pallet refs (NotAUnit)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(pharmacy).dispense(packRefs([caseRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), palletRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(palletRef(runId, 0));
      await expect(ledger.connect(pharmacy).dispensePartial(caseRef(runId, 0), 1, RX))
        .to.be.revertedWithCustomError(ledger, "NotAUnit")
        .withArgs(caseRef(runId, 0));
    });

    it("refuses units beyond the run (UnknownItem) and unknown runs (UnknownRun)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 40)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnknownItem")
        .withArgs(unitRef(runId, 40));
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 40), 1, RX))
        .to.be.revertedWithCustomError(ledger, "UnknownItem")
        .withArgs(unitRef(runId, 40));
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId + 7, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnknownRun")
        .withArgs(runId + 7);
    });

    it("refuses empty and ragged ref lists (InvalidRefList)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(pharmacy).dispense("0x", RX))
        .to.be.revertedWithCustomError(ledger, "InvalidRefList")
        .withArgs(0);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]) + "00", RX))
        .to.be.revertedWithCustomError(ledger, "InvalidRefList")
        .withArgs(10);
      await expect(ledger.connect(pharmacy).undoDispense("0x"))
        .to.be.revertedWithCustomError(ledger, "InvalidRefList")
        .withArgs(0);
    });

    it("refuses a suspended pharmacy (Suspended) until it is reinstated", async () => {
      const { ledger, pharmacy, regulator, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(regulator).suspend(pharmacy.address, "inspection");
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(pharmacy.address);
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 0), 1, RX))
        .to.be.revertedWithCustomError(ledger, "Suspended")
        .withArgs(pharmacy.address);
      await ledger.connect(regulator).reinstate(pharmacy.address);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      expect((await ledger.dispensingOf(unitRef(runId, 0))).dispensed).to.equal(true);
    });

    it("refuses callers that are not pharmacies (AccessControlUnauthorizedAccount)", async () => {
      const { ledger, maker, distributor, insurer, outsider, runId } = await loadFixture(dispensingFixture);
      const role = await ledger.PHARMACY_ROLE();
      for (const who of [maker, distributor, insurer, outsider]) {
        await expect(ledger.connect(who).dispense(packRefs([unitRef(runId, 20)]), RX))
          .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
      await expect(ledger.connect(maker).dispensePartial(unitRef(runId, 20), 1, RX))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(maker.address, role);
      await expect(ledger.connect(maker).undoDispense(packRefs([unitRef(runId, 20)])))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(maker.address, role);
    });

    it("lets a pharmacy that received a whole pallet dispense from its cases", async () => {
      const { ledger, maker, pharmacy, otherPharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const shipmentId = await ship(ledger, maker, pharmacy, [palletRef(runId, 1)]);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 20)]), RX))
        .to.be.revertedWithCustomError(ledger, "ItemInTransit")
        .withArgs(unitRef(runId, 20), shipmentId);
      await ledger.connect(pharmacy).receiveShipment(shipmentId, packRefs([palletRef(runId, 1)]));
      const units = packRefs([unitRef(runId, 20), unitRef(runId, 21), unitRef(runId, 39)]);
      await expect(ledger.connect(pharmacy).dispense(units, RX))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, RX, units);
      expect((await ledger.custodyOf(caseRef(runId, 2))).holderId).to.equal(pharmacyId);
      expect((await ledger.custodyOf(unitRef(runId, 39))).holderId).to.equal(pharmacyId);
      // Another pharmacy does not hold them.
      await expect(ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 30)]), RX))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(unitRef(runId, 30), pharmacyId);
    });
  });

  describe("undoDispense", () => {
    it("restores a unit within the return window so that it can be dispensed again", async () => {
      const { ledger, pharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      expect(await ledger.returnWindow()).to.equal(10);
      await startOfNextDay();
      const units = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await time.increase(10 * DAY);
      await expect(ledger.connect(pharmacy).undoDispense(units))
        .to.emit(ledger, "DispensingUndone")
        .withArgs(pharmacyId, units);
      expect(await dispensingOf(ledger, unitRef(runId, 0))).to.deep.equal([false, false, false, 0n, 0n]);
      expect((await ledger.custodyOf(unitRef(runId, 0))).holderId).to.equal(pharmacyId);
      await expect(ledger.connect(pharmacy).dispense(units, RX)).to.emit(ledger, "UnitsDispensed");
      expect((await ledger.dispensingOf(unitRef(runId, 1))).dispensed).to.equal(true);
    });

    it("closes the return window after 11 days (ReturnWindowClosed)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await startOfNextDay();
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await time.increase(11 * DAY);
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses settled units (UnitIsSettled)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(dispensingFixture);
      const units = packRefs([unitRef(runId, 0)]);
      await ledger.connect(pharmacy).dispense(units, RX);
      await settleWithConsent(ledger, insurer, pharmacy, ethers.id("claim-1"), units);
      await expect(ledger.connect(pharmacy).undoDispense(units))
        .to.be.revertedWithCustomError(ledger, "UnitIsSettled")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses units that were not dispensed (UnitNotDispensed)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 1));
      // Undoing twice: the second undo finds the unit no longer dispensed.
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 0));
    });

    it("refuses another pharmacy's dispensing (NotHolder)", async () => {
      const { ledger, pharmacy, otherPharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await expect(ledger.connect(otherPharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(unitRef(runId, 0), pharmacyId);
    });

    it("refuses split packs (UnitIsSplit)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 0), 4, RX);
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitIsSplit")
        .withArgs(unitRef(runId, 0));
    });
  });

  describe("return window", () => {
    it("is set by regulators only, emitting ReturnWindowChanged(previous, new)", async () => {
      const { ledger, admin, regulator, maker, pharmacy, insurer, outsider } = await loadFixture(dispensingFixture);
      expect(await ledger.returnWindow()).to.equal(10);
      await expect(ledger.connect(regulator).setReturnWindow(3)).to.emit(ledger, "ReturnWindowChanged").withArgs(10, 3);
      // The consortium admin is also the first regulator.
      await expect(ledger.connect(admin).setReturnWindow(4)).to.emit(ledger, "ReturnWindowChanged").withArgs(3, 4);
      expect(await ledger.returnWindow()).to.equal(4);
      for (const who of [maker, pharmacy, insurer, outsider]) {
        await expect(ledger.connect(who).setReturnWindow(30))
          .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, await ledger.REGULATOR_ROLE());
      }
      expect(await ledger.returnWindow()).to.equal(4);
    });

    it("governs undoing: a 3-day window allows day 3 and refuses day 4", async () => {
      const { ledger, admin, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(admin).setReturnWindow(3);
      await startOfNextDay();
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      await time.increase(3 * DAY);
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await time.increase(DAY);
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(unitRef(runId, 1));
    });

    it("with a zero-day window still allows undoing on the day of dispensing only", async () => {
      const { ledger, admin, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(admin).setReturnWindow(0);
      await startOfNextDay();
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0), unitRef(runId, 1)]), RX);
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await time.increase(DAY);
      await expect(ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(unitRef(runId, 1));
    });
  });

  describe("split packs", () => {
    it("dispenses parts adding up to the pack quantity, after which the pack counts as dispensed", async () => {
      const { ledger, pharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await expect(ledger.connect(pharmacy).dispensePartial(u, 10, RX))
        .to.emit(ledger, "UnitDispensedPartially")
        .withArgs(pharmacyId, RX, u, 10, 10, PACK_QUANTITY);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 10n, 0n]);
      const rx2 = ethers.id("prescription-0002");
      await expect(ledger.connect(pharmacy).dispensePartial(u, 14, rx2))
        .to.emit(ledger, "UnitDispensedPartially")
        .withArgs(pharmacyId, rx2, u, 14, 24, PACK_QUANTITY);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, true, 24n, 0n]);
      await expect(ledger.connect(pharmacy).dispensePartial(u, 1, RX))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(u);
    });

    it("refuses a zero quantity or more than remains (InvalidQuantity)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 1);
      await expect(ledger.connect(pharmacy).dispensePartial(u, 0, RX))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 0, 24);
      await expect(ledger.connect(pharmacy).dispensePartial(u, 25, RX))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 25, 24);
      await ledger.connect(pharmacy).dispensePartial(u, 20, RX);
      await expect(ledger.connect(pharmacy).dispensePartial(u, 5, RX))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 5, 4);
      await ledger.connect(pharmacy).dispensePartial(u, 4, RX);
      expect((await ledger.dispensingOf(u)).dispensed).to.equal(true);
    });

    it("refuses a whole dispense of a split pack and a split of a whole-dispensed pack (UnitAlreadyDispensed)", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 2), 6, RX);
      await expect(ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 2)]), RX))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(unitRef(runId, 2));
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 3)]), RX);
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 3), 6, RX))
        .to.be.revertedWithCustomError(ledger, "UnitAlreadyDispensed")
        .withArgs(unitRef(runId, 3));
    });

    it("needs the pharmacy to hold the pack (NotHolder, ItemInTransit)", async () => {
      const { ledger, pharmacy, otherPharmacy, runId, pharmacyId, inTransit } = await loadFixture(dispensingFixture);
      await expect(ledger.connect(otherPharmacy).dispensePartial(unitRef(runId, 0), 1, RX))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(unitRef(runId, 0), pharmacyId);
      await expect(ledger.connect(pharmacy).dispensePartial(unitRef(runId, 10), 1, RX))
        .to.be.revertedWithCustomError(ledger, "ItemInTransit")
        .withArgs(unitRef(runId, 10), inTransit);
    });

    it("refuses packs of a product with pack quantity 1 (PackNotSplittable)", async () => {
      const { ledger, maker, pharmacy, pharmacyId } = await loadFixture(dispensingFixture);
      await ledger.connect(maker).registerProduct("8612346", "Insulin pen", "S20000002", "1 pen/box", 1);
      const productId = await ledger.productIdByCode("8612346");
      const now = await time.latest();
      await ledger.connect(maker).registerBatch(productId, "LOT-P1", now - DAY, now + 365 * DAY);
      const batchId = 2n;
      expect((await ledger.batchOf(batchId)).productId).to.equal(productId);
      const { runId } = await commissionRun(ledger, maker, batchId, {
        unitCount: 3,
        unitsPerCase: 0,
        casesPerPallet: 0,
      });
      const units = [unitRef(runId, 0), unitRef(runId, 1)];
      await shipAndReceive(ledger, maker, pharmacy, units);
      await expect(ledger.connect(pharmacy).dispensePartial(units[0]!, 1, RX))
        .to.be.revertedWithCustomError(ledger, "PackNotSplittable")
        .withArgs(units[0]!);
      await expect(ledger.connect(pharmacy).dispense(packRefs(units), RX))
        .to.emit(ledger, "UnitsDispensed")
        .withArgs(pharmacyId, RX, packRefs(units));
    });

    it("undoes parts within the return window, clearing the pack once nothing is left", async () => {
      const { ledger, pharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await startOfNextDay();
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      await time.increase(10 * DAY);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 4))
        .to.emit(ledger, "PartialDispensingUndone")
        .withArgs(pharmacyId, u, 4, 6);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 6n, 0n]);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 7))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 7, 6);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 6))
        .to.emit(ledger, "PartialDispensingUndone")
        .withArgs(pharmacyId, u, 6, 0);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, false, 0n, 0n]);
      // Nothing dispensed any more: the pack can go whole.
      await ledger.connect(pharmacy).dispense(packRefs([u]), RX);
      expect((await ledger.dispensingOf(u)).dispensed).to.equal(true);
    });

    it("undoes a used-up split pack back to a split in progress", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 24, RX);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, true, 24n, 0n]);
      await ledger.connect(pharmacy).undoDispensePartial(u, 2);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 22n, 0n]);
      await ledger.connect(pharmacy).dispensePartial(u, 2, RX);
      expect(await dispensingOf(ledger, u)).to.deep.equal([true, false, true, 24n, 0n]);
    });

    it("cannot undo more than the unsettled quantity (InvalidQuantity)", async () => {
      const { ledger, pharmacy, insurer, runId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await ledger.connect(pharmacy).dispensePartial(u, 10, RX);
      await settlePartialWithConsent(ledger, insurer, pharmacy, ethers.id("claim-1"), u, 7);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 4))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 4, 3);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 0))
        .to.be.revertedWithCustomError(ledger, "InvalidQuantity")
        .withArgs(u, 0, 3);
      await ledger.connect(pharmacy).undoDispensePartial(u, 3);
      expect(await dispensingOf(ledger, u)).to.deep.equal([false, false, true, 7n, 7n]);
    });

    it("refuses undoing parts after the window (ReturnWindowClosed), of no split (UnitNotDispensed), or by another pharmacy (NotHolder)", async () => {
      const { ledger, pharmacy, otherPharmacy, runId, pharmacyId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 1))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(u);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 1)]), RX);
      await expect(ledger.connect(pharmacy).undoDispensePartial(unitRef(runId, 1), 1))
        .to.be.revertedWithCustomError(ledger, "UnitNotDispensed")
        .withArgs(unitRef(runId, 1));
      await startOfNextDay();
      await ledger.connect(pharmacy).dispensePartial(u, 5, RX);
      await expect(ledger.connect(otherPharmacy).undoDispensePartial(u, 1))
        .to.be.revertedWithCustomError(ledger, "NotHolder")
        .withArgs(u, pharmacyId);
      await time.increase(11 * DAY);
      await expect(ledger.connect(pharmacy).undoDispensePartial(u, 1))
        .to.be.revertedWithCustomError(ledger, "ReturnWindowClosed")
        .withArgs(u);
    });

    it("counts the return window from the last part dispensed", async () => {
      const { ledger, pharmacy, runId } = await loadFixture(dispensingFixture);
      const u = unitRef(runId, 0);
      await startOfNextDay();
      await ledger.connect(pharmacy).dispensePartial(u, 5, RX);
      await time.increase(8 * DAY);
      await ledger.connect(pharmacy).dispensePartial(u, 5, RX);
      await time.increase(8 * DAY);
      await ledger.connect(pharmacy).undoDispensePartial(u, 3);
      expect((await ledger.dispensingOf(u)).splitDispensed).to.equal(7n);
    });
  });

  describe("custody after dispensing", () => {
    it("refuses to ship dispensed units (UnitDispensed) and opened cases (CaseOpened)", async () => {
      const { ledger, pharmacy, otherPharmacy, runId, otherPharmacyId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(pharmacy).dispensePartial(unitRef(runId, 1), 3, RX);
      await expect(ledger.connect(pharmacy).ship(otherPharmacy.address, packRefs([unitRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "UnitDispensed")
        .withArgs(unitRef(runId, 0));
      await expect(ledger.connect(pharmacy).ship(otherPharmacy.address, packRefs([unitRef(runId, 1)])))
        .to.be.revertedWithCustomError(ledger, "UnitDispensed")
        .withArgs(unitRef(runId, 1));
      await expect(ledger.connect(pharmacy).ship(otherPharmacy.address, packRefs([caseRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "CaseOpened")
        .withArgs(caseRef(runId, 0));
      await expect(ledger.connect(pharmacy).decommission(packRefs([unitRef(runId, 0)]), DecommissionReason.Destroyed))
        .to.be.revertedWithCustomError(ledger, "UnitDispensed")
        .withArgs(unitRef(runId, 0));
      // The other units of the opened case still ship, loose.
      const shipmentId = await shipAndReceive(ledger, pharmacy, otherPharmacy, [unitRef(runId, 2)]);
      expect(shipmentId).to.be.greaterThan(0n);
      expect((await ledger.custodyOf(unitRef(runId, 2))).holderId).to.equal(otherPharmacyId);
    });

    it("keeps a case opened by a dispensing that was undone", async () => {
      const { ledger, pharmacy, otherPharmacy, runId } = await loadFixture(dispensingFixture);
      await ledger.connect(pharmacy).dispense(packRefs([unitRef(runId, 0)]), RX);
      await ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)]));
      await expect(ledger.connect(pharmacy).ship(otherPharmacy.address, packRefs([caseRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "CaseOpened")
        .withArgs(caseRef(runId, 0));
      // The restored unit ships again, loose.
      await ship(ledger, pharmacy, otherPharmacy, [unitRef(runId, 0)]);
    });
  });
});

describe("Dispensing: return windows cannot be stretched", () => {
  it("returns only doses of a split pack's latest dispensing day: one more dose never reopens older ones", async () => {
    const f = await loadFixture(dispensingFixture);
    const u = unitRef(f.runId, 0);
    await startOfNextDay();
    await f.ledger.connect(f.pharmacy).dispensePartial(u, 10, RX);
    await time.increase(30 * DAY);
    await f.ledger.connect(f.pharmacy).dispensePartial(u, 1, RX);
    await expect(f.ledger.connect(f.pharmacy).undoDispensePartial(u, 11))
      .to.be.revertedWithCustomError(f.ledger, "InvalidQuantity")
      .withArgs(u, 11, 1);
    await f.ledger.connect(f.pharmacy).undoDispensePartial(u, 1);
    expect(await dispensingOf(f.ledger, u)).to.deep.equal([false, false, true, 10n, 0n]);
    await expect(f.ledger.connect(f.pharmacy).undoDispensePartial(u, 1))
      .to.be.revertedWithCustomError(f.ledger, "InvalidQuantity")
      .withArgs(u, 1, 0);
  });

  it("caps the return window at 90 days", async () => {
    const f = await loadFixture(dispensingFixture);
    expect(await f.ledger.MAX_RETURN_WINDOW_DAYS()).to.equal(90n);
    await expect(f.ledger.connect(f.admin).setReturnWindow(91))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowTooLong")
      .withArgs(91, 90);
    await f.ledger.connect(f.admin).setReturnWindow(90);
    expect(await f.ledger.returnWindow()).to.equal(90n);
  });
});
