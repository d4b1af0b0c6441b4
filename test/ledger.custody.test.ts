import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import type { DrugLedger } from "../typechain-types";
import {
  caseRef,
  commissionRun,
  deployLedger,
  packRefs,
  palletRef,
  unitRef,
  ship,
  shipAndReceive,
} from "./helpers/ledger";

// ---------------------------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------------------------

const MAKER_ID = 1;
const DISTRIBUTOR_ID = 3;
const PHARMACY_ID = 4;
const OTHER_PHARMACY_ID = 5;

const Reason = { Destroyed: 0, Damaged: 1, Stolen: 2, Sample: 3 } as const;

/** 40 units in cases of 10, pallets of 2 cases: units 0-9 in case 0, ...; cases 0-1 on pallet 0, 2-3 on pallet 1. */
const SHAPE = { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 };

async function custodyFixture() {
  const f = await deployLedger();
  const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, SHAPE);
  return { ...f, runId };
}

type Custody = [holderId: number, inTransitShipment: bigint, decommissioned: boolean];

async function custody(ledger: DrugLedger, ref: bigint): Promise<Custody> {
  const [holderId, shipment, decommissioned] = await ledger.custodyOf(ref);
  return [Number(holderId), shipment, decommissioned];
}

async function expectCustody(ledger: DrugLedger, refs: bigint[], expected: Custody) {
  for (const ref of refs) {
    expect(await custody(ledger, ref), `custody of ref 0x${ref.toString(16)}`).to.deep.equal(expected);
  }
}

const units = (runId: number, from: number, to: number): bigint[] =>
  Array.from({ length: to - from }, (_, i) => unitRef(runId, from + i));

// ---------------------------------------------------------------------------------------------------------------

