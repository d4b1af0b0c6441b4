/**
 * Regression tests for the "Ledger hardening" findings: one describe per finding, each performing the attack or
 * the misuse the finding describes and asserting the rule that now stops it. Against the contracts before the fix
 * (`git show 70d24d1~1:contracts/ledger/...`) every one of these tests fails.
 */
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { ContractTransactionResponse } from "ethers";
import type { DrugLedger } from "../typechain-types";
import { buildRun, demoRunCodes, type RunPayload } from "../backend/chain/runs";
import { consentDomain, signConsent } from "../backend/chain/consent";
import { Level } from "../backend/codes/refs";
import { merkleLevels, merkleProof, treePosition, type RunShape } from "../backend/codes/run";
import {
  ADMIN_DELAY,
  DAY,
  MAKER_PREFIXES,
  OTHER_MAKER_PREFIXES,
  Role,
  caseRef,
  commissionRun,
  consentOf,
  deployLedger,
  idOf,
  packRefs,
  palletRef,
  settlePartialWithConsent,
  settleWithConsent,
  ship,
  shipAndReceive,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";

const RX = ethers.id("rx");
const GENUINE_CODE = "8612345"; // the fixture's product, under the maker's CN:861

/** Appends the GS1 mod-10 check digit to 13 data digits. */
function gtin14(data13: string): string {
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += Number(data13[i]) * (i % 2 === 0 ? 3 : 1);
  return data13 + String((10 - (sum % 10)) % 10);
}

/** Moves the chain to one hour past the next UTC day boundary, so that "N days later" is exactly N day codes. */
async function startOfNextDay(): Promise<void> {
  const now = await time.latest();
  await time.increaseTo((Math.floor(now / DAY) + 1) * DAY + 3600);
}

/** The fixture plus a 40-unit run (cases of 10): cases 0 and 1 delivered to the pharmacy. */
async function pharmacyStock() {
  const f = await deployLedger();
  const { runId, run } = await commissionRun(f.ledger, f.maker, f.batchId, {
    unitCount: 40,
    unitsPerCase: 10,
    casesPerPallet: 0,
  });
  await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(runId, 0), caseRef(runId, 1)]);
  return {
    ...f,
    runId,
    run,
    makerId: await idOf(f.ledger, f.maker),
    otherMakerId: await idOf(f.ledger, f.otherMaker),
    pharmacyId: await idOf(f.ledger, f.pharmacy),
    insurerId: await idOf(f.ledger, f.insurer),
    otherInsurerId: await idOf(f.ledger, f.otherInsurer),
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 1: product codes belong to the maker holding their prefix", () => {
  it("a rival maker can no longer squat another maker's product codes (ProductCodeNotAssigned)", async () => {
    const f = await loadFixture(pharmacyStock);
    // The attack: register the genuine maker's next product code, Chinese or GS1, before it does.
    const squatted = ["8612346", gtin14("0690123000001"), gtin14("1690123000001")];
    for (const code of squatted) {
      await expect(f.ledger.connect(f.otherMaker).registerProduct(code, "Fake", "H0", "box", 1))
        .to.be.revertedWithCustomError(f.ledger, "ProductCodeNotAssigned")
        .withArgs(code, f.makerId);
      expect(await f.ledger.productIdByCode(code)).to.equal(0);
    }
    // A code no regulator assigned to anyone is nobody's to register.
    await expect(f.ledger.connect(f.otherMaker).registerProduct("8700000", "n", "a", "s", 1))
      .to.be.revertedWithCustomError(f.ledger, "ProductCodeNotAssigned")
      .withArgs("8700000", 0);
    // The rightful maker registers them.
    for (const code of squatted) {
      await expect(f.ledger.connect(f.maker).registerProduct(code, "Real", "H1", "box", 1)).to.emit(
        f.ledger,
        "ProductRegistered",
      );
    }
  });

  it("the longest assigned prefix decides (prefixOwnerOf), for Chinese codes and GTINs after the indicator digit", async () => {
    const f = await loadFixture(pharmacyStock);
    expect(MAKER_PREFIXES).to.include("CN:86000");
    expect(OTHER_MAKER_PREFIXES).to.include("CN:8600002");
    expect(await f.ledger.prefixOwnerOf("8600002")).to.equal(f.otherMakerId);
    expect(await f.ledger.prefixOwnerOf("8600003")).to.equal(f.makerId);
    expect(await f.ledger.prefixOwnerOf("8650000")).to.equal(f.otherMakerId);
    expect(await f.ledger.prefixOwnerOf("8700000")).to.equal(0);
    expect(await f.ledger.prefixOwnerOf(gtin14("0690123456789"))).to.equal(f.makerId);
    expect(await f.ledger.prefixOwnerOf(gtin14("5690999000001"))).to.equal(f.otherMakerId);
    expect(await f.ledger.prefixOwnerOf(gtin14("0690124000001"))).to.equal(0);
    // Neither a 7-digit code nor a GTIN-14: nobody's.
    expect(await f.ledger.prefixOwnerOf("861234")).to.equal(0);
    await expect(f.ledger.connect(f.otherMaker).registerProduct("8600002", "n", "a", "s", 1)).to.emit(
      f.ledger,
      "ProductRegistered",
    );
    await expect(f.ledger.connect(f.maker).registerProduct("8600004", "n", "a", "s", 1)).to.emit(
      f.ledger,
      "ProductRegistered",
    );
  });

  it("assigns prefixes to one maker at a time (CodePrefixAssigned, CodePrefixTaken, InvalidCodePrefix)", async () => {
    const f = await loadFixture(pharmacyStock);
    await expect(f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:87", "GS1:4006381"]))
      .to.emit(f.ledger, "CodePrefixAssigned")
      .withArgs(f.otherMakerId, "CN:87")
      .and.to.emit(f.ledger, "CodePrefixAssigned")
      .withArgs(f.otherMakerId, "GS1:4006381");
    // Assigning a maker its own prefix again changes nothing; another maker's is taken.
    await f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:87"]);
    await expect(f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:88", "CN:861"]))
      .to.be.revertedWithCustomError(f.ledger, "CodePrefixTaken")
      .withArgs("CN:861", f.makerId);
    expect(await f.ledger.prefixOwnerOf("8800000")).to.equal(0); // the whole call was rolled back
    const invalid = ["", "CN:", "CN:12345678", "CN:12a", "cn:1", "GS1:123", "GS1:1234567890123", "GS1:12x4", "X:1"];
    for (const prefix of invalid) {
      await expect(f.ledger.connect(f.regulator).assignCodePrefixes(f.maker.address, [prefix]))
        .to.be.revertedWithCustomError(f.ledger, "InvalidCodePrefix")
        .withArgs(prefix);
    }
    for (const prefix of ["CN:1", "CN:1234567", "GS1:1234", "GS1:123456789012"]) {
      await f.ledger.connect(f.regulator).assignCodePrefixes(f.maker.address, [prefix]);
    }
    await expect(f.ledger.connect(f.regulator).assignCodePrefixes(f.pharmacy.address, ["CN:9"]))
      .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
      .withArgs(f.pharmacy.address, await f.ledger.MANUFACTURER_ROLE());
  });

  it("revokes a prefix: registered products stay, new ones are refused, the prefix can go to another maker", async () => {
    const f = await loadFixture(pharmacyStock);
    await expect(f.ledger.connect(f.regulator).revokeCodePrefix("CN:861"))
      .to.emit(f.ledger, "CodePrefixRevoked")
      .withArgs(f.makerId, "CN:861");
    await expect(f.ledger.connect(f.regulator).revokeCodePrefix("CN:861"))
      .to.be.revertedWithCustomError(f.ledger, "CodePrefixNotAssigned")
      .withArgs("CN:861");
    expect(await f.ledger.productIdByCode(GENUINE_CODE)).to.equal(1);
    await expect(f.ledger.connect(f.maker).registerProduct("8619999", "n", "a", "s", 1))
      .to.be.revertedWithCustomError(f.ledger, "ProductCodeNotAssigned")
      .withArgs("8619999", 0);
    await f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:861"]);
    await f.ledger.connect(f.otherMaker).registerProduct("8619999", "n", "a", "s", 1);
  });

  it("lets a regulator reassign a product registered in error (ProductReassigned)", async () => {
    const f = await loadFixture(pharmacyStock);
    // A prefix assigned in error: the other maker registers a code that belongs to the maker.
    await f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:8612399"]);
    await f.ledger.connect(f.otherMaker).registerProduct("8612399", "Squatted", "H9", "box", 1);
    const productId = await f.ledger.productIdByCode("8612399");
    await expect(f.ledger.connect(f.regulator).reassignProduct(productId, f.maker.address, "prefix error"))
      .to.emit(f.ledger, "ProductReassigned")
      .withArgs(productId, f.otherMakerId, f.makerId, "prefix error");
    expect((await f.ledger.productOf(productId)).manufacturerId).to.equal(f.makerId);
    const now = await time.latest();
    await expect(f.ledger.connect(f.otherMaker).registerBatch(productId, "L1", now - DAY, now + 365 * DAY))
      .to.be.revertedWithCustomError(f.ledger, "NotProductManufacturer")
      .withArgs(productId, f.otherMaker.address);
    await f.ledger.connect(f.maker).registerBatch(productId, "L1", now - DAY, now + 365 * DAY);
    await expect(f.ledger.connect(f.regulator).reassignProduct(99, f.maker.address, "x"))
      .to.be.revertedWithCustomError(f.ledger, "UnknownProduct")
      .withArgs(99);
    await expect(f.ledger.connect(f.regulator).reassignProduct(productId, f.distributor.address, "x"))
      .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
      .withArgs(f.distributor.address, await f.ledger.MANUFACTURER_ROLE());
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 2: a code verifies only in runs of the product it names", () => {
  const SHAPE: RunShape = { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 };

  /** The rival's product and batch, to commission copies into. */
  async function rivalBatch(ledger: DrugLedger, rival: HardhatEthersSigner): Promise<bigint> {
    await ledger.connect(rival).registerProduct("8650001", "Rival", "H8", "box", 1);
    const now = await time.latest();
    await ledger
      .connect(rival)
      .registerBatch(await ledger.productIdByCode("8650001"), "RIVAL-1", now - DAY, now + DAY * 365);
    return 2n;
  }

  async function commissionPayload(ledger: DrugLedger, maker: HardhatEthersSigner, batchId: bigint, run: RunPayload) {
    const receipt = await (
      await ledger
        .connect(maker)
        .commission(batchId, SHAPE.unitCount, SHAPE.unitsPerCase, SHAPE.casesPerPallet, run.codes, run.witness)
    ).wait();
    const event = receipt!.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
    return Number(event!.args.runId);
  }

  /** verifyCode of the item at `level`/`index` of a run of `run`'s codes, with the genuine product code. */
  async function verifies(
    ledger: DrugLedger,
    runId: number,
    run: RunPayload,
    level: Level,
    index: number,
    code = GENUINE_CODE,
  ) {
    const position = treePosition(SHAPE, level, index);
    const { leafCodes, proof } = merkleProof(run.hashes, merkleLevels(run.hashes), position);
    const ref =
      level === Level.Unit
        ? unitRef(runId, index)
        : level === Level.Case
          ? caseRef(runId, index)
          : palletRef(runId, index);
    return ledger.verifyCode(code, ref, "0x" + run.hashes[position]!.toString("hex"), leafCodes, proof);
  }

  for (const copyFirst of [false, true]) {
    it(`a rival's copy of the genuine codes, commissioned ${copyFirst ? "first" : "second"}, does not verify`, async () => {
      const f = await loadFixture(deployLedger);
      const genuine = buildRun(demoRunCodes(GENUINE_CODE, SHAPE, 777_000_000), SHAPE);
      const rivalBatchId = await rivalBatch(f.ledger, f.otherMaker);
      // The attack: the genuine run's code hashes are public (UnitsCommissioned); the rival commissions the very
      // same bytes into a run of its own product, before or after the genuine run.
      let copyRun: number;
      let genuineRun: number;
      if (copyFirst) {
        copyRun = await commissionPayload(f.ledger, f.otherMaker, rivalBatchId, genuine);
        genuineRun = await commissionPayload(f.ledger, f.maker, f.batchId, genuine);
      } else {
        genuineRun = await commissionPayload(f.ledger, f.maker, f.batchId, genuine);
        copyRun = await commissionPayload(f.ledger, f.otherMaker, rivalBatchId, genuine);
      }
      expect(await f.ledger.runRoot(copyRun)).to.equal(await f.ledger.runRoot(genuineRun));
      const items: [Level, number][] = [
        [Level.Unit, 0],
        [Level.Unit, 39],
        [Level.Case, 3],
        [Level.Pallet, 1],
      ];
      for (const [level, index] of items) {
        expect(await verifies(f.ledger, genuineRun, genuine, level, index)).to.equal(true, `genuine ${level}/${index}`);
        expect(await verifies(f.ledger, copyRun, genuine, level, index)).to.equal(false, `copy ${level}/${index}`);
      }
      // A scanned code that names no product (X: codes) is only checked against the root.
      expect(await verifies(f.ledger, copyRun, genuine, Level.Unit, 0, "")).to.equal(true);
    });
  }

  it("a unit must be of the product named; a case or pallet may be of another product of the prefix's holder", async () => {
    const f = await loadFixture(deployLedger);
    // The maker's second product, under its CN:86000 prefix, packed in cases whose codes name product 8612345.
    await f.ledger.connect(f.maker).registerProduct("8600001", "Second", "H2", "box", 1);
    const now = await time.latest();
    await f.ledger.connect(f.maker).registerBatch(2, "SECOND-1", now - DAY, now + 365 * DAY);
    const run = buildRun(demoRunCodes("8600001", SHAPE, 888_000_000), SHAPE);
    const runId = await commissionPayload(f.ledger, f.maker, 2n, run);
    expect(await verifies(f.ledger, runId, run, Level.Unit, 3, "8600001")).to.equal(true);
    expect(await verifies(f.ledger, runId, run, Level.Unit, 3, GENUINE_CODE)).to.equal(false);
    expect(await verifies(f.ledger, runId, run, Level.Case, 1, GENUINE_CODE)).to.equal(true);
    expect(await verifies(f.ledger, runId, run, Level.Pallet, 0, GENUINE_CODE)).to.equal(true);
    // Another maker's product code: neither units nor containers.
    expect(await verifies(f.ledger, runId, run, Level.Case, 1, "8650000")).to.equal(false);
    expect(await verifies(f.ledger, runId, run, Level.Unit, 3, "8650000")).to.equal(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 3: settlement needs the dispensing pharmacy's consent", () => {
  it("a rival insurer cannot front-run the pharmacy's insurer, with the insurer's consent or none (InvalidConsent)", async () => {
    const f = await loadFixture(pharmacyStock);
    const units = packRefs([unitRef(f.runId, 0), unitRef(f.runId, 1)]);
    await f.ledger.connect(f.pharmacy).dispense(units, RX);
    const claimRef = ethers.id("claim-1");
    // The pharmacy bills the insurer; the rival sees the consent (in the mempool) and tries to settle first.
    const consent = await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, units);
    for (const attempt of [consent, "0x"]) {
      await expect(f.ledger.connect(f.otherInsurer).settle(claimRef, f.pharmacy.address, units, attempt))
        .to.be.revertedWithCustomError(f.ledger, "InvalidConsent")
        .withArgs(f.pharmacy.address);
    }
    expect(await f.ledger.settlementOf(unitRef(f.runId, 0))).to.equal(0);
    await f.ledger.connect(f.insurer).settle(claimRef, f.pharmacy.address, units, consent);
    expect(await f.ledger.settlementOf(unitRef(f.runId, 0))).to.equal(f.insurerId);
  });

  it("a rival insurer cannot settle and reverse to close the pharmacy's return window", async () => {
    const f = await loadFixture(pharmacyStock);
    const units = packRefs([unitRef(f.runId, 2)]);
    await f.ledger.connect(f.pharmacy).dispense(units, RX);
    // The attack: settle without the pharmacy's consent, then reverse, leaving the pack dispensed for good.
    await expect(f.ledger.connect(f.otherInsurer).settle(ethers.id("grief"), f.pharmacy.address, units, "0x"))
      .to.be.revertedWithCustomError(f.ledger, "InvalidConsent")
      .withArgs(f.pharmacy.address);
    await expect(f.ledger.connect(f.otherInsurer).reverseSettlement(ethers.id("grief"), f.pharmacy.address, units, "x"))
      .to.be.revertedWithCustomError(f.ledger, "NotSettledByInsurer")
      .withArgs(unitRef(f.runId, 2), 0);
    // The patient can still return the pack.
    await expect(f.ledger.connect(f.pharmacy).undoDispense(units)).to.emit(f.ledger, "DispensingUndone");
  });

  it("refuses a consent by another signer, for another insurer, claim, list or quantity, or malformed", async () => {
    const f = await loadFixture(pharmacyStock);
    const u0 = unitRef(f.runId, 0);
    const u1 = unitRef(f.runId, 1);
    const split = unitRef(f.runId, 5);
    await f.ledger.connect(f.pharmacy).dispense(packRefs([u0, u1]), RX);
    await f.ledger.connect(f.pharmacy).dispensePartial(split, 10, RX);
    const claimRef = ethers.id("c");
    const units = packRefs([u0, u1]);
    const { chainId } = await ethers.provider.getNetwork();
    const foreignDomain = consentDomain(chainId, f.outsider.address);
    const wrong: [string, string][] = [
      ["signed by another pharmacy", await consentOf(f.ledger, f.otherPharmacy, f.insurer.address, claimRef, units)],
      ["signed by the insurer itself", await consentOf(f.ledger, f.insurer, f.insurer.address, claimRef, units)],
      ["for another insurer", await consentOf(f.ledger, f.pharmacy, f.otherInsurer.address, claimRef, units)],
      ["for another claim", await consentOf(f.ledger, f.pharmacy, f.insurer.address, ethers.id("d"), units)],
      ["for fewer units", await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, packRefs([u0]))],
      [
        "for the units in another order",
        await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, packRefs([u1, u0])),
      ],
      ["for a split quantity", await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, units, 1)],
      [
        "for another ledger",
        await signConsent(f.pharmacy, foreignDomain, { insurer: f.insurer.address, claimRef, units, quantity: 0 }),
      ],
      ["too short", "0xdeadbeef"],
      ["65 zero bytes", "0x" + "00".repeat(65)],
    ];
    for (const [why, consent] of wrong) {
      await expect(f.ledger.connect(f.insurer).settle(claimRef, f.pharmacy.address, units, consent), why)
        .to.be.revertedWithCustomError(f.ledger, "InvalidConsent")
        .withArgs(f.pharmacy.address);
    }
    await settleWithConsent(f.ledger, f.insurer, f.pharmacy, claimRef, units);
    // Split packs: the consent names the pack and the doses.
    const splitUnits = packRefs([split]);
    const wrongSplit = [
      await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, splitUnits, 3),
      await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, splitUnits, 0),
      await consentOf(f.ledger, f.pharmacy, f.insurer.address, claimRef, packRefs([u0]), 2),
      await consentOf(f.ledger, f.pharmacy, f.otherInsurer.address, claimRef, splitUnits, 2),
    ];
    for (const consent of wrongSplit) {
      await expect(f.ledger.connect(f.insurer).settlePartial(claimRef, f.pharmacy.address, split, 2, consent))
        .to.be.revertedWithCustomError(f.ledger, "InvalidConsent")
        .withArgs(f.pharmacy.address);
    }
    await settlePartialWithConsent(f.ledger, f.insurer, f.pharmacy, claimRef, split, 2);
    expect((await f.ledger.dispensingOf(split)).splitSettled).to.equal(2n);
  });

  it("uses the documented EIP-712 domain and type", async () => {
    const f = await loadFixture(pharmacyStock);
    const domain = await f.ledger.eip712Domain();
    expect([domain.name, domain.version, domain.chainId, domain.verifyingContract]).to.deep.equal([
      "DrugLedger",
      "1",
      (await ethers.provider.getNetwork()).chainId,
      await f.ledger.getAddress(),
    ]);
    expect(await f.ledger.SETTLEMENT_CONSENT_TYPEHASH()).to.equal(
      ethers.id("SettlementConsent(address insurer,bytes32 claimRef,bytes units,uint32 quantity)"),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

/**
 * The previous contracts kept, per 4,096-unit section, an 8,192-place claim table that reversals never freed: a
 * claim probed up to 256 places from `claimId & 8191` and the section's settlements failed with
 * SectionClaimTableFull once those were taken. This twin of that table shows the attack below would have filled it.
 */
function oldClaimTable(claimIds: string[]): Set<number> {
  const taken = new Set<number>();
  for (const id of claimIds) {
    const home = Number(BigInt(id) & 8191n);
    for (let probe = 0; probe < 256; probe++) {
      const place = (home + probe) & 8191;
      if (!taken.has(place)) {
        taken.add(place);
        break;
      }
    }
  }
  return taken;
}

const claimIdFor = (insurerId: bigint, claimRef: string): string =>
  ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["uint32", "bytes32"], [insurerId, claimRef]));

describe("Hardening 4: no shared claim tables (settled units name their insurer)", () => {
  it("an insurer settling and reversing under hundreds of fresh claim references blocks nobody", async function () {
    this.timeout(120_000);
    const f = await loadFixture(pharmacyStock);
    const target = 0; // the old tables' place the victim's claim would have started probing from
    const WINDOW = 32n;
    const ATTACK_CLAIMS = 300;
    // The attacker's fresh claim references, chosen so that their claim ids cluster where the victim's would go.
    const attackRefs: string[] = [];
    for (let i = 1n; attackRefs.length < ATTACK_CLAIMS; i++) {
      const ref = ethers.toBeHex(i, 32);
      if ((BigInt(claimIdFor(f.insurerId, ref)) & 8191n) < WINDOW) attackRefs.push(ref);
    }
    let victimRef = "";
    for (let i = 1n; !victimRef; i++) {
      const ref = ethers.toBeHex(i << 128n, 32);
      if ((BigInt(claimIdFor(f.otherInsurerId, ref)) & 8191n) === BigInt(target)) victimRef = ref;
    }
    const taken = oldClaimTable(attackRefs.map((ref) => claimIdFor(f.insurerId, ref)));
    for (let place = target; place < target + 256; place++)
      expect(taken.has(place), `old place ${place}`).to.equal(true);

    // The attack, on one unit of section 0: settle and reverse it under each fresh reference.
    const u0 = unitRef(f.runId, 0);
    await f.ledger.connect(f.pharmacy).dispense(packRefs([u0, unitRef(f.runId, 1)]), RX);
    for (const ref of attackRefs) {
      await settleWithConsent(f.ledger, f.insurer, f.pharmacy, ref, packRefs([u0]));
      await f.ledger.connect(f.insurer).reverseSettlement(ref, f.pharmacy.address, packRefs([u0]), "churn");
    }
    // The victim settles a unit of the same section, and so does the attacker.
    await expect(settleWithConsent(f.ledger, f.otherInsurer, f.pharmacy, victimRef, packRefs([unitRef(f.runId, 1)])))
      .to.emit(f.ledger, "UnitsSettled")
      .withArgs(
        claimIdFor(f.otherInsurerId, victimRef),
        f.otherInsurerId,
        f.pharmacyId,
        victimRef,
        packRefs([unitRef(f.runId, 1)]),
      );
    await settleWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("last"), packRefs([u0]));
    expect(await f.ledger.settlementOf(unitRef(f.runId, 1))).to.equal(f.otherInsurerId);
    expect(await f.ledger.settlementOf(u0)).to.equal(f.insurerId);
    // Reversed units stayed dispensed with their return window closed.
    await f.ledger.connect(f.insurer).reverseSettlement(ethers.id("last"), f.pharmacy.address, packRefs([u0]), "x");
    expect((await f.ledger.dispensingOf(u0)).dispensed).to.equal(true);
    await expect(f.ledger.connect(f.pharmacy).undoDispense(packRefs([u0])))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(u0);
  });

  it("names the insurer that settled (UnitAlreadySettled, NotSettledByInsurer, settlementOf)", async () => {
    const f = await loadFixture(pharmacyStock);
    const u = unitRef(f.runId, 3);
    await f.ledger.connect(f.pharmacy).dispense(packRefs([u]), RX);
    expect(await f.ledger.settlementOf(u)).to.equal(0);
    await settleWithConsent(f.ledger, f.otherInsurer, f.pharmacy, ethers.id("a"), packRefs([u]));
    expect(await f.ledger.settlementOf(u)).to.equal(f.otherInsurerId);
    await expect(settleWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("a"), packRefs([u])))
      .to.be.revertedWithCustomError(f.ledger, "UnitAlreadySettled")
      .withArgs(u, f.otherInsurerId);
    await expect(f.ledger.connect(f.insurer).reverseSettlement(ethers.id("a"), f.pharmacy.address, packRefs([u]), "x"))
      .to.be.revertedWithCustomError(f.ledger, "NotSettledByInsurer")
      .withArgs(u, f.otherInsurerId);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 5: one account, one role", () => {
  it("a regulator cannot onboard its own account (or the admin's) and then settle through it (OneRolePerAccount)", async () => {
    const f = await loadFixture(pharmacyStock);
    for (const who of [f.regulator, f.admin]) {
      await expect(f.ledger.connect(f.regulator).onboard(who.address, Role.Insurer, "Self", "LIC", "110000"))
        .to.be.revertedWithCustomError(f.ledger, "OneRolePerAccount")
        .withArgs(who.address);
    }
    expect(await f.ledger.hasRole(await f.ledger.INSURER_ROLE(), f.regulator.address)).to.equal(false);
  });

  it("no onboarded organisation becomes regulator or admin (grantRole, acceptDefaultAdminTransfer)", async () => {
    const f = await loadFixture(pharmacyStock);
    const regulatorRole = await f.ledger.REGULATOR_ROLE();
    for (const who of [f.insurer, f.pharmacy, f.maker]) {
      await expect(f.ledger.connect(f.admin).grantRole(regulatorRole, who.address))
        .to.be.revertedWithCustomError(f.ledger, "OneRolePerAccount")
        .withArgs(who.address);
    }
    await f.ledger.connect(f.admin).beginDefaultAdminTransfer(f.insurer.address);
    await time.increase(ADMIN_DELAY + 1);
    await expect(f.ledger.connect(f.insurer).acceptDefaultAdminTransfer())
      .to.be.revertedWithCustomError(f.ledger, "OneRolePerAccount")
      .withArgs(f.insurer.address);
    expect(await f.ledger.defaultAdmin()).to.equal(f.admin.address);
  });

  it("an account that no longer governs can be onboarded", async () => {
    const f = await loadFixture(pharmacyStock);
    await f.ledger.connect(f.admin).revokeRole(await f.ledger.REGULATOR_ROLE(), f.regulator.address);
    await expect(f.ledger.connect(f.admin).onboard(f.regulator.address, Role.Insurer, "Ex", "LIC", "110000")).to.emit(
      f.ledger,
      "ParticipantOnboarded",
    );
  });

  it("gives insurers indexes 1, 2, 3... and other roles none", async () => {
    const f = await loadFixture(pharmacyStock);
    expect((await f.ledger.participantOf(f.insurer.address)).insurerIndex).to.equal(1);
    expect((await f.ledger.participantOf(f.otherInsurer.address)).insurerIndex).to.equal(2);
    expect((await f.ledger.participantOf(f.pharmacy.address)).insurerIndex).to.equal(0);
    const [newcomer] = (await ethers.getSigners()).slice(12);
    await f.ledger.connect(f.regulator).onboard(newcomer!.address, Role.Insurer, "Third", "LIC", "110000");
    expect((await f.ledger.participantOf(newcomer!.address)).insurerIndex).to.equal(3);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 6: runs fit the per-transaction gas cap", () => {
  it("commissions a run of exactly maxRunCodes codes under 2^24 gas, and refuses one code more (RunTooLarge)", async function () {
    this.timeout(120_000);
    const f = await loadFixture(deployLedger);
    const max = Number(await f.ledger.maxRunCodes());
    expect(max).to.equal(28_000);
    // 27,695 units in cases of 100 (277 cases) on pallets of 10 (28 pallets): 28,000 codes.
    const shape: RunShape = { unitCount: 27_695, unitsPerCase: 100, casesPerPallet: 10 };
    const run = buildRun(demoRunCodes(GENUINE_CODE, shape, 600_000_000), shape);
    expect(run.codes.length / 12).to.equal(max);
    const tx = await f.ledger.connect(f.maker).commission(1, 27_695, 100, 10, run.codes, run.witness);
    const receipt = await tx.wait();
    expect(receipt!.gasUsed).to.be.lessThan(2n ** 24n);
    const over = buildRun(demoRunCodes(GENUINE_CODE, { ...shape, unitCount: 27_696 }, 610_000_000), {
      ...shape,
      unitCount: 27_696,
    });
    await expect(f.ledger.connect(f.maker).commission(1, 27_696, 100, 10, over.codes, over.witness))
      .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
      .withArgs(max + 1, max);
  });

  it("lets the consortium admin set the limit within 1..65,535 (RunLimitChanged, InvalidRunLimit)", async () => {
    const f = await loadFixture(deployLedger);
    await expect(f.ledger.connect(f.admin).setMaxRunCodes(100))
      .to.emit(f.ledger, "RunLimitChanged")
      .withArgs(28_000, 100);
    await expect(f.ledger.connect(f.maker).commission(1, 101, 0, 0, "0x", "0x"))
      .to.be.revertedWithCustomError(f.ledger, "RunTooLarge")
      .withArgs(101, 100);
    for (const bad of [0, 65_536]) {
      await expect(f.ledger.connect(f.admin).setMaxRunCodes(bad))
        .to.be.revertedWithCustomError(f.ledger, "InvalidRunLimit")
        .withArgs(bad);
    }
    await f.ledger.connect(f.admin).setMaxRunCodes(65_535);
    expect(await f.ledger.maxRunCodes()).to.equal(65_535);
    await expect(f.ledger.connect(f.regulator).setMaxRunCodes(1))
      .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
      .withArgs(f.regulator.address, ethers.ZeroHash);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 7: the return window is fixed when a pack is dispensed", () => {
  it("raising the window never reopens a closed return; lowering it never closes an open one early", async () => {
    const f = await loadFixture(pharmacyStock);
    const [early, late] = [unitRef(f.runId, 0), unitRef(f.runId, 1)];
    await startOfNextDay();
    await f.ledger.connect(f.pharmacy).dispense(packRefs([early]), RX); // 10-day window: open to day 10
    await time.increase(11 * DAY);
    await expect(f.ledger.connect(f.pharmacy).undoDispense(packRefs([early])))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(early);
    // The attack on the old rule: raise the window to reopen returns of packs already closed.
    await expect(f.ledger.connect(f.regulator).setReturnWindow(90))
      .to.emit(f.ledger, "ReturnWindowChanged")
      .withArgs(10, 90);
    await expect(f.ledger.connect(f.pharmacy).undoDispense(packRefs([early])))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(early);
    // A pack dispensed now gets 90 days, and keeps them when the window is cut to zero.
    await f.ledger.connect(f.pharmacy).dispense(packRefs([late]), RX);
    await f.ledger.connect(f.regulator).setReturnWindow(0);
    await time.increase(60 * DAY);
    await expect(f.ledger.connect(f.pharmacy).undoDispense(packRefs([late]))).to.emit(f.ledger, "DispensingUndone");
    // Dispensed under the zero-day window: returnable today only.
    await f.ledger.connect(f.pharmacy).dispense(packRefs([late]), RX);
    await time.increase(DAY);
    await expect(f.ledger.connect(f.pharmacy).undoDispense(packRefs([late])))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(late);
  });

  it("split packs keep the window of their latest dispensing day", async () => {
    const f = await loadFixture(pharmacyStock);
    const [closed, open] = [unitRef(f.runId, 2), unitRef(f.runId, 3)];
    await startOfNextDay();
    await f.ledger.connect(f.pharmacy).dispensePartial(closed, 4, RX);
    await time.increase(11 * DAY);
    await f.ledger.connect(f.regulator).setReturnWindow(90);
    await expect(f.ledger.connect(f.pharmacy).undoDispensePartial(closed, 1))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(closed);
    await f.ledger.connect(f.pharmacy).dispensePartial(open, 4, RX); // 90 days from today
    await f.ledger.connect(f.regulator).setReturnWindow(0);
    await time.increase(30 * DAY);
    await expect(f.ledger.connect(f.pharmacy).undoDispensePartial(open, 1)).to.emit(
      f.ledger,
      "PartialDispensingUndone",
    );
    // A new dispensing day takes the window in force that day (zero days): closed tomorrow.
    await f.ledger.connect(f.pharmacy).dispensePartial(open, 2, RX);
    await time.increase(DAY);
    await expect(f.ledger.connect(f.pharmacy).undoDispensePartial(open, 1))
      .to.be.revertedWithCustomError(f.ledger, "ReturnWindowClosed")
      .withArgs(open);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 8: events say who and what", () => {
  it("SettlementReversed and PartialSettlementReversed name insurer, pharmacy and claim reference", async () => {
    const f = await loadFixture(pharmacyStock);
    const [whole, split] = [unitRef(f.runId, 0), unitRef(f.runId, 1)];
    await f.ledger.connect(f.pharmacy).dispense(packRefs([whole]), RX);
    await f.ledger.connect(f.pharmacy).dispensePartial(split, 6, RX);
    const claimRef = ethers.id("c");
    const claimId = claimIdFor(f.insurerId, claimRef);
    await settleWithConsent(f.ledger, f.insurer, f.pharmacy, claimRef, packRefs([whole]));
    await settlePartialWithConsent(f.ledger, f.insurer, f.pharmacy, claimRef, split, 4);
    await expect(f.ledger.connect(f.insurer).reverseSettlement(claimRef, f.pharmacy.address, packRefs([whole]), "r1"))
      .to.emit(f.ledger, "SettlementReversed")
      .withArgs(claimId, f.insurerId, f.pharmacyId, claimRef, packRefs([whole]), "r1");
    await expect(f.ledger.connect(f.insurer).reversePartialSettlement(claimRef, f.pharmacy.address, split, "r2"))
      .to.emit(f.ledger, "PartialSettlementReversed")
      .withArgs(claimId, f.insurerId, f.pharmacyId, claimRef, split, 4, "r2");
  });

  it("ShipmentDiscrepancy fires only when a shipment closes short, never for a partial receipt", async () => {
    const f = await loadFixture(pharmacyStock);
    const items = [caseRef(f.runId, 2), caseRef(f.runId, 3), unitRef(f.runId, 0)];
    const whole = await ship(f.ledger, f.maker, f.distributor, [caseRef(f.runId, 2), caseRef(f.runId, 3)]);
    // Received in two parts: no discrepancy at all.
    for (const part of [[caseRef(f.runId, 2)], [caseRef(f.runId, 3)]]) {
      await expect(f.ledger.connect(f.distributor).receiveShipment(whole, packRefs(part))).not.to.emit(
        f.ledger,
        "ShipmentDiscrepancy",
      );
    }
    expect((await f.ledger.shipmentOf(whole)).discrepancy).to.equal(false);
    // Received in part, the rest returned: the shipment closes short.
    const short = await ship(f.ledger, f.distributor, f.pharmacy, items.slice(0, 2));
    await expect(f.ledger.connect(f.pharmacy).receiveShipment(short, packRefs([items[0]!]))).not.to.emit(
      f.ledger,
      "ShipmentDiscrepancy",
    );
    const distributorId = await idOf(f.ledger, f.distributor);
    await expect(f.ledger.connect(f.distributor).returnToSender(short, packRefs([items[1]!])))
      .to.emit(f.ledger, "ShipmentDiscrepancy")
      .withArgs(short, distributorId, f.pharmacyId, 2, 1, 1);
    expect((await f.ledger.shipmentOf(short)).discrepancy).to.equal(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface PausedFixture extends Awaited<ReturnType<typeof pharmacyStock>> {
  writes: [string, () => Promise<ContractTransactionResponse>][];
}

/** Pending business of every kind, and one call per business write that succeeds when not paused. */
async function pausedFixture(): Promise<PausedFixture> {
  const f = await pharmacyStock();
  const { ledger, maker, distributor, pharmacy, insurer, runId } = f;
  const u = (i: number) => unitRef(runId, i);
  // Pharmacy stock (case 0 and 1): dispensed, split, settled and partly settled units.
  await ledger.connect(pharmacy).dispense(packRefs([u(1), u(2), u(3)]), RX);
  for (const i of [4, 5, 6]) await ledger.connect(pharmacy).dispensePartial(u(i), 5, RX);
  await settleWithConsent(ledger, insurer, pharmacy, ethers.id("s"), packRefs([u(2)]));
  await settlePartialWithConsent(ledger, insurer, pharmacy, ethers.id("s"), u(5), 2);
  const toPharmacy = await ship(ledger, maker, pharmacy, [u(20)]);
  const toDistributor = await ship(ledger, maker, distributor, [u(21)]);
  const consent = await consentOf(ledger, pharmacy, insurer.address, ethers.id("n"), packRefs([u(3)]));
  const splitConsent = await consentOf(ledger, pharmacy, insurer.address, ethers.id("n"), packRefs([u(6)]), 1);
  const fresh = buildRun(
    demoRunCodes(GENUINE_CODE, { unitCount: 3, unitsPerCase: 0, casesPerPallet: 0 }, 990_000_000),
    {
      unitCount: 3,
      unitsPerCase: 0,
      casesPerPallet: 0,
    },
  );
  const now = await time.latest();
  const writes: PausedFixture["writes"] = [
    ["registerProduct", () => ledger.connect(maker).registerProduct("8600009", "n", "a", "s", 1)],
    ["registerBatch", () => ledger.connect(maker).registerBatch(1, "LOT-P", now - DAY, now + 365 * DAY)],
    ["commission", () => ledger.connect(maker).commission(1, 3, 0, 0, fresh.codes, fresh.witness)],
    ["ship", () => ledger.connect(maker).ship(distributor.address, packRefs([u(22)]))],
    ["receiveShipment", () => ledger.connect(pharmacy).receiveShipment(toPharmacy, packRefs([u(20)]))],
    ["returnToSender", () => ledger.connect(maker).returnToSender(toDistributor, packRefs([u(21)]))],
    ["decommission", () => ledger.connect(maker).decommission(packRefs([u(23)]), 0)],
    ["dispense", () => ledger.connect(pharmacy).dispense(packRefs([u(7)]), RX)],
    ["undoDispense", () => ledger.connect(pharmacy).undoDispense(packRefs([u(1)]))],
    ["dispensePartial", () => ledger.connect(pharmacy).dispensePartial(u(8), 3, RX)],
    ["undoDispensePartial", () => ledger.connect(pharmacy).undoDispensePartial(u(4), 1)],
    ["settle", () => ledger.connect(insurer).settle(ethers.id("n"), pharmacy.address, packRefs([u(3)]), consent)],
    [
      "settlePartial",
      () => ledger.connect(insurer).settlePartial(ethers.id("n"), pharmacy.address, u(6), 1, splitConsent),
    ],
    [
      "reverseSettlement",
      () => ledger.connect(insurer).reverseSettlement(ethers.id("s"), pharmacy.address, packRefs([u(2)]), "r"),
    ],
    [
      "reversePartialSettlement",
      () => ledger.connect(insurer).reversePartialSettlement(ethers.id("s"), pharmacy.address, u(5), "r"),
    ],
  ];
  await ledger.connect(f.regulator).pause();
  return { ...f, writes };
}

describe("Hardening 9: a regulator can pause every business write", () => {
  it("while paused every business write reverts EnforcedPause; once unpaused each of them succeeds", async () => {
    const f = await loadFixture(pausedFixture);
    expect(await f.ledger.paused()).to.equal(true);
    expect(f.writes.map(([name]) => name)).to.have.lengthOf(15);
    for (const [name, write] of f.writes) {
      await expect(write(), name).to.be.revertedWithCustomError(f.ledger, "EnforcedPause");
    }
    await expect(f.ledger.connect(f.regulator).unpause()).to.emit(f.ledger, "Unpaused").withArgs(f.regulator.address);
    for (const [name, write] of f.writes) await expect(write(), name).not.to.be.reverted;
  });

  it("governance keeps working while paused, including a manufacturer's own recall", async () => {
    const f = await loadFixture(pausedFixture);
    const { ledger, regulator, admin, maker, otherMaker } = f;
    const [newcomer] = (await ethers.getSigners()).slice(12);
    const now = await time.latest();
    await ledger.connect(regulator).unpause();
    await ledger.connect(maker).registerBatch(1, "LOT-R1", now - DAY, now + 365 * DAY);
    await ledger.connect(maker).registerBatch(1, "LOT-R2", now - DAY, now + 365 * DAY);
    await ledger.connect(regulator).pause();
    const governance: [string, () => Promise<ContractTransactionResponse>][] = [
      ["onboard", () => ledger.connect(regulator).onboard(newcomer!.address, Role.Pharmacy, "N", "L", "110000")],
      ["suspend", () => ledger.connect(regulator).suspend(f.otherPharmacy.address, "audit")],
      ["reinstate", () => ledger.connect(regulator).reinstate(f.otherPharmacy.address)],
      ["recallBatch (manufacturer)", () => ledger.connect(maker).recallBatch(2, "contamination")],
      ["recallBatch (regulator)", () => ledger.connect(regulator).recallBatch(3, "contamination")],
      ["liftRecall", () => ledger.connect(regulator).liftRecall(3, "cleared")],
      ["assignCodePrefixes", () => ledger.connect(regulator).assignCodePrefixes(otherMaker.address, ["CN:87"])],
      ["revokeCodePrefix", () => ledger.connect(regulator).revokeCodePrefix("CN:87")],
      ["reassignProduct", () => ledger.connect(regulator).reassignProduct(1, otherMaker.address, "audit")],
      ["setReturnWindow", () => ledger.connect(regulator).setReturnWindow(5)],
      ["setMaxRunCodes", () => ledger.connect(admin).setMaxRunCodes(20_000)],
    ];
    for (const [name, call] of governance) await expect(call(), name).not.to.be.reverted;
    expect((await ledger.batchOf(2)).recalled).to.equal(true);
  });

  it("pauses and unpauses once (Paused, EnforcedPause, ExpectedPause), regulators only", async () => {
    const f = await loadFixture(pharmacyStock);
    await expect(f.ledger.connect(f.pharmacy).pause())
      .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
      .withArgs(f.pharmacy.address, await f.ledger.REGULATOR_ROLE());
    await expect(f.ledger.connect(f.regulator).unpause()).to.be.revertedWithCustomError(f.ledger, "ExpectedPause");
    await expect(f.ledger.connect(f.regulator).pause()).to.emit(f.ledger, "Paused").withArgs(f.regulator.address);
    await expect(f.ledger.connect(f.admin).pause()).to.be.revertedWithCustomError(f.ledger, "EnforcedPause");
    await expect(f.ledger.connect(f.insurer).unpause())
      .to.be.revertedWithCustomError(f.ledger, "AccessControlUnauthorizedAccount")
      .withArgs(f.insurer.address, await f.ledger.REGULATOR_ROLE());
    await f.ledger.connect(f.admin).unpause();
    expect(await f.ledger.paused()).to.equal(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("Hardening 10: errors say what went wrong", () => {
  it("settlePartial and reversePartialSettlement of a pack that is not split: UnitNotSplit", async () => {
    const f = await loadFixture(pharmacyStock);
    const [whole, fresh] = [unitRef(f.runId, 0), unitRef(f.runId, 1)];
    await f.ledger.connect(f.pharmacy).dispense(packRefs([whole]), RX);
    for (const u of [whole, fresh]) {
      await expect(settlePartialWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("p"), u, 1))
        .to.be.revertedWithCustomError(f.ledger, "UnitNotSplit")
        .withArgs(u);
      await expect(f.ledger.connect(f.insurer).reversePartialSettlement(ethers.id("p"), f.pharmacy.address, u, "x"))
        .to.be.revertedWithCustomError(f.ledger, "UnitNotSplit")
        .withArgs(u);
    }
  });

  it("suspending a suspended participant: AlreadySuspended; a suspended caller: Suspended", async () => {
    const f = await loadFixture(pharmacyStock);
    await f.ledger.connect(f.regulator).suspend(f.pharmacy.address, "audit");
    await expect(f.ledger.connect(f.regulator).suspend(f.pharmacy.address, "again"))
      .to.be.revertedWithCustomError(f.ledger, "AlreadySuspended")
      .withArgs(f.pharmacy.address);
    await expect(f.ledger.connect(f.pharmacy).dispense(packRefs([unitRef(f.runId, 0)]), RX))
      .to.be.revertedWithCustomError(f.ledger, "Suspended")
      .withArgs(f.pharmacy.address);
  });

  it("commissioning witness failures: DuplicateCode, ZeroCode, WitnessIndexOutOfRange, WitnessNotSorted", async () => {
    const f = await loadFixture(deployLedger);
    const shape: RunShape = { unitCount: 6, unitsPerCase: 0, casesPerPallet: 0 };
    const run = buildRun(demoRunCodes(GENUINE_CODE, shape, 995_000_000), shape);
    const order = [...run.witness].reduce<number[]>(
      (out, _b, i) => (i % 2 ? out : [...out, run.witness.readUInt16BE(i)]),
      [],
    );
    const witness = (positions: number[]) => {
      const w = Buffer.alloc(positions.length * 2);
      positions.forEach((p, k) => w.writeUInt16BE(p, k * 2));
      return w;
    };
    const commission = (codes: Uint8Array, w: Uint8Array) => f.ledger.connect(f.maker).commission(1, 6, 0, 0, codes, w);
    // A repeated code: the sorting witness puts the copy right after the original.
    const hashes = run.hashes.map((h) => Buffer.from(h));
    hashes[4] = Buffer.from(hashes[1]!);
    const sorted = hashes.map((_, i) => i).sort((a, b) => Buffer.compare(hashes[a]!, hashes[b]!) || a - b);
    await expect(commission(Buffer.concat(hashes), witness(sorted)))
      .to.be.revertedWithCustomError(f.ledger, "DuplicateCode")
      .withArgs(4);
    // A zero code.
    const zeroed = run.hashes.map((h) => Buffer.from(h));
    zeroed[2] = Buffer.alloc(12);
    const zeroSorted = zeroed.map((_, i) => i).sort((a, b) => Buffer.compare(zeroed[a]!, zeroed[b]!));
    await expect(commission(Buffer.concat(zeroed), witness(zeroSorted)))
      .to.be.revertedWithCustomError(f.ledger, "ZeroCode")
      .withArgs(2);
    // A witness entry past the run, and a witness out of order.
    await expect(commission(run.codes, witness([...order.slice(0, 5), 6])))
      .to.be.revertedWithCustomError(f.ledger, "WitnessIndexOutOfRange")
      .withArgs(5, 6);
    await expect(commission(run.codes, witness([order[1]!, order[0]!, ...order.slice(2)])))
      .to.be.revertedWithCustomError(f.ledger, "WitnessNotSorted")
      .withArgs(1);
    await expect(commission(run.codes, run.witness)).to.emit(f.ledger, "UnitsCommissioned");
  });
});

describe("Hardening, second review: what the first fixes left open", () => {
  async function dispensedPack(f: LedgerFixture, split: boolean) {
    const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
      unitCount: 10,
      unitsPerCase: 10,
      casesPerPallet: 0,
    });
    await shipAndReceive(f.ledger, f.maker, f.pharmacy, [caseRef(runId, 0)]);
    const unit = unitRef(runId, 0);
    if (split) await f.ledger.connect(f.pharmacy).dispensePartial(unit, 10, ethers.ZeroHash);
    else await f.ledger.connect(f.pharmacy).dispense(packRefs([unit]), ethers.ZeroHash);
    return unit;
  }

  it("a split-pack consent settles its doses once: replaying it cannot take the doses billed to another insurer", async () => {
    const f = await loadFixture(deployLedger);
    const unit = await dispensedPack(f, true);
    const claim = ethers.id("two-doses");
    const consent = await consentOf(f.ledger, f.pharmacy, f.insurer.address, claim, packRefs([unit]), 2);
    await f.ledger.connect(f.insurer).settlePartial(claim, f.pharmacy.address, unit, 2, consent);
    const claimId = await f.ledger.claimIdOf(await idOf(f.ledger, f.insurer), claim);
    await expect(f.ledger.connect(f.insurer).settlePartial(claim, f.pharmacy.address, unit, 2, consent))
      .to.be.revertedWithCustomError(f.ledger, "AlreadySettledUnderClaim")
      .withArgs(unit, claimId);
    // The other insurer's eight doses are still there for it to settle.
    await settlePartialWithConsent(f.ledger, f.otherInsurer, f.pharmacy, ethers.id("eight-doses"), unit, 8);
    expect((await f.ledger.dispensingOf(unit)).splitSettled).to.equal(10n);
  });

  it("after reassignProduct the maker that registered the product in error commissions no more of it", async () => {
    const f = await loadFixture(deployLedger);
    await f.ledger.connect(f.regulator).assignCodePrefixes(f.otherMaker.address, ["CN:8612399"]);
    await f.ledger.connect(f.otherMaker).registerProduct("8612399", "Squatted", "H9", "box", 1);
    const now = await time.latest();
    await f.ledger.connect(f.otherMaker).registerBatch(2, "SQ-1", now - DAY, now + 365 * DAY);
    await f.ledger.connect(f.regulator).reassignProduct(2, f.maker.address, "prefix error");
    const shape = { unitCount: 4, unitsPerCase: 0, casesPerPallet: 0 };
    const run = buildRun(demoRunCodes("8612399", shape, 123_000_000), shape);
    await expect(f.ledger.connect(f.otherMaker).commission(2, 4, 0, 0, run.codes, run.witness))
      .to.be.revertedWithCustomError(f.ledger, "NotProductManufacturer")
      .withArgs(2, f.otherMaker.address);
  });

  it("an insurer can still reverse what it paid a pharmacy the regulator has suspended, whole packs and split", async () => {
    const f = await loadFixture(deployLedger);
    const whole = await dispensedPack(f, false);
    const split = await dispensedPack(f, true);
    await settleWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("c"), packRefs([whole]));
    await settlePartialWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("s"), split, 3);
    await f.ledger.connect(f.regulator).suspend(f.pharmacy.address, "fraud");
    await expect(
      f.ledger.connect(f.insurer).reverseSettlement(ethers.id("c"), f.pharmacy.address, packRefs([whole]), "fraud"),
    ).to.emit(f.ledger, "SettlementReversed");
    await expect(
      f.ledger.connect(f.insurer).reversePartialSettlement(ethers.id("s"), f.pharmacy.address, split, "fraud"),
    ).to.emit(f.ledger, "PartialSettlementReversed");
    // Settling for a suspended pharmacy stays refused.
    await expect(settleWithConsent(f.ledger, f.insurer, f.pharmacy, ethers.id("c2"), packRefs([whole])))
      .to.be.revertedWithCustomError(f.ledger, "Suspended")
      .withArgs(f.pharmacy.address);
  });
});
