/**
 * Gas per unit for the ledger's volume operations, on Hardhat's in-process network.
 * Last line of output: one JSON object with the figures the README quotes.
 */
import { ethers } from "hardhat";
import type { ContractTransactionResponse } from "ethers";
import { consentDomain, signConsent } from "../backend/chain/consent";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { caseRef, packRefs, unitRef } from "../backend/codes/refs";
import type { DrugLedger } from "../typechain-types";

const UNITS = 10_000;
const UNITS_PER_CASE = 100;
/** bench:writes' batched shapes: a pharmacy's 5 requests in flight; 10 claims of 10 units a transaction. */
const BASKET = 5;
const CLAIMS_PER_TX = 10;
/** A case no unit has left yet when bench:writes-shaped baskets start on it (cases 9 and 11 are sold out first). */
const SEALED_CASE = 10;
const UNITS_PER_CLAIM = 10;
/** EIP-7825 (Osaka): no transaction may use more than 2^24 gas. */
const TX_GAS_CAP = 2 ** 24;

async function gasOf(tx: Promise<ContractTransactionResponse>): Promise<number> {
  const receipt = await (await tx).wait();
  return Number(receipt!.gasUsed);
}

async function main(): Promise<void> {
  const [admin, maker, distributor, pharmacy, insurer] = await ethers.getSigners();
  const ledger = (await ethers.deployContract("DrugLedger", [0, admin!.address])) as unknown as DrugLedger;
  await ledger.onboard(maker!.address, 1, "Maker", "L1", "110000");
  await ledger.onboard(distributor!.address, 2, "Distributor", "L2", "110000");
  await ledger.onboard(pharmacy!.address, 3, "Pharmacy", "L3", "110000");
  await ledger.onboard(insurer!.address, 4, "Insurer", "L4", "110000");
  await ledger.assignCodePrefixes(maker!.address, ["CN:86123"]);
  await ledger.connect(maker!).registerProduct("8612345", "Amoxicillin 250mg", "H20000001", "capsule 24/box", 24);
  const now = (await ethers.provider.getBlock("latest"))!.timestamp;

  const shape = { unitCount: UNITS, unitsPerCase: UNITS_PER_CASE, casesPerPallet: 0 };
  const run = buildRun(demoRunCodes("8612345", shape, 1), shape);
  const registerGas = await gasOf(
    ledger.connect(maker!).registerBatch(1, "LOT-BENCH", now - 86400, now + 2 * 365 * 86400),
  );
  const commissionGas = await gasOf(
    ledger.connect(maker!).commission(1, UNITS, UNITS_PER_CASE, 0, run.codes, run.witness),
  );
  const runId = 1;
  const cases = packRefs(Array.from({ length: UNITS / UNITS_PER_CASE }, (_, c) => caseRef(runId, c)));
  const shipGas = await gasOf(ledger.connect(maker!).ship(distributor!.address, cases));
  const receiveGas = await gasOf(ledger.connect(distributor!).receiveShipment(1, cases));
  // Second hop, to the pharmacy; measured the same way and reported for comparison.
  const shipGas2 = await gasOf(ledger.connect(distributor!).ship(pharmacy!.address, cases));
  const receiveGas2 = await gasOf(ledger.connect(pharmacy!).receiveShipment(2, cases));

  // 100 units from the same two cases: the second half of case 0 and the first half of case 1.
  const hundred = packRefs(Array.from({ length: 100 }, (_, i) => unitRef(runId, 50 + i)));
  const dispenseGas = await gasOf(ledger.connect(pharmacy!).dispense(hundred, ethers.id("rx-1")));
  const domain = consentDomain((await ethers.provider.getNetwork()).chainId, await ledger.getAddress());
  const settle = async (claimRef: string, units: string) => {
    const consent = await signConsent(pharmacy!, domain, { insurer: insurer!.address, claimRef, units, quantity: 0 });
    return gasOf(ledger.connect(insurer!).settle(claimRef, pharmacy!.address, units, consent));
  };
  const settleGas = await settle(ethers.id("claim-1"), hundred);
  // A single pack sold from an opened case, the everyday case at a pharmacy counter.
  const singleGas = await gasOf(ledger.connect(pharmacy!).dispense(packRefs([unitRef(runId, 49)]), ethers.id("rx-2")));
  // The first pack of a case no unit has left yet: opens the case and starts a fresh status word.
  const singleColdGas = await gasOf(
    ledger.connect(pharmacy!).dispense(packRefs([unitRef(runId, 500)]), ethers.id("rx-3")),
  );
  const settleSingleGas = await settle(ethers.id("claim-2"), packRefs([unitRef(runId, 49)]));

  // The shapes bench:writes' API batching produces: a basket of 5 single-pack requests of one pharmacy (its 5 in
  // flight) from an opened case, and 10 claims of 10 units with their own consents in one settleClaims.
  const basket = packRefs(Array.from({ length: BASKET }, (_, i) => unitRef(runId, 150 + i)));
  const basketGas = await gasOf(ledger.connect(pharmacy!).dispense(basket, ethers.ZeroHash));
  const claimUnits = Array.from({ length: CLAIMS_PER_TX * UNITS_PER_CLAIM }, (_, i) => unitRef(runId, 200 + i));
  await gasOf(ledger.connect(pharmacy!).dispense(packRefs(claimUnits), ethers.ZeroHash));
  const claims = await Promise.all(
    Array.from({ length: CLAIMS_PER_TX }, async (_, k) => {
      const claimRef = ethers.id(`claim-batch-${k}`);
      const units = packRefs(claimUnits.slice(k * UNITS_PER_CLAIM, (k + 1) * UNITS_PER_CLAIM));
      const consent = await signConsent(pharmacy!, domain, { insurer: insurer!.address, claimRef, units, quantity: 0 });
      return { claimRef, pharmacy: pharmacy!.address, units, consent };
    }),
  );
  const settleClaimsGas = await gasOf(ledger.connect(insurer!).settleClaims(claims));

  // bench:writes' own shape: each pharmacy sells the 100 units of a sealed case (its neighbours sold out before, by
  // the claims' stock) in baskets of 5, one transaction a basket. Unlike the basket above (an opened case, a
  // status word already started), this opens the case and starts a fresh 16-lane status word every 16 units.
  const caseUnits = (c: number) =>
    Array.from({ length: UNITS_PER_CASE }, (_, i) => unitRef(runId, c * UNITS_PER_CASE + i));
  for (const soldOut of [SEALED_CASE - 1, SEALED_CASE + 1])
    await gasOf(ledger.connect(pharmacy!).dispense(packRefs(caseUnits(soldOut)), ethers.ZeroHash));
  const sealed = caseUnits(SEALED_CASE);
  let sealedCaseGas = 0;
  for (let b = 0; b < sealed.length; b += BASKET)
    sealedCaseGas += await gasOf(
      ledger.connect(pharmacy!).dispense(packRefs(sealed.slice(b, b + BASKET)), ethers.ZeroHash),
    );

  // The largest run the ledger takes must fit a transaction under the gas cap.
  const maxRunCodes = Number(await ledger.maxRunCodes());
  const maxShape = { unitCount: maxRunCodes - Math.ceil(maxRunCodes / 101), unitsPerCase: 100, casesPerPallet: 0 };
  const maxRun = buildRun(demoRunCodes("8612345", maxShape, 1_000_000), maxShape);
  const maxRunGas = await gasOf(
    ledger.connect(maker!).commission(1, maxShape.unitCount, 100, 0, maxRun.codes, maxRun.witness),
  );
  if (maxRunGas >= TX_GAS_CAP) throw new Error(`a run of ${maxRunCodes} codes needs ${maxRunGas} gas, over 2^24`);

  const perUnit = (gas: number, units: number) => Math.round(gas / units);
  const rows: [string, number, number][] = [
    ["registerBatch (once per batch)", registerGas, UNITS],
    ["commission 10,000 units + 100 cases", commissionGas, UNITS],
    ["ship 100 cases (maker -> distributor)", shipGas, UNITS],
    ["receive 100 cases (distributor)", receiveGas, UNITS],
    ["ship 100 cases (distributor -> pharmacy)", shipGas2, UNITS],
    ["receive 100 cases (pharmacy)", receiveGas2, UNITS],
    ["dispense 100 units from 2 cases", dispenseGas, 100],
    ["settle those 100 units", settleGas, 100],
    ["dispense 1 unit (opened case)", singleGas, 1],
    ["dispense 1 unit (first of a sealed case)", singleColdGas, 1],
    ["settle 1 unit (own transaction)", settleSingleGas, 1],
    [`dispense a basket of ${BASKET} units (opened case)`, basketGas, BASKET],
    [`dispense a sealed case in baskets of ${BASKET} (bench:writes)`, sealedCaseGas, UNITS_PER_CASE],
    [
      `settle ${CLAIMS_PER_TX} claims of ${UNITS_PER_CLAIM} units (settleClaims)`,
      settleClaimsGas,
      CLAIMS_PER_TX * UNITS_PER_CLAIM,
    ],
    [`commission the largest run (${maxRun.hashes.length} codes)`, maxRunGas, maxRun.hashes.length],
  ];
  console.log("operation".padEnd(50) + "gas".padStart(12) + "gas/unit".padStart(12));
  for (const [name, gas, units] of rows) {
    console.log(name.padEnd(50) + String(gas).padStart(12) + String(perUnit(gas, units)).padStart(12));
  }
  console.log(
    JSON.stringify({
      commissionGasPerUnit: perUnit(registerGas + commissionGas, UNITS),
      shipReceiveGasPerUnit: perUnit(shipGas + receiveGas, UNITS),
      dispenseGasPerUnit100: perUnit(dispenseGas, 100),
      settleGasPerUnit100: perUnit(settleGas, 100),
      dispenseGasSingle: singleGas,
      dispenseGasSingleFirstOfCase: singleColdGas,
      settleGasSingle: settleSingleGas,
      dispenseGasPerUnitBasket5: perUnit(basketGas, BASKET),
      dispenseGasPerUnitSealedCaseBasket5: perUnit(sealedCaseGas, UNITS_PER_CASE),
      settleGasPerUnit10x10: perUnit(settleClaimsGas, CLAIMS_PER_TX * UNITS_PER_CLAIM),
      maxRunCodes,
      maxRunGas,
      txGasCap: TX_GAS_CAP,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