describe("DrugLedger custody", () => {
  describe("shipping and receiving", () => {
    it("starts with everything at the manufacturer", async () => {
      const f = await loadFixture(custodyFixture);
      await expectCustody(
        f.ledger,
        [
          ...units(f.runId, 0, 40),
          ...[0, 1, 2, 3].map((c) => caseRef(f.runId, c)),
          palletRef(f.runId, 0),
          palletRef(f.runId, 1),
        ],
        [MAKER_ID, 0n, false],
      );
      const s = await f.ledger.shipmentOf(1);
      expect(s.fromId).to.equal(0);
    });

    it("ships a pallet with its cases and units, and receives it", async () => {
      const f = await loadFixture(custodyFixture);
      const items = packRefs([palletRef(f.runId, 0)]);
      const tx = await f.ledger.connect(f.maker).ship(f.distributor.address, items);
      await expect(tx).to.emit(f.ledger, "ShipmentCreated").withArgs(1, MAKER_ID, DISTRIBUTOR_ID, items);
      const shippedAt = (await ethers.provider.getBlock(tx.blockNumber!))!.timestamp;
      const onPallet0 = [palletRef(f.runId, 0), caseRef(f.runId, 0), caseRef(f.runId, 1), ...units(f.runId, 0, 20)];
      const onPallet1 = [palletRef(f.runId, 1), caseRef(f.runId, 2), caseRef(f.runId, 3), ...units(f.runId, 20, 40)];
      // In transit: the holder reported is the sender, with the shipment.
      await expectCustody(f.ledger, onPallet0, [MAKER_ID, 1n, false]);
      await expectCustody(f.ledger, onPallet1, [MAKER_ID, 0n, false]);
      const s = await f.ledger.shipmentOf(1);
      expect([s.fromId, s.toId, s.itemCount, s.received, s.returned, s.shippedAt, s.discrepancy]).to.deep.equal([
        BigInt(MAKER_ID),
        BigInt(DISTRIBUTOR_ID),
        1n,
        0n,
        0n,
        BigInt(shippedAt),
        false,
      ]);

      const rx = f.ledger.connect(f.distributor).receiveShipment(1, items);
      await expect(rx).to.emit(f.ledger, "ShipmentReceived").withArgs(1, DISTRIBUTOR_ID, items, 0);
      await expect(rx).not.to.emit(f.ledger, "ShipmentDiscrepancy");
      await expectCustody(f.ledger, onPallet0, [DISTRIBUTOR_ID, 0n, false]);
      await expectCustody(f.ledger, onPallet1, [MAKER_ID, 0n, false]);
      const after = await f.ledger.shipmentOf(1);
      expect([after.received, after.returned, after.discrepancy]).to.deep.equal([1n, 0n, false]);

      // The distributor passes the whole pallet on.
      await shipAndReceive(f.ledger, f.distributor, f.pharmacy, [palletRef(f.runId, 0)]);
      await expectCustody(f.ledger, onPallet0, [PHARMACY_ID, 0n, false]);
    });

    it("ships a case out of a held pallet, detaching it from the pallet", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.distributor, [palletRef(f.runId, 0)]);
      const id = await ship(f.ledger, f.distributor, f.pharmacy, [caseRef(f.runId, 1)]);
      await expectCustody(f.ledger, [caseRef(f.runId, 1), ...units(f.runId, 10, 20)], [DISTRIBUTOR_ID, id, false]);
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 0), caseRef(f.runId, 0), ...units(f.runId, 0, 10)],
        [DISTRIBUTOR_ID, 0n, false],
      );
      await f.ledger.connect(f.pharmacy).receiveShipment(id, packRefs([caseRef(f.runId, 1)]));
      await expectCustody(f.ledger, [caseRef(f.runId, 1), ...units(f.runId, 10, 20)], [PHARMACY_ID, 0n, false]);

      // The pallet now carries only case 0 with it.
      await shipAndReceive(f.ledger, f.distributor, f.otherPharmacy, [palletRef(f.runId, 0)]);
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 0), caseRef(f.runId, 0), ...units(f.runId, 0, 10)],
        [OTHER_PHARMACY_ID, 0n, false],
      );
      await expectCustody(f.ledger, [caseRef(f.runId, 1), ...units(f.runId, 10, 20)], [PHARMACY_ID, 0n, false]);
    });

    it("ships a loose unit, opening its case: the case no longer ships whole (CaseOpened)", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(f.runId, 1)]);
      const id = await ship(f.ledger, f.pharmacy, f.otherPharmacy, [unitRef(f.runId, 12)]);
      await expectCustody(f.ledger, [unitRef(f.runId, 12)], [PHARMACY_ID, id, false]);
      await expectCustody(
        f.ledger,
        [caseRef(f.runId, 1), ...units(f.runId, 10, 12), ...units(f.runId, 13, 20)],
        [PHARMACY_ID, 0n, false],
      );
      await expect(f.ledger.connect(f.pharmacy).ship(f.otherPharmacy.address, packRefs([caseRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "CaseOpened")
        .withArgs(caseRef(f.runId, 1));
      // The remaining units still ship loose.
      const id2 = await ship(f.ledger, f.pharmacy, f.otherPharmacy, [unitRef(f.runId, 13), unitRef(f.runId, 19)]);
      await expectCustody(f.ledger, [unitRef(f.runId, 13), unitRef(f.runId, 19)], [PHARMACY_ID, id2, false]);
      await f.ledger.connect(f.otherPharmacy).receiveShipment(id, packRefs([unitRef(f.runId, 12)]));
      await expectCustody(f.ledger, [unitRef(f.runId, 12)], [OTHER_PHARMACY_ID, 0n, false]);
      await expectCustody(f.ledger, [caseRef(f.runId, 1), unitRef(f.runId, 10)], [PHARMACY_ID, 0n, false]);
    });

    it("a unit taken loose from a palletised case pins that case: the pallet ships without it", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.pharmacy, [unitRef(f.runId, 3)]);
      await expect(f.ledger.connect(f.maker).ship(f.distributor.address, packRefs([caseRef(f.runId, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "CaseOpened")
        .withArgs(caseRef(f.runId, 0));
      const id = await ship(f.ledger, f.maker, f.distributor, [palletRef(f.runId, 0)]);
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 0), caseRef(f.runId, 1), unitRef(f.runId, 15)],
        [MAKER_ID, id, false],
      );
      await expectCustody(
        f.ledger,
        [caseRef(f.runId, 0), unitRef(f.runId, 0), unitRef(f.runId, 9)],
        [MAKER_ID, 0n, false],
      );
      await expectCustody(f.ledger, [unitRef(f.runId, 3)], [PHARMACY_ID, 0n, false]);
    });

    it("a unit shipped back and forth between pharmacies does not drag its case along", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(f.runId, 0)]);
      const rest = [caseRef(f.runId, 0), ...units(f.runId, 1, 10)];
      const unit = [unitRef(f.runId, 0)];
      for (let round = 0; round < 2; round++) {
        const out = await ship(f.ledger, f.pharmacy, f.otherPharmacy, unit);
        await expectCustody(f.ledger, unit, [PHARMACY_ID, out, false]);
        await expectCustody(f.ledger, rest, [PHARMACY_ID, 0n, false]);
        await f.ledger.connect(f.otherPharmacy).receiveShipment(out, packRefs(unit));
        await expectCustody(f.ledger, unit, [OTHER_PHARMACY_ID, 0n, false]);
        await expectCustody(f.ledger, rest, [PHARMACY_ID, 0n, false]);

        const back = await ship(f.ledger, f.otherPharmacy, f.pharmacy, unit);
        await expectCustody(f.ledger, unit, [OTHER_PHARMACY_ID, back, false]);
        await expectCustody(f.ledger, rest, [PHARMACY_ID, 0n, false]);
        await f.ledger.connect(f.pharmacy).receiveShipment(back, packRefs(unit));
        await expectCustody(f.ledger, [...unit, ...rest], [PHARMACY_ID, 0n, false]);
      }
      // The other pharmacy holds nothing of the case.
      await expect(f.ledger.connect(f.otherPharmacy).ship(f.pharmacy.address, packRefs([unitRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "NotHolder")
        .withArgs(unitRef(f.runId, 1), PHARMACY_ID);
      // With the unit left at the other pharmacy, the case and its other units stay with the pharmacy.
      const out = await ship(f.ledger, f.pharmacy, f.otherPharmacy, unit);
      await f.ledger.connect(f.otherPharmacy).receiveShipment(out, packRefs(unit));
      const more = await ship(f.ledger, f.pharmacy, f.distributor, [unitRef(f.runId, 5)]);
      await expectCustody(f.ledger, [unitRef(f.runId, 5)], [PHARMACY_ID, more, false]);
      await expectCustody(f.ledger, unit, [OTHER_PHARMACY_ID, 0n, false]);
      await expectCustody(f.ledger, [caseRef(f.runId, 0), unitRef(f.runId, 4)], [PHARMACY_ID, 0n, false]);
    });

    it("ships units of a run without cases loose", async () => {
      const f = await loadFixture(custodyFixture);
      const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
        unitCount: 6,
        unitsPerCase: 0,
        casesPerPallet: 0,
      });
      const id = await ship(f.ledger, f.maker, f.pharmacy, [unitRef(runId, 1), unitRef(runId, 4)]);
      await expectCustody(f.ledger, [unitRef(runId, 1), unitRef(runId, 4)], [MAKER_ID, id, false]);
      await expectCustody(f.ledger, [unitRef(runId, 0), unitRef(runId, 5)], [MAKER_ID, 0n, false]);
      await f.ledger.connect(f.pharmacy).receiveShipment(id, packRefs([unitRef(runId, 4), unitRef(runId, 1)]));
      await expectCustody(f.ledger, [unitRef(runId, 1), unitRef(runId, 4)], [PHARMACY_ID, 0n, false]);
    });
  });

  describe("discrepancies, late receipt and return to sender", () => {
    async function partiallyReceived() {
      const f = await loadFixture(custodyFixture);
      const shipped = [caseRef(f.runId, 0), caseRef(f.runId, 1), caseRef(f.runId, 2)];
      const id = await ship(f.ledger, f.maker, f.distributor, shipped);
      const got = packRefs([caseRef(f.runId, 1), caseRef(f.runId, 0)]);
      const rx = f.ledger.connect(f.distributor).receiveShipment(id, got);
      await expect(rx).to.emit(f.ledger, "ShipmentReceived").withArgs(id, DISTRIBUTOR_ID, got, 1);
      // Not a discrepancy yet: the missing case is still in transit and may arrive late.
      await expect(rx).not.to.emit(f.ledger, "ShipmentDiscrepancy");
      return { ...f, id };
    }

    it("a partial receipt leaves the missing items in transit and records no discrepancy yet", async () => {
      const { ledger, runId, id } = await partiallyReceived();
      await expectCustody(
        ledger,
        [caseRef(runId, 0), caseRef(runId, 1), unitRef(runId, 15)],
        [DISTRIBUTOR_ID, 0n, false],
      );
      await expectCustody(ledger, [caseRef(runId, 2), ...units(runId, 20, 30)], [MAKER_ID, id, false]);
      // Case 3 stays on pallet 1 at the maker.
      await expectCustody(ledger, [caseRef(runId, 3), palletRef(runId, 1)], [MAKER_ID, 0n, false]);
      const s = await ledger.shipmentOf(id);
      expect([s.itemCount, s.received, s.returned, s.discrepancy]).to.deep.equal([3n, 2n, 0n, false]);
    });

    it("the missing item can be received late, and the shipment closes complete (no discrepancy)", async () => {
      const { ledger, runId, id, distributor } = await partiallyReceived();
      const late = packRefs([caseRef(runId, 2)]);
      const rx = ledger.connect(distributor).receiveShipment(id, late);
      await expect(rx).to.emit(ledger, "ShipmentReceived").withArgs(id, DISTRIBUTOR_ID, late, 0);
      await expect(rx).not.to.emit(ledger, "ShipmentDiscrepancy");
      await expectCustody(ledger, [caseRef(runId, 2), ...units(runId, 20, 30)], [DISTRIBUTOR_ID, 0n, false]);
      const s = await ledger.shipmentOf(id);
      // Everything shipped arrived, in two parts: nothing to record.
      expect([s.itemCount, s.received, s.returned, s.discrepancy]).to.deep.equal([3n, 3n, 0n, false]);
      await expect(ledger.connect(distributor).receiveShipment(id, late))
        .to.be.revertedWithCustomError(ledger, "NotInShipment")
        .withArgs(caseRef(runId, 2), id);
    });

    it("the missing item can be returned to the sender, closing the shipment short (ShipmentDiscrepancy)", async () => {
      const { ledger, runId, id, maker, distributor } = await partiallyReceived();
      const back = packRefs([caseRef(runId, 2)]);
      const tx = ledger.connect(maker).returnToSender(id, back);
      await expect(tx).to.emit(ledger, "ShipmentReturned").withArgs(id, MAKER_ID, back, 0);
      await expect(tx).to.emit(ledger, "ShipmentDiscrepancy").withArgs(id, MAKER_ID, DISTRIBUTOR_ID, 3, 2, 1);
      await expectCustody(ledger, [caseRef(runId, 2), ...units(runId, 20, 30)], [MAKER_ID, 0n, false]);
      const s = await ledger.shipmentOf(id);
      expect([s.itemCount, s.received, s.returned, s.discrepancy]).to.deep.equal([3n, 2n, 1n, true]);
      await expect(ledger.connect(distributor).receiveShipment(id, back))
        .to.be.revertedWithCustomError(ledger, "NotInShipment")
        .withArgs(caseRef(runId, 2), id);
      await expect(ledger.connect(maker).returnToSender(id, back))
        .to.be.revertedWithCustomError(ledger, "NotInShipment")
        .withArgs(caseRef(runId, 2), id);
      // Received items cannot be taken back.
      await expect(ledger.connect(maker).returnToSender(id, packRefs([caseRef(runId, 0)])))
        .to.be.revertedWithCustomError(ledger, "NotInShipment")
        .withArgs(caseRef(runId, 0), id);
      // The returned case can be shipped again.
      await expect(ledger.connect(maker).ship(distributor.address, back)).to.emit(ledger, "ShipmentCreated");
    });

    it("a whole shipment can be cancelled by the sender before receipt (a cancellation, not a discrepancy)", async () => {
      const f = await loadFixture(custodyFixture);
      const refs = [palletRef(f.runId, 1), caseRef(f.runId, 0)];
      const id = await ship(f.ledger, f.maker, f.pharmacy, refs);
      const tx = f.ledger.connect(f.maker).returnToSender(id, packRefs(refs));
      await expect(tx).to.emit(f.ledger, "ShipmentReturned").withArgs(id, MAKER_ID, packRefs(refs), 0);
      await expect(tx).not.to.emit(f.ledger, "ShipmentDiscrepancy");
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 1), caseRef(f.runId, 3), unitRef(f.runId, 39), caseRef(f.runId, 0), unitRef(f.runId, 0)],
        [MAKER_ID, 0n, false],
      );
      await expect(f.ledger.connect(f.pharmacy).receiveShipment(id, packRefs([palletRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "NotInShipment")
        .withArgs(palletRef(f.runId, 1), id);
      const s = await f.ledger.shipmentOf(id);
      expect([s.itemCount, s.received, s.returned, s.discrepancy]).to.deep.equal([2n, 0n, 2n, false]);
    });
  });

  describe("reverts", () => {
    it("NotHolder: shipping or decommissioning what someone else holds", async () => {
      const f = await loadFixture(custodyFixture);
      await expect(f.ledger.connect(f.distributor).ship(f.pharmacy.address, packRefs([caseRef(f.runId, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "NotHolder")
        .withArgs(caseRef(f.runId, 0), MAKER_ID);
      await shipAndReceive(f.ledger, f.maker, f.distributor, [palletRef(f.runId, 0)]);
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([unitRef(f.runId, 3)])))
        .to.be.revertedWithCustomError(f.ledger, "NotHolder")
        .withArgs(unitRef(f.runId, 3), DISTRIBUTOR_ID);
      await expect(f.ledger.connect(f.pharmacy).decommission(packRefs([palletRef(f.runId, 0)]), Reason.Stolen))
        .to.be.revertedWithCustomError(f.ledger, "NotHolder")
        .withArgs(palletRef(f.runId, 0), DISTRIBUTOR_ID);
    });

    it("ItemInTransit: shipping what is already on its way (directly or with its pallet/case)", async () => {
      const f = await loadFixture(custodyFixture);
      await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 0)]);
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([caseRef(f.runId, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(caseRef(f.runId, 0), 1);
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([unitRef(f.runId, 4)])))
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(unitRef(f.runId, 4), 1);
      await ship(f.ledger, f.maker, f.distributor, [palletRef(f.runId, 1)]);
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([caseRef(f.runId, 3)])))
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(caseRef(f.runId, 3), 2);
      await expect(f.ledger.connect(f.maker).decommission(packRefs([unitRef(f.runId, 25)]), Reason.Damaged))
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(unitRef(f.runId, 25), 2);
      // Nor can the recipient move it before receiving it.
      await expect(f.ledger.connect(f.distributor).ship(f.pharmacy.address, packRefs([palletRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(palletRef(f.runId, 1), 2);
      // A ref listed twice in one shipment.
      await expect(
        f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([unitRef(f.runId, 12), unitRef(f.runId, 12)])),
      )
        .to.be.revertedWithCustomError(f.ledger, "ItemInTransit")
        .withArgs(unitRef(f.runId, 12), 3);
    });

    it("NotInShipment: receiving or returning items that are not in transit under the shipment", async () => {
      const f = await loadFixture(custodyFixture);
      const id1 = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 0)]);
      const id2 = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 2)]);
      await expect(f.ledger.connect(f.distributor).receiveShipment(id1, packRefs([caseRef(f.runId, 2)])))
        .to.be.revertedWithCustomError(f.ledger, "NotInShipment")
        .withArgs(caseRef(f.runId, 2), id1);
      // A unit that travels inside the shipped case is not itself in the shipment.
      await expect(f.ledger.connect(f.distributor).receiveShipment(id1, packRefs([unitRef(f.runId, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "NotInShipment")
        .withArgs(unitRef(f.runId, 0), id1);
      await expect(f.ledger.connect(f.maker).returnToSender(id2, packRefs([caseRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "NotInShipment")
        .withArgs(caseRef(f.runId, 1), id2);
      // Listing an item twice in one receipt.
      await expect(
        f.ledger.connect(f.distributor).receiveShipment(id1, packRefs([caseRef(f.runId, 0), caseRef(f.runId, 0)])),
      )
        .to.be.revertedWithCustomError(f.ledger, "NotInShipment")
        .withArgs(caseRef(f.runId, 0), id1);
    });

    it("ShipToSelf", async () => {
      const f = await loadFixture(custodyFixture);
      await expect(
        f.ledger.connect(f.maker).ship(f.maker.address, packRefs([caseRef(f.runId, 0)])),
      ).to.be.revertedWithCustomError(f.ledger, "ShipToSelf");
    });

    it("CannotHoldGoods / NotOnboarded: shipping to an insurer or an outsider, or by one", async () => {
      const f = await loadFixture(custodyFixture);
      const items = packRefs([caseRef(f.runId, 0)]);
      await expect(f.ledger.connect(f.maker).ship(f.insurer.address, items))
        .to.be.revertedWithCustomError(f.ledger, "CannotHoldGoods")
        .withArgs(f.insurer.address);
      await expect(f.ledger.connect(f.maker).ship(f.outsider.address, items))
        .to.be.revertedWithCustomError(f.ledger, "NotOnboarded")
        .withArgs(f.outsider.address);
      await expect(f.ledger.connect(f.insurer).ship(f.pharmacy.address, items))
        .to.be.revertedWithCustomError(f.ledger, "CannotHoldGoods")
        .withArgs(f.insurer.address);
      await expect(f.ledger.connect(f.outsider).ship(f.pharmacy.address, items))
        .to.be.revertedWithCustomError(f.ledger, "NotOnboarded")
        .withArgs(f.outsider.address);
      await expect(f.ledger.connect(f.insurer).decommission(items, Reason.Destroyed))
        .to.be.revertedWithCustomError(f.ledger, "CannotHoldGoods")
        .withArgs(f.insurer.address);
    });

    it("Suspended: a suspended recipient receives nothing, a suspended sender ships nothing", async () => {
      const f = await loadFixture(custodyFixture);
      const items = packRefs([caseRef(f.runId, 0)]);
      const id = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 1)]);
      await f.ledger.connect(f.regulator).suspend(f.distributor.address, "licence");
      await expect(f.ledger.connect(f.maker).ship(f.distributor.address, items))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.distributor.address);
      await expect(f.ledger.connect(f.distributor).receiveShipment(id, packRefs([caseRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.distributor.address);
      // The sender can still take the shipment back.
      await expect(f.ledger.connect(f.maker).returnToSender(id, packRefs([caseRef(f.runId, 1)]))).to.emit(
        f.ledger,
        "ShipmentReturned",
      );
      await f.ledger.connect(f.regulator).suspend(f.maker.address, "audit");
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, items))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
      await expect(f.ledger.connect(f.maker).decommission(items, Reason.Damaged))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
      await f.ledger.connect(f.regulator).reinstate(f.distributor.address);
      await f.ledger.connect(f.regulator).reinstate(f.maker.address);
      await expect(f.ledger.connect(f.maker).ship(f.distributor.address, items)).to.emit(f.ledger, "ShipmentCreated");
    });

    it("UnknownShipment and NotShipmentParty", async () => {
      const f = await loadFixture(custodyFixture);
      const items = packRefs([caseRef(f.runId, 0)]);
      await expect(f.ledger.connect(f.distributor).receiveShipment(7, items))
        .to.be.revertedWithCustomError(f.ledger, "UnknownShipment")
        .withArgs(7);
      await expect(f.ledger.connect(f.maker).returnToSender(0, items))
        .to.be.revertedWithCustomError(f.ledger, "UnknownShipment")
        .withArgs(0);
      const id = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 0)]);
      for (const who of [f.maker, f.pharmacy, f.otherMaker]) {
        await expect(f.ledger.connect(who).receiveShipment(id, items))
          .to.be.revertedWithCustomError(f.ledger, "NotShipmentParty")
          .withArgs(id, who.address);
      }
      for (const who of [f.distributor, f.otherMaker]) {
        await expect(f.ledger.connect(who).returnToSender(id, items))
          .to.be.revertedWithCustomError(f.ledger, "NotShipmentParty")
          .withArgs(id, who.address);
      }
      await expect(f.ledger.connect(f.outsider).receiveShipment(id, items))
        .to.be.revertedWithCustomError(f.ledger, "NotOnboarded")
        .withArgs(f.outsider.address);
    });

    it("InvalidRefList: empty or ragged packed lists", async () => {
      const f = await loadFixture(custodyFixture);
      const id = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 0)]);
      const ragged = packRefs([caseRef(f.runId, 1)]) + "00";
      const calls: [string, (list: string) => Promise<unknown>][] = [
        ["ship", (l) => f.ledger.connect(f.maker).ship(f.pharmacy.address, l)],
        ["receiveShipment", (l) => f.ledger.connect(f.distributor).receiveShipment(id, l)],
        ["returnToSender", (l) => f.ledger.connect(f.maker).returnToSender(id, l)],
        ["decommission", (l) => f.ledger.connect(f.maker).decommission(l, Reason.Destroyed)],
      ];
      for (const [, call] of calls) {
        await expect(call("0x")).to.be.revertedWithCustomError(f.ledger, "InvalidRefList").withArgs(0);
        await expect(call(ragged)).to.be.revertedWithCustomError(f.ledger, "InvalidRefList").withArgs(10);
        await expect(call("0x" + "00".repeat(8)))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRefList")
          .withArgs(8);
      }
    });

    it("Refs.InvalidRef, UnknownRun and UnknownItem", async () => {
      const f = await loadFixture(custodyFixture);
      const badLevel = (BigInt(f.runId) << 40n) | (3n << 32n);
      const runZero = 1n << 32n; // case 0 of run 0, which encodeRef refuses to build
      for (const ref of [badLevel, runZero]) {
        await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([ref])))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
          .withArgs(ref);
        await expect(f.ledger.connect(f.maker).decommission(packRefs([ref]), Reason.Sample))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
          .withArgs(ref);
        await expect(f.ledger.custodyOf(ref)).to.be.revertedWithCustomError(f.ledger, "InvalidRef").withArgs(ref);
      }
      const id = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 0)]);
      await expect(f.ledger.connect(f.distributor).receiveShipment(id, packRefs([badLevel])))
        .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
        .withArgs(badLevel);

      const wide = (1n << 72n) | caseRef(f.runId, 0);
      await expect(f.ledger.custodyOf(wide)).to.be.revertedWithCustomError(f.ledger, "InvalidRef").withArgs(wide);

      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([unitRef(f.runId + 1, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "UnknownRun")
        .withArgs(f.runId + 1);
      await expect(f.ledger.custodyOf(unitRef(f.runId + 1, 0)))
        .to.be.revertedWithCustomError(f.ledger, "UnknownRun")
        .withArgs(f.runId + 1);
      for (const ref of [unitRef(f.runId, 40), caseRef(f.runId, 4), palletRef(f.runId, 2)]) {
        await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([ref])))
          .to.be.revertedWithCustomError(f.ledger, "UnknownItem")
          .withArgs(ref);
        await expect(f.ledger.custodyOf(ref)).to.be.revertedWithCustomError(f.ledger, "UnknownItem").withArgs(ref);
      }
      // A later bad ref undoes the whole shipment.
      await expect(
        f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([caseRef(f.runId, 1), unitRef(f.runId, 40)])),
      )
        .to.be.revertedWithCustomError(f.ledger, "UnknownItem")
        .withArgs(unitRef(f.runId, 40));
      await expectCustody(f.ledger, [caseRef(f.runId, 1)], [MAKER_ID, 0n, false]);
    });

    it("UnitDispensed: a dispensed unit cannot be shipped, nor its (opened) case", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(f.runId, 0)]);
      await f.ledger.connect(f.pharmacy).dispense(packRefs([unitRef(f.runId, 2)]), ethers.ZeroHash);
      await expect(f.ledger.connect(f.pharmacy).ship(f.otherPharmacy.address, packRefs([unitRef(f.runId, 2)])))
        .to.be.revertedWithCustomError(f.ledger, "UnitDispensed")
        .withArgs(unitRef(f.runId, 2));
      await expect(f.ledger.connect(f.pharmacy).decommission(packRefs([unitRef(f.runId, 2)]), Reason.Destroyed))
        .to.be.revertedWithCustomError(f.ledger, "UnitDispensed")
        .withArgs(unitRef(f.runId, 2));
      await expect(f.ledger.connect(f.pharmacy).ship(f.otherPharmacy.address, packRefs([caseRef(f.runId, 0)])))
        .to.be.revertedWithCustomError(f.ledger, "CaseOpened")
        .withArgs(caseRef(f.runId, 0));
      await expectCustody(f.ledger, [unitRef(f.runId, 2), caseRef(f.runId, 0)], [PHARMACY_ID, 0n, false]);
      // Undispensed units of the case still ship loose.
      await expect(f.ledger.connect(f.pharmacy).ship(f.otherPharmacy.address, packRefs([unitRef(f.runId, 3)]))).to.emit(
        f.ledger,
        "ShipmentCreated",
      );
    });

    it("ItemDecommissioned: decommissioned items cannot move", async () => {
      const f = await loadFixture(custodyFixture);
      await f.ledger
        .connect(f.maker)
        .decommission(packRefs([caseRef(f.runId, 0), unitRef(f.runId, 12)]), Reason.Damaged);
      for (const ref of [caseRef(f.runId, 0), unitRef(f.runId, 0), unitRef(f.runId, 9), unitRef(f.runId, 12)]) {
        await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([ref])))
          .to.be.revertedWithCustomError(f.ledger, "ItemDecommissioned")
          .withArgs(ref);
        await expect(f.ledger.connect(f.maker).decommission(packRefs([ref]), Reason.Damaged))
          .to.be.revertedWithCustomError(f.ledger, "ItemDecommissioned")
          .withArgs(ref);
      }
      // Case 1 was opened by the loose unit and does not ship whole any more.
      await expect(f.ledger.connect(f.maker).ship(f.pharmacy.address, packRefs([caseRef(f.runId, 1)])))
        .to.be.revertedWithCustomError(f.ledger, "CaseOpened")
        .withArgs(caseRef(f.runId, 1));
    });
  });

  describe("decommission", () => {
    it("decommissioning a whole case decommissions its units in custodyOf", async () => {
      const f = await loadFixture(custodyFixture);
      const items = packRefs([caseRef(f.runId, 1)]);
      await expect(f.ledger.connect(f.maker).decommission(items, Reason.Destroyed))
        .to.emit(f.ledger, "Decommissioned")
        .withArgs(MAKER_ID, Reason.Destroyed, items);
      await expectCustody(f.ledger, [caseRef(f.runId, 1), ...units(f.runId, 10, 20)], [MAKER_ID, 0n, true]);
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 0), caseRef(f.runId, 0), ...units(f.runId, 0, 10), unitRef(f.runId, 20)],
        [MAKER_ID, 0n, false],
      );
    });

    it("decommissioning a pallet decommissions its cases and units; a decommissioned case stays out of its pallet", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.distributor, [palletRef(f.runId, 1)]);
      const items = packRefs([palletRef(f.runId, 1)]);
      await expect(f.ledger.connect(f.distributor).decommission(items, Reason.Stolen))
        .to.emit(f.ledger, "Decommissioned")
        .withArgs(DISTRIBUTOR_ID, Reason.Stolen, items);
      await expectCustody(
        f.ledger,
        [palletRef(f.runId, 1), caseRef(f.runId, 2), caseRef(f.runId, 3), ...units(f.runId, 20, 40)],
        [DISTRIBUTOR_ID, 0n, true],
      );
      await expectCustody(f.ledger, [palletRef(f.runId, 0), unitRef(f.runId, 19)], [MAKER_ID, 0n, false]);
      await expect(f.ledger.connect(f.distributor).ship(f.pharmacy.address, packRefs([unitRef(f.runId, 33)])))
        .to.be.revertedWithCustomError(f.ledger, "ItemDecommissioned")
        .withArgs(unitRef(f.runId, 33));

      // A case decommissioned on its own does not travel with the pallet.
      await f.ledger.connect(f.maker).decommission(packRefs([caseRef(f.runId, 0)]), Reason.Sample);
      const id = await ship(f.ledger, f.maker, f.pharmacy, [palletRef(f.runId, 0)]);
      await expectCustody(f.ledger, [caseRef(f.runId, 0), unitRef(f.runId, 5)], [MAKER_ID, 0n, true]);
      await expectCustody(f.ledger, [caseRef(f.runId, 1), unitRef(f.runId, 15)], [MAKER_ID, id, false]);
    });

    it("decommissioning a single unit opens its case and leaves the other units alone", async () => {
      const f = await loadFixture(custodyFixture);
      await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(f.runId, 2)]);
      await expect(f.ledger.connect(f.pharmacy).decommission(packRefs([unitRef(f.runId, 21)]), Reason.Sample))
        .to.emit(f.ledger, "Decommissioned")
        .withArgs(PHARMACY_ID, Reason.Sample, packRefs([unitRef(f.runId, 21)]));
      await expectCustody(f.ledger, [unitRef(f.runId, 21)], [PHARMACY_ID, 0n, true]);
      await expectCustody(
        f.ledger,
        [caseRef(f.runId, 2), unitRef(f.runId, 20), ...units(f.runId, 22, 30)],
        [PHARMACY_ID, 0n, false],
      );
      await expect(f.ledger.connect(f.pharmacy).decommission(packRefs([caseRef(f.runId, 2)]), Reason.Destroyed))
        .to.be.revertedWithCustomError(f.ledger, "CaseOpened")
        .withArgs(caseRef(f.runId, 2));
      // The remaining units can be decommissioned one by one.
      await f.ledger.connect(f.pharmacy).decommission(packRefs(units(f.runId, 22, 30)), Reason.Destroyed);
      await expectCustody(f.ledger, units(f.runId, 22, 30), [PHARMACY_ID, 0n, true]);
      await expectCustody(f.ledger, [unitRef(f.runId, 20)], [PHARMACY_ID, 0n, false]);
    });
  });
});
