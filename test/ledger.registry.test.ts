import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import type { DrugLedger } from "../typechain-types";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import {
  ADMIN_DELAY,
  DAY,
  Role,
  caseRef,
  commissionRun,
  deployLedger,
  palletRef,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";
import { buildRun, demoRunCodes, type RunPayload } from "../backend/chain/runs";
import { Level } from "../backend/codes/refs";
import { merkleLevels, merkleProof, treePosition, type RunShape } from "../backend/codes/run";

// ---------------------------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------------------------

const MAX_SHELF_LIFE = 20 * 365 * DAY;

/** Appends the GS1 mod-10 check digit to 13 data digits. */
function gtin14(data13: string): string {
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += Number(data13[i]) * (i % 2 === 0 ? 3 : 1);
  return data13 + String((10 - (sum % 10)) % 10);
}

/** A GTIN-14 whose check digit is off by one. */
function badGtin14(data13: string): string {
  const good = gtin14(data13);
  return good.slice(0, 13) + String((Number(good[13]) + 1) % 10);
}

let serialBase = 900_000_000;

/** Builds a run payload of fresh demo codes (independent of the shared helper's serial counter). */
function freshRun(shape: RunShape): RunPayload {
  const run = buildRun(demoRunCodes("8612345", shape, serialBase), shape);
  serialBase += 100_000;
  return run;
}

function hex(b: Buffer): string {
  return "0x" + b.toString("hex");
}

/** Witness from an explicit list of positions. */
function witnessOf(positions: number[]): string {
  const w = Buffer.alloc(positions.length * 2);
  positions.forEach((p, k) => w.writeUInt16BE(p, k * 2));
  return hex(w);
}

/** The stable sorted order of positions by hash (what a naive witness builder would produce, duplicates included). */
function sortedPositions(hashes: Buffer[]): number[] {
  return hashes.map((_, i) => i).sort((a, b) => Buffer.compare(hashes[a]!, hashes[b]!) || a - b);
}

async function latestTimestamp(): Promise<number> {
  return (await ethers.provider.getBlock("latest"))!.timestamp;
}

async function commissionPayload(
  ledger: DrugLedger,
  maker: HardhatEthersSigner,
  batchId: bigint | number,
  run: RunPayload,
) {
  const { unitCount, unitsPerCase, casesPerPallet } = run.shape;
  return ledger.connect(maker).commission(batchId, unitCount, unitsPerCase, casesPerPallet, run.codes, run.witness);
}

/** The fixture's product code, which every demo code of `freshRun` and `commissionRun` names. */
const PRODUCT_CODE = "8612345";

const MAKER_ID = 1;
const OTHER_MAKER_ID = 2;
const DISTRIBUTOR_ID = 3;
const PHARMACY_ID = 4;
const OTHER_PHARMACY_ID = 5;
const INSURER_ID = 6;
const OTHER_INSURER_ID = 7;

// ---------------------------------------------------------------------------------------------------------------
// Participants
// ---------------------------------------------------------------------------------------------------------------

describe("DrugLedger registry", () => {
  describe("Participants", () => {
    it("records the fixture's participants with sequential ids (participantOf / accountOf)", async () => {
      const f = await loadFixture(deployLedger);
      const expected: [HardhatEthersSigner, number, number][] = [
        [f.maker, MAKER_ID, Role.Manufacturer],
        [f.otherMaker, OTHER_MAKER_ID, Role.Manufacturer],
        [f.distributor, DISTRIBUTOR_ID, Role.Distributor],
        [f.pharmacy, PHARMACY_ID, Role.Pharmacy],
        [f.otherPharmacy, OTHER_PHARMACY_ID, Role.Pharmacy],
        [f.insurer, INSURER_ID, Role.Insurer],
        [f.otherInsurer, OTHER_INSURER_ID, Role.Insurer],
      ];
      for (const [signer, id, role] of expected) {
        const p = await f.ledger.participantOf(signer.address);
        expect(p.id).to.equal(id);
        expect(p.role).to.equal(role);
        expect(p.suspended).to.equal(false);
        expect(await f.ledger.accountOf(id)).to.equal(signer.address);
      }
      const none = await f.ledger.participantOf(f.outsider.address);
      expect(none.id).to.equal(0);
      expect(none.role).to.equal(Role.None);
      expect(none.suspended).to.equal(false);
      expect(await f.ledger.accountOf(0)).to.equal(ethers.ZeroAddress);
      expect(await f.ledger.accountOf(8)).to.equal(ethers.ZeroAddress);
    });

    it("onboards an organisation, emitting ParticipantOnboarded and RoleGranted with their args", async () => {
      const f = await loadFixture(deployLedger);
      const tx = f.ledger
        .connect(f.regulator)
        .onboard(f.outsider.address, Role.Distributor, "Carrier Ltd", "LIC-42", "310000");
      await expect(tx)
        .to.emit(f.ledger, "ParticipantOnboarded")
        .withArgs(f.outsider.address, 8, Role.Distributor, "Carrier Ltd", "LIC-42", "310000");
      await expect(tx)
        .to.emit(f.ledger, "RoleGranted")
        .withArgs(await f.ledger.DISTRIBUTOR_ROLE(), f.outsider.address, f.regulator.address);
      const p = await f.ledger.participantOf(f.outsider.address);
      expect([p.id, p.role, p.suspended]).to.deep.equal([8n, BigInt(Role.Distributor), false]);
      expect(await f.ledger.accountOf(8)).to.equal(f.outsider.address);
      expect(await f.ledger.hasRole(await f.ledger.DISTRIBUTOR_ROLE(), f.outsider.address)).to.equal(true);
      expect(await f.ledger.hasRole(await f.ledger.PHARMACY_ROLE(), f.outsider.address)).to.equal(false);
    });

    it("returns the new participant id from onboard (staticCall)", async () => {
      const f = await loadFixture(deployLedger);
      const id = await f.ledger
        .connect(f.regulator)
        .onboard.staticCall(f.outsider.address, Role.Pharmacy, "P", "L", "R");
      expect(id).to.equal(8n);
    });

    it("rejects onboarding twice (AlreadyOnboarded), Role.None (InvalidRole) and the zero address (InvalidAccount)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.regulator).onboard(f.maker.address, Role.Pharmacy, "x", "y", "z"))
        .to.be.revertedWithCustomError(f.ledger, "AlreadyOnboarded")
        .withArgs(f.maker.address);
      await expect(
        f.ledger.connect(f.regulator).onboard(f.outsider.address, Role.None, "x", "y", "z"),
      ).to.be.revertedWithCustomError(f.ledger, "InvalidRole");
      await expect(
        f.ledger.connect(f.regulator).onboard(ethers.ZeroAddress, Role.Pharmacy, "x", "y", "z"),
      ).to.be.revertedWithCustomError(f.ledger, "InvalidAccount");
      // Out-of-range enum values are refused by the ABI decoder (plain revert, no data).
      await expect(f.ledger.connect(f.regulator).onboard(f.outsider.address, 5, "x", "y", "z")).to.be.reverted;
    });

    it("only regulators onboard, suspend and reinstate", async () => {
      const f = await loadFixture(deployLedger);
      const regulatorRole = await f.ledger.REGULATOR_ROLE();
      await expect(f.ledger.connect(f.maker).onboard(f.outsider.address, Role.Pharmacy, "x", "y", "z"))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.maker.address, regulatorRole);
      await expect(f.ledger.connect(f.outsider).suspend(f.maker.address, "r"))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.outsider.address, regulatorRole);
      await f.ledger.connect(f.regulator).suspend(f.maker.address, "r");
      await expect(f.ledger.connect(f.pharmacy).reinstate(f.maker.address))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.pharmacy.address, regulatorRole);
      // The admin is the first regulator.
      await expect(f.ledger.connect(f.admin).reinstate(f.maker.address)).to.emit(f.ledger, "ParticipantReinstated");
    });

    it("suspends and reinstates with events, and rejects AlreadySuspended / NotSuspended / NotOnboarded", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.regulator).suspend(f.pharmacy.address, "licence expired"))
        .to.emit(f.ledger, "ParticipantSuspended")
        .withArgs(f.pharmacy.address, PHARMACY_ID, "licence expired");
      expect((await f.ledger.participantOf(f.pharmacy.address)).suspended).to.equal(true);
      await expect(f.ledger.connect(f.regulator).suspend(f.pharmacy.address, "again"))
        .to.be.revertedWithCustomError(f.ledger, "AlreadySuspended")
        .withArgs(f.pharmacy.address);
      await expect(f.ledger.connect(f.regulator).reinstate(f.pharmacy.address))
        .to.emit(f.ledger, "ParticipantReinstated")
        .withArgs(f.pharmacy.address, PHARMACY_ID);
      expect((await f.ledger.participantOf(f.pharmacy.address)).suspended).to.equal(false);
      await expect(f.ledger.connect(f.regulator).reinstate(f.pharmacy.address))
        .to.be.revertedWithCustomError(f.ledger, "NotSuspended")
        .withArgs(f.pharmacy.address);
      await expect(f.ledger.connect(f.regulator).suspend(f.outsider.address, "who?"))
        .to.be.revertedWithCustomError(f.ledger, "NotOnboarded")
        .withArgs(f.outsider.address);
      await expect(f.ledger.connect(f.regulator).reinstate(f.outsider.address))
        .to.be.revertedWithCustomError(f.ledger, "NotOnboarded")
        .withArgs(f.outsider.address);
    });

    it("reports business roles through hasRole only while not suspended", async () => {
      const f = await loadFixture(deployLedger);
      const roles = {
        [Role.Manufacturer]: await f.ledger.MANUFACTURER_ROLE(),
        [Role.Distributor]: await f.ledger.DISTRIBUTOR_ROLE(),
        [Role.Pharmacy]: await f.ledger.PHARMACY_ROLE(),
        [Role.Insurer]: await f.ledger.INSURER_ROLE(),
      };
      const holders: [HardhatEthersSigner, number][] = [
        [f.maker, Role.Manufacturer],
        [f.distributor, Role.Distributor],
        [f.pharmacy, Role.Pharmacy],
        [f.insurer, Role.Insurer],
      ];
      for (const [signer, role] of holders) {
        for (const [r, hash] of Object.entries(roles)) {
          expect(await f.ledger.hasRole(hash, signer.address)).to.equal(Number(r) === role);
        }
      }
      for (const hash of Object.values(roles)) expect(await f.ledger.hasRole(hash, f.outsider.address)).to.equal(false);

      await f.ledger.connect(f.regulator).suspend(f.maker.address, "GMP audit");
      expect(await f.ledger.hasRole(roles[Role.Manufacturer], f.maker.address)).to.equal(false);
      expect(await f.ledger.hasRole(roles[Role.Manufacturer], f.otherMaker.address)).to.equal(true);
      await f.ledger.connect(f.regulator).reinstate(f.maker.address);
      expect(await f.ledger.hasRole(roles[Role.Manufacturer], f.maker.address)).to.equal(true);

      // roleHash maps the enum to the role ids (None to zero).
      expect(await f.ledger.roleHash(Role.None)).to.equal(ethers.ZeroHash);
      for (const [r, hash] of Object.entries(roles)) expect(await f.ledger.roleHash(Number(r))).to.equal(hash);
      expect(roles[Role.Manufacturer]).to.equal(ethers.id("MANUFACTURER_ROLE"));
    });

    it("a suspended manufacturer can write nothing", async () => {
      const f = await loadFixture(deployLedger);
      await f.ledger.connect(f.regulator).suspend(f.maker.address, "r");
      await expect(f.ledger.connect(f.maker).registerProduct("8600001", "n", "a", "s", 1))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
      await expect(f.ledger.connect(f.maker).registerBatch(1, "LOT-Z", 1, 2))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
      await expect(f.ledger.connect(f.maker).recallBatch(1, "r"))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
    });

    it("refuses grantRole of any business role (BusinessRoleNeedsOnboarding)", async () => {
      const f = await loadFixture(deployLedger);
      for (const name of ["MANUFACTURER_ROLE", "DISTRIBUTOR_ROLE", "PHARMACY_ROLE", "INSURER_ROLE"] as const) {
        const role = await f.ledger[name]();
        await expect(f.ledger.connect(f.admin).grantRole(role, f.outsider.address))
          .to.be.revertedWithCustomError(f.ledger, "BusinessRoleNeedsOnboarding")
          .withArgs(role);
        expect(await f.ledger.hasRole(role, f.outsider.address)).to.equal(false);
      }
    });

    it("lets the admin (and only the admin) grant the regulator role, which then onboards", async () => {
      const f = await loadFixture(deployLedger);
      const regulatorRole = await f.ledger.REGULATOR_ROLE();
      expect(await f.ledger.hasRole(regulatorRole, f.admin.address)).to.equal(true);
      expect(await f.ledger.hasRole(regulatorRole, f.regulator.address)).to.equal(true);
      expect(await f.ledger.getRoleAdmin(regulatorRole)).to.equal(ethers.ZeroHash);

      await expect(f.ledger.connect(f.regulator).grantRole(regulatorRole, f.outsider.address))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.regulator.address, ethers.ZeroHash);

      await expect(f.ledger.connect(f.admin).grantRole(regulatorRole, f.outsider.address))
        .to.emit(f.ledger, "RoleGranted")
        .withArgs(regulatorRole, f.outsider.address, f.admin.address);
      expect(await f.ledger.hasRole(regulatorRole, f.outsider.address)).to.equal(true);
      const [, , , , , , , , , , newcomer] = await ethers.getSigners();
      await expect(f.ledger.connect(f.outsider).onboard(newcomer!.address, Role.Pharmacy, "N", "L", "R")).to.emit(
        f.ledger,
        "ParticipantOnboarded",
      );

      await expect(f.ledger.connect(f.admin).revokeRole(regulatorRole, f.outsider.address))
        .to.emit(f.ledger, "RoleRevoked")
        .withArgs(regulatorRole, f.outsider.address, f.admin.address);
      await expect(f.ledger.connect(f.outsider).suspend(f.maker.address, "r"))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.outsider.address, regulatorRole);
    });

    it("refuses granting DEFAULT_ADMIN_ROLE directly", async () => {
      const f = await loadFixture(deployLedger);
      await expect(
        f.ledger.connect(f.admin).grantRole(ethers.ZeroHash, f.outsider.address),
      ).to.be.revertedWithCustomError(f.ledger, "AccessControlEnforcedDefaultAdminRules");
    });

    it("hands over the default admin in two steps after the delay", async () => {
      const f = await loadFixture(deployLedger);
      expect(await f.ledger.defaultAdmin()).to.equal(f.admin.address);
      expect(await f.ledger.defaultAdminDelay()).to.equal(ADMIN_DELAY);

      await expect(f.ledger.connect(f.regulator).beginDefaultAdminTransfer(f.outsider.address))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.regulator.address, ethers.ZeroHash);

      const tx = await f.ledger.connect(f.admin).beginDefaultAdminTransfer(f.outsider.address);
      const schedule = (await latestTimestamp()) + ADMIN_DELAY;
      await expect(tx).to.emit(f.ledger, "DefaultAdminTransferScheduled").withArgs(f.outsider.address, schedule);
      const [pending, pendingSchedule] = await f.ledger.pendingDefaultAdmin();
      expect(pending).to.equal(f.outsider.address);
      expect(pendingSchedule).to.equal(schedule);

      await expect(f.ledger.connect(f.outsider).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(f.ledger, "AccessControlEnforcedDefaultAdminDelay")
        .withArgs(schedule);
      await expect(f.ledger.connect(f.regulator).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(f.ledger, "AccessControlInvalidDefaultAdmin")
        .withArgs(f.regulator.address);

      await time.increase(ADMIN_DELAY);
      await expect(f.ledger.connect(f.outsider).acceptDefaultAdminTransfer())
        .to.emit(f.ledger, "RoleRevoked")
        .withArgs(ethers.ZeroHash, f.admin.address, f.outsider.address)
        .and.to.emit(f.ledger, "RoleGranted")
        .withArgs(ethers.ZeroHash, f.outsider.address, f.outsider.address);
      expect(await f.ledger.defaultAdmin()).to.equal(f.outsider.address);
      expect(await f.ledger.hasRole(ethers.ZeroHash, f.outsider.address)).to.equal(true);
      expect(await f.ledger.hasRole(ethers.ZeroHash, f.admin.address)).to.equal(false);

      const regulatorRole = await f.ledger.REGULATOR_ROLE();
      await expect(f.ledger.connect(f.admin).grantRole(regulatorRole, f.maker.address))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.admin.address, ethers.ZeroHash);
      // One account, one role: the new admin cannot make an onboarded organisation a regulator either.
      await expect(f.ledger.connect(f.outsider).grantRole(regulatorRole, f.otherInsurer.address))
        .to.be.revertedWithCustomError(f.ledger, "OneRolePerAccount")
        .withArgs(f.otherInsurer.address);
      const newRegulator = (await ethers.getSigners())[10]!;
      await expect(f.ledger.connect(f.outsider).grantRole(regulatorRole, newRegulator.address))
        .to.emit(f.ledger, "RoleGranted")
        .withArgs(regulatorRole, newRegulator.address, f.outsider.address);
    });

    // Business roles live in the participant record; suspension takes them away, revoking would change nothing.
    it("refuses to revoke or renounce a business role (BusinessRoleNeedsOnboarding); the role stays", async () => {
      const f = await loadFixture(deployLedger);
      const makerRole = await f.ledger.MANUFACTURER_ROLE();
      const pharmacyRole = await f.ledger.PHARMACY_ROLE();
      await expect(f.ledger.connect(f.admin).revokeRole(makerRole, f.maker.address))
        .to.be.revertedWithCustomError(f.ledger, "BusinessRoleNeedsOnboarding")
        .withArgs(makerRole);
      await expect(f.ledger.connect(f.pharmacy).renounceRole(pharmacyRole, f.pharmacy.address))
        .to.be.revertedWithCustomError(f.ledger, "BusinessRoleNeedsOnboarding")
        .withArgs(pharmacyRole);
      expect(await f.ledger.hasRole(makerRole, f.maker.address)).to.equal(true);
      expect(await f.ledger.hasRole(pharmacyRole, f.pharmacy.address)).to.equal(true);
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  // Products
  // -------------------------------------------------------------------------------------------------------------

  describe("Products", () => {
    it("registers a 7-digit product code with its event and lookups", async () => {
      const f = await loadFixture(deployLedger);
      const tx = f.ledger.connect(f.otherMaker).registerProduct("8600002", "Ibuprofen", "H123", "tablet 10/box", 10);
      await expect(tx)
        .to.emit(f.ledger, "ProductRegistered")
        .withArgs(2, OTHER_MAKER_ID, "8600002", "Ibuprofen", "H123", "tablet 10/box", 10);
      expect(await f.ledger.productIdByCode("8600002")).to.equal(2);
      const p = await f.ledger.productOf(2);
      expect([p.manufacturerId, p.packQuantity]).to.deep.equal([BigInt(OTHER_MAKER_ID), 10n]);
      // The fixture's product.
      expect(await f.ledger.productIdByCode("8612345")).to.equal(1);
      const p1 = await f.ledger.productOf(1);
      expect([p1.manufacturerId, p1.packQuantity]).to.deep.equal([BigInt(MAKER_ID), 24n]);
      expect(await f.ledger.productIdByCode("8699999")).to.equal(0);
      expect((await f.ledger.productOf(99)).manufacturerId).to.equal(0);
    });

    it("registers valid GTIN-14 codes (check digit verified)", async () => {
      const f = await loadFixture(deployLedger);
      await f.ledger
        .connect(f.regulator)
        .assignCodePrefixes(f.maker.address, ["GS1:0614141", "GS1:069500", "GS1:0012345"]);
      const codes = [gtin14("0061414100003"), gtin14("1069500000001"), "00012345600012", "10614141000415"];
      let id = 2;
      for (const code of codes) {
        await expect(f.ledger.connect(f.maker).registerProduct(code, "n", "a", "s", 1))
          .to.emit(f.ledger, "ProductRegistered")
          .withArgs(id, MAKER_ID, code, "n", "a", "s", 1);
        expect(await f.ledger.productIdByCode(code)).to.equal(id);
        id++;
      }
    });

    it("rejects bad lengths, non-digits and bad GTIN check digits (InvalidProductCode)", async () => {
      const f = await loadFixture(deployLedger);
      const bad = [
        "",
        "861234",
        "86123456",
        "8612345678901",
        "000123456000120",
        "861234A",
        "861234:",
        "/612345",
        " 861234",
        "0001234560001A",
        badGtin14("0061414100003"),
        "00012345600013",
        "10614141000416",
      ];
      for (const code of bad) {
        await expect(f.ledger.connect(f.maker).registerProduct(code, "n", "a", "s", 1))
          .to.be.revertedWithCustomError(f.ledger, "InvalidProductCode")
          .withArgs(code);
      }
      // Every wrong check digit is refused, the right one accepted (under a prefix of the maker's).
      await f.ledger.connect(f.regulator).assignCodePrefixes(f.maker.address, ["GS1:9501101"]);
      const data = "0950110153000";
      const good = gtin14(data);
      for (let d = 0; d < 10; d++) {
        const code = data + String(d);
        if (code === good) continue;
        await expect(f.ledger.connect(f.maker).registerProduct(code, "n", "a", "s", 1))
          .to.be.revertedWithCustomError(f.ledger, "InvalidProductCode")
          .withArgs(code);
      }
      await expect(f.ledger.connect(f.maker).registerProduct(good, "n", "a", "s", 1)).to.emit(
        f.ledger,
        "ProductRegistered",
      );
    });

    it("rejects a code registered before (ProductAlreadyRegistered), by any maker", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.maker).registerProduct("8612345", "n", "a", "s", 1))
        .to.be.revertedWithCustomError(f.ledger, "ProductAlreadyRegistered")
        .withArgs("8612345", 1);
      // Another maker is stopped by the prefix first; given the prefix later, by the registration.
      await expect(f.ledger.connect(f.otherMaker).registerProduct("8612345", "n", "a", "s", 1))
        .to.be.revertedWithCustomError(f.ledger, "ProductCodeNotAssigned")
        .withArgs("8612345", MAKER_ID);
      await f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:8612345"]);
      await expect(f.ledger.connect(f.otherMaker).registerProduct("8612345", "n", "a", "s", 1))
        .to.be.revertedWithCustomError(f.ledger, "ProductAlreadyRegistered")
        .withArgs("8612345", 1);
    });

    it("rejects a zero pack quantity (InvalidPackQuantity)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(
        f.ledger.connect(f.maker).registerProduct("8600003", "n", "a", "s", 0),
      ).to.be.revertedWithCustomError(f.ledger, "InvalidPackQuantity");
    });

    it("only active manufacturers register products", async () => {
      const f = await loadFixture(deployLedger);
      const role = await f.ledger.MANUFACTURER_ROLE();
      for (const who of [f.pharmacy, f.distributor, f.insurer, f.outsider, f.admin]) {
        await expect(f.ledger.connect(who).registerProduct("8600004", "n", "a", "s", 1))
          .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  // Batches
  // -------------------------------------------------------------------------------------------------------------

  describe("Batches", () => {
    it("registers a batch with its event and record", async () => {
      const f = await loadFixture(deployLedger);
      const made = 1_700_000_000;
      const expires = made + 365 * DAY;
      await expect(f.ledger.connect(f.maker).registerBatch(1, "LOT-B2", made, expires))
        .to.emit(f.ledger, "BatchRegistered")
        .withArgs(2, 1, MAKER_ID, "LOT-B2", made, expires);
      const b = await f.ledger.batchOf(2);
      expect([b.productId, b.manufacturerId, b.manufacturedOn, b.expiresOn, b.recalled]).to.deep.equal([
        1n,
        BigInt(MAKER_ID),
        BigInt(made),
        BigInt(expires),
        false,
      ]);
      expect((await f.ledger.batchOf(99)).productId).to.equal(0);
      // The same lot under another product is a different batch.
      await f.ledger.connect(f.maker).registerProduct("8600005", "n", "a", "s", 1);
      await expect(f.ledger.connect(f.maker).registerBatch(2, "LOT-B2", made, expires))
        .to.emit(f.ledger, "BatchRegistered")
        .withArgs(3, 2, MAKER_ID, "LOT-B2", made, expires);
    });

    it("accepts lots of 1 and 20 characters, rejects empty and 21-character lots (InvalidLot)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.maker).registerBatch(1, "", 1, 2)).to.be.revertedWithCustomError(
        f.ledger,
        "InvalidLot",
      );
      await expect(f.ledger.connect(f.maker).registerBatch(1, "A".repeat(21), 1, 2)).to.be.revertedWithCustomError(
        f.ledger,
        "InvalidLot",
      );
      await expect(f.ledger.connect(f.maker).registerBatch(1, "A".repeat(20), 1, 2)).to.emit(
        f.ledger,
        "BatchRegistered",
      );
      await expect(f.ledger.connect(f.maker).registerBatch(1, "B", 1, 2)).to.emit(f.ledger, "BatchRegistered");
    });

    it("rejects expiry not after manufacture, or a shelf life over 20 years (InvalidDates)", async () => {
      const f = await loadFixture(deployLedger);
      const made = 1_700_000_000;
      const cases: [number, number][] = [
        [made, made],
        [made, made - 1],
        [made, made + MAX_SHELF_LIFE + 1],
        [0, MAX_SHELF_LIFE + 1],
      ];
      for (const [i, [m, e]] of cases.entries()) {
        await expect(f.ledger.connect(f.maker).registerBatch(1, `LOT-D${i}`, m, e))
          .to.be.revertedWithCustomError(f.ledger, "InvalidDates")
          .withArgs(m, e);
      }
      // Exactly twenty years is allowed.
      await expect(f.ledger.connect(f.maker).registerBatch(1, "LOT-20Y", made, made + MAX_SHELF_LIFE)).to.emit(
        f.ledger,
        "BatchRegistered",
      );
    });

    it("rejects a lot registered before for the product (BatchAlreadyRegistered)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.maker).registerBatch(1, "LOT-A1", 1, 2))
        .to.be.revertedWithCustomError(f.ledger, "BatchAlreadyRegistered")
        .withArgs(1, "LOT-A1", 1);
    });

    it("rejects a batch of another maker's product or an unknown product", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.otherMaker).registerBatch(1, "LOT-X", 1, 2))
        .to.be.revertedWithCustomError(f.ledger, "NotProductManufacturer")
        .withArgs(1, f.otherMaker.address);
      await expect(f.ledger.connect(f.maker).registerBatch(42, "LOT-X", 1, 2))
        .to.be.revertedWithCustomError(f.ledger, "UnknownProduct")
        .withArgs(42);
      await expect(f.ledger.connect(f.pharmacy).registerBatch(1, "LOT-X", 1, 2))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.pharmacy.address, await f.ledger.MANUFACTURER_ROLE());
    });

    it("lets the manufacturer recall its batch, and refuses a second recall (BatchIsRecalled)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.maker).recallBatch(1, "contamination"))
        .to.emit(f.ledger, "BatchRecalled")
        .withArgs(1, f.maker.address, "contamination");
      expect((await f.ledger.batchOf(1)).recalled).to.equal(true);
      await expect(f.ledger.connect(f.maker).recallBatch(1, "again"))
        .to.be.revertedWithCustomError(f.ledger, "BatchIsRecalled")
        .withArgs(1);
      await expect(f.ledger.connect(f.regulator).recallBatch(1, "again"))
        .to.be.revertedWithCustomError(f.ledger, "BatchIsRecalled")
        .withArgs(1);
    });

    it("lets a regulator recall any batch", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.regulator).recallBatch(1, "NMPA order"))
        .to.emit(f.ledger, "BatchRecalled")
        .withArgs(1, f.regulator.address, "NMPA order");
      expect((await f.ledger.batchOf(1)).recalled).to.equal(true);
    });

    it("refuses a recall by another maker (NotBatchManufacturer), a non-maker, or of an unknown batch", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.otherMaker).recallBatch(1, "r"))
        .to.be.revertedWithCustomError(f.ledger, "NotBatchManufacturer")
        .withArgs(1, f.otherMaker.address);
      await expect(f.ledger.connect(f.pharmacy).recallBatch(1, "r"))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.pharmacy.address, await f.ledger.MANUFACTURER_ROLE());
      await expect(f.ledger.connect(f.regulator).recallBatch(7, "r"))
        .to.be.revertedWithCustomError(f.ledger, "UnknownBatch")
        .withArgs(7);
      expect((await f.ledger.batchOf(1)).recalled).to.equal(false);
    });

    it("lifts a recall (regulators only), and refuses lifting when not recalled (BatchNotRecalled)", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.regulator).liftRecall(1, "no recall"))
        .to.be.revertedWithCustomError(f.ledger, "BatchNotRecalled")
        .withArgs(1);
      await f.ledger.connect(f.maker).recallBatch(1, "r");
      await expect(f.ledger.connect(f.maker).liftRecall(1, "mine"))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.maker.address, await f.ledger.REGULATOR_ROLE());
      await expect(f.ledger.connect(f.regulator).liftRecall(1, "false alarm"))
        .to.emit(f.ledger, "BatchRecallLifted")
        .withArgs(1, f.regulator.address, "false alarm");
      expect((await f.ledger.batchOf(1)).recalled).to.equal(false);
      await expect(f.ledger.connect(f.regulator).liftRecall(1, "twice"))
        .to.be.revertedWithCustomError(f.ledger, "BatchNotRecalled")
        .withArgs(1);
      await expect(f.ledger.connect(f.regulator).liftRecall(9, "r"))
        .to.be.revertedWithCustomError(f.ledger, "UnknownBatch")
        .withArgs(9);
      // Recallable again after lifting.
      await expect(f.ledger.connect(f.maker).recallBatch(1, "again")).to.emit(f.ledger, "BatchRecalled");
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  // Commissioning
  // -------------------------------------------------------------------------------------------------------------

  describe("Commissioning", () => {
    it("emits UnitsCommissioned with the off-chain root and the packed codes, and stores the root", async () => {
      const f = await loadFixture(deployLedger);
      const shape = { unitCount: 25, unitsPerCase: 10, casesPerPallet: 2 };
      const run = freshRun(shape);
      expect(run.codes.length).to.equal((25 + 3 + 2) * 12);
      await expect(commissionPayload(f.ledger, f.maker, f.batchId, run))
        .to.emit(f.ledger, "UnitsCommissioned")
        .withArgs(1, f.batchId, MAKER_ID, 25, 10, 2, run.root, hex(run.codes));
      expect(await f.ledger.runRoot(1)).to.equal(run.root);
      expect(await f.ledger.runRoot(2)).to.equal(ethers.ZeroHash);
    });

    it("returns increasing run ids and records the shape, with partial last case and pallet", async () => {
      const f = await loadFixture(deployLedger);
      const shapes: [RunShape, number, number][] = [
        [{ unitCount: 25, unitsPerCase: 10, casesPerPallet: 2 }, 3, 2],
        [{ unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, 4, 2],
        [{ unitCount: 7, unitsPerCase: 3, casesPerPallet: 0 }, 3, 0],
        [{ unitCount: 5, unitsPerCase: 0, casesPerPallet: 0 }, 0, 0],
        [{ unitCount: 1, unitsPerCase: 12, casesPerPallet: 40 }, 1, 1],
        [{ unitCount: 100, unitsPerCase: 7, casesPerPallet: 5 }, 15, 3],
      ];
      let expectedId = 1;
      for (const [shape, caseCount, palletCount] of shapes) {
        const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, shape);
        expect(runId).to.equal(expectedId++);
        const r = await f.ledger.runOf(runId);
        expect([
          r.batchId,
          r.manufacturerId,
          r.unitCount,
          r.unitsPerCase,
          r.caseCount,
          r.casesPerPallet,
          r.palletCount,
        ]).to.deep.equal(
          [f.batchId, MAKER_ID, shape.unitCount, shape.unitsPerCase, caseCount, shape.casesPerPallet, palletCount].map(
            BigInt,
          ),
        );
      }
      expect((await f.ledger.runOf(99)).batchId).to.equal(0);
    });

    it("returns the run id from commission (staticCall)", async () => {
      const f = await loadFixture(deployLedger);
      const run = freshRun({ unitCount: 3, unitsPerCase: 0, casesPerPallet: 0 });
      expect(await f.ledger.connect(f.maker).commission.staticCall(1, 3, 0, 0, run.codes, run.witness)).to.equal(1n);
    });

    it("rejects zero units or pallets without cases (InvalidRunShape), and runs over maxRunCodes codes", async () => {
      const f = await loadFixture(deployLedger);
      await expect(f.ledger.connect(f.maker).commission(1, 0, 10, 0, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "InvalidRunShape")
        .withArgs(0, 10, 0);
      await expect(f.ledger.connect(f.maker).commission(1, 10, 0, 5, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "InvalidRunShape")
        .withArgs(10, 0, 5);
      expect(await f.ledger.maxRunCodes()).to.equal(28_000);
      await expect(f.ledger.connect(f.maker).commission(1, 28_001, 0, 0, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
        .withArgs(28_001, 28_000);
      // 27,800 units in cases of 100 with pallets of 10: 27,800 + 278 + 28 codes.
      await expect(f.ledger.connect(f.maker).commission(1, 27_800, 100, 10, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
        .withArgs(28_106, 28_000);
      // At the widest limit the witness's 2-byte positions allow, 65,535 codes.
      await f.ledger.connect(f.admin).setMaxRunCodes(65_535);
      await expect(f.ledger.connect(f.maker).commission(1, 65_536, 0, 0, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
        .withArgs(65_536, 65_535);
      await expect(f.ledger.connect(f.maker).commission(1, 65_000, 100, 10, "0x", "0x"))
        .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
        .withArgs(65_715, 65_535);
    });

    it("rejects codes or witness of the wrong length (CodesLengthMismatch)", async () => {
      const f = await loadFixture(deployLedger);
      const shape = { unitCount: 25, unitsPerCase: 10, casesPerPallet: 2 };
      const run = freshRun(shape);
      const total = 30;
      await expect(
        f.ledger.connect(f.maker).commission(1, 25, 10, 2, run.codes.subarray(0, run.codes.length - 12), run.witness),
      )
        .to.be.revertedWithCustomError(f.ledger, "CodesLengthMismatch")
        .withArgs(total * 12, (total - 1) * 12);
      await expect(
        f.ledger.connect(f.maker).commission(1, 25, 10, 2, Buffer.concat([run.codes, Buffer.alloc(1)]), run.witness),
      )
        .to.be.revertedWithCustomError(f.ledger, "CodesLengthMismatch")
        .withArgs(total * 12, total * 12 + 1);
      // Shape says pallets of 3 (one pallet), codes carry two pallets.
      await expect(f.ledger.connect(f.maker).commission(1, 25, 10, 3, run.codes, run.witness))
        .to.be.revertedWithCustomError(f.ledger, "CodesLengthMismatch")
        .withArgs((total - 1) * 12, total * 12);
      await expect(f.ledger.connect(f.maker).commission(1, 25, 10, 2, run.codes, run.witness.subarray(2)))
        .to.be.revertedWithCustomError(f.ledger, "CodesLengthMismatch")
        .withArgs(total * 2, (total - 1) * 2);
    });

    it("rejects a run with a duplicate code (DuplicateCode at the repeated code's position)", async () => {
      const f = await loadFixture(deployLedger);
      const shape = { unitCount: 20, unitsPerCase: 0, casesPerPallet: 0 };
      const run = freshRun(shape);
      const hashes = run.hashes.map((h) => Buffer.from(h));
      hashes[13] = Buffer.from(hashes[4]!);
      const order = sortedPositions(hashes);
      const bad = order.findIndex((p, k) => k > 0 && Buffer.compare(hashes[order[k - 1]!]!, hashes[p]!) === 0);
      expect(bad).to.be.greaterThan(0);
      expect([order[bad - 1], order[bad]]).to.deep.equal([4, 13]);
      await expect(f.ledger.connect(f.maker).commission(1, 20, 0, 0, Buffer.concat(hashes), witnessOf(order)))
        .to.be.revertedWithCustomError(f.ledger, "DuplicateCode")
        .withArgs(order[bad]);
      // Pointing the witness twice at the same position is caught the same way, naming that position.
      const twice = [...run.witness.subarray(0, 2), ...run.witness.subarray(0, run.witness.length - 2)];
      await expect(f.ledger.connect(f.maker).commission(1, 20, 0, 0, run.codes, Uint8Array.from(twice)))
        .to.be.revertedWithCustomError(f.ledger, "DuplicateCode")
        .withArgs(run.witness.readUInt16BE(0));
    });

    it("rejects a witness that does not sort the codes ascending, points out of range, or a zero code", async () => {
      const f = await loadFixture(deployLedger);
      const shape = { unitCount: 10, unitsPerCase: 5, casesPerPallet: 0 };
      const run = freshRun(shape);
      const total = 12;
      const order = sortedPositions(run.hashes);
      // Swap two adjacent entries of the correct witness: the first pair is then descending.
      const swapped = [...order];
      [swapped[5], swapped[6]] = [swapped[6]!, swapped[5]!];
      await expect(f.ledger.connect(f.maker).commission(1, 10, 5, 0, run.codes, witnessOf(swapped)))
        .to.be.revertedWithCustomError(f.ledger, "WitnessNotSorted")
        .withArgs(6);
      // Descending order fails at witness entry 1.
      await expect(f.ledger.connect(f.maker).commission(1, 10, 5, 0, run.codes, witnessOf([...order].reverse())))
        .to.be.revertedWithCustomError(f.ledger, "WitnessNotSorted")
        .withArgs(1);
      // A position out of range: witness entry 3 points at position `total`.
      const outOfRange = [...order];
      outOfRange[3] = total;
      await expect(f.ledger.connect(f.maker).commission(1, 10, 5, 0, run.codes, witnessOf(outOfRange)))
        .to.be.revertedWithCustomError(f.ledger, "WitnessIndexOutOfRange")
        .withArgs(3, total);
      // An all-zero code hash sorts first and is refused, naming its position.
      const hashes = run.hashes.map((h) => Buffer.from(h));
      hashes[7] = Buffer.alloc(12);
      await expect(
        f.ledger.connect(f.maker).commission(1, 10, 5, 0, Buffer.concat(hashes), witnessOf(sortedPositions(hashes))),
      )
        .to.be.revertedWithCustomError(f.ledger, "ZeroCode")
        .withArgs(7);
      // The correct witness passes.
      await expect(commissionPayload(f.ledger, f.maker, 1, run)).to.emit(f.ledger, "UnitsCommissioned");
    });

    it("refuses commissioning into a recalled batch, another maker's batch, an unknown batch, or by a non-maker", async () => {
      const f = await loadFixture(deployLedger);
      const run = freshRun({ unitCount: 4, unitsPerCase: 2, casesPerPallet: 0 });
      await expect(commissionPayload(f.ledger, f.otherMaker, 1, run))
        .to.be.revertedWithCustomError(f.ledger, "NotBatchManufacturer")
        .withArgs(1, f.otherMaker.address);
      await expect(commissionPayload(f.ledger, f.maker, 5, run))
        .to.be.revertedWithCustomError(f.ledger, "UnknownBatch")
        .withArgs(5);
      await expect(commissionPayload(f.ledger, f.pharmacy, 1, run))
        .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
        .withArgs(f.pharmacy.address, await f.ledger.MANUFACTURER_ROLE());
      await f.ledger.connect(f.regulator).recallBatch(1, "r");
      await expect(commissionPayload(f.ledger, f.maker, 1, run))
        .to.be.revertedWithCustomError(f.ledger, "BatchIsRecalled")
        .withArgs(1);
      await f.ledger.connect(f.regulator).liftRecall(1, "ok");
      await expect(commissionPayload(f.ledger, f.maker, 1, run)).to.emit(f.ledger, "UnitsCommissioned");
      await f.ledger.connect(f.regulator).suspend(f.maker.address, "r");
      await expect(commissionPayload(f.ledger, f.maker, 1, run))
        .to.be.revertedWithCustomError(f.ledger, "Suspended")
        .withArgs(f.maker.address);
    });

    describe("verifyCode", () => {
      // 70 units, 9 cases (last one partial), 3 pallets (last one partial): 82 codes, 3 leaves, depth 2.
      const shape: RunShape = { unitCount: 70, unitsPerCase: 8, casesPerPallet: 4 };

      async function commissioned() {
        const f: LedgerFixture = await loadFixture(deployLedger);
        const { runId, run } = await commissionRun(f.ledger, f.maker, f.batchId, shape);
        const levels = merkleLevels(run.hashes);
        return { f, runId, run, levels };
      }

      const items: [string, Level, number, (runId: number, i: number) => bigint][] = [
        ["first unit", Level.Unit, 0, unitRef],
        ["unit in the second leaf", Level.Unit, 40, unitRef],
        ["last unit", Level.Unit, 69, unitRef],
        ["first case", Level.Case, 0, caseRef],
        ["partial last case", Level.Case, 8, caseRef],
        ["first pallet", Level.Pallet, 0, palletRef],
        ["partial last pallet (last leaf, zero sibling)", Level.Pallet, 2, palletRef],
      ];
      for (const [label, level, index, refOf] of items) {
        it(`proves the ${label}`, async () => {
          const { f, runId, run, levels } = await commissioned();
          expect(levels.length).to.equal(3);
          const position = treePosition(shape, level, index);
          const { leafCodes, proof } = merkleProof(run.hashes, levels, position);
          expect(proof.length).to.equal(2);
          const ref = refOf(runId, index);
          expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, hex(run.hashes[position]!), leafCodes, proof)).to.equal(
            true,
          );
          // Another item's hash, at the same place, is not this item's code.
          const other = hex(run.hashes[(position + 1) % run.hashes.length]!);
          expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, other, leafCodes, proof)).to.equal(false);
        });
      }

      it("proves a single-leaf run with an empty proof", async () => {
        const f = await loadFixture(deployLedger);
        const small: RunShape = { unitCount: 5, unitsPerCase: 2, casesPerPallet: 0 };
        const { runId, run } = await commissionRun(f.ledger, f.maker, f.batchId, small);
        const levels = merkleLevels(run.hashes);
        const position = treePosition(small, Level.Case, 2);
        const { leafCodes, proof } = merkleProof(run.hashes, levels, position);
        expect(proof).to.deep.equal([]);
        expect(
          await f.ledger.verifyCode(PRODUCT_CODE, caseRef(runId, 2), hex(run.hashes[position]!), leafCodes, []),
        ).to.equal(true);
        expect(
          await f.ledger.verifyCode(PRODUCT_CODE, caseRef(runId, 2), hex(run.hashes[position]!), leafCodes, [
            ethers.ZeroHash,
          ]),
        ).to.equal(false);
      });

      it("returns false for a wrong hash, a wrong chunk, a wrong proof or a wrong proof length", async () => {
        const { f, runId, run, levels } = await commissioned();
        const ref = unitRef(runId, 5);
        const code = hex(run.hashes[5]!);
        const { leafCodes, proof } = merkleProof(run.hashes, levels, 5);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, proof)).to.equal(true);

        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, "0x" + "ab".repeat(12), leafCodes, proof)).to.equal(false);
        // Chunk of another leaf (same length, wrong position).
        const second = merkleProof(run.hashes, levels, 40);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, second.leafCodes, proof)).to.equal(false);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, second.leafCodes, second.proof)).to.equal(false);
        // Chunk with one other code tampered with (the code itself still matches).
        const tampered = Buffer.from(leafCodes.slice(2), "hex");
        tampered.writeUInt8(tampered.readUInt8(20 * 12) ^ 1, 20 * 12);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, hex(tampered), proof)).to.equal(false);
        // Chunk truncated / extended.
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes.slice(0, -24), proof)).to.equal(false);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes + "00".repeat(12), proof)).to.equal(false);
        // Proof too short, too long, or with a wrong sibling.
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, proof.slice(0, 1))).to.equal(false);
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, [...proof, ethers.ZeroHash])).to.equal(
          false,
        );
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, [proof[0]!, ethers.id("x")])).to.equal(
          false,
        );
        expect(await f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, [...proof].reverse())).to.equal(false);
        // The right code and proof under another ref.
        expect(await f.ledger.verifyCode(PRODUCT_CODE, unitRef(runId, 6), code, leafCodes, proof)).to.equal(false);
      });

      it("reverts for an unknown run, an item past the run, or an invalid ref", async () => {
        const { f, runId, run, levels } = await commissioned();
        const { leafCodes, proof } = merkleProof(run.hashes, levels, 0);
        const code = hex(run.hashes[0]!);
        await expect(f.ledger.verifyCode(PRODUCT_CODE, unitRef(runId + 1, 0), code, leafCodes, proof))
          .to.be.revertedWithCustomError(f.ledger, "UnknownRun")
          .withArgs(runId + 1);
        for (const ref of [unitRef(runId, 70), caseRef(runId, 9), palletRef(runId, 3)]) {
          await expect(f.ledger.verifyCode(PRODUCT_CODE, ref, code, leafCodes, proof))
            .to.be.revertedWithCustomError(f.ledger, "UnknownItem")
            .withArgs(ref);
        }
        const badLevel = (BigInt(runId) << 40n) | (3n << 32n);
        await expect(f.ledger.verifyCode(PRODUCT_CODE, badLevel, code, leafCodes, proof))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
          .withArgs(badLevel);
        const runZero = 0n; // unit 0 of run 0, which encodeRef refuses to build
        await expect(f.ledger.verifyCode(PRODUCT_CODE, runZero, code, leafCodes, proof))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
          .withArgs(runZero);
        const wide = (1n << 72n) | unitRef(runId, 0);
        await expect(f.ledger.verifyCode(PRODUCT_CODE, wide, code, leafCodes, proof))
          .to.be.revertedWithCustomError(f.ledger, "InvalidRef")
          .withArgs(wide);
      });
    });
  });
});

describe("Batches: manufacture dates", () => {
  it("refuses a manufacture date in the future, which would stretch the dispensable life (InvalidDates)", async () => {
    const f = await loadFixture(deployLedger);
    const now = await time.latest();
    const manufacturedOn = now + 10 * DAY;
    const expiresOn = manufacturedOn + 365 * DAY;
    await expect(f.ledger.connect(f.maker).registerBatch(f.productId, "LOT-FUTURE", manufacturedOn, expiresOn))
      .to.be.revertedWithCustomError(f.ledger, "InvalidDates")
      .withArgs(manufacturedOn, expiresOn);
  });
});
