/**
 * Gas per unit for the ledger's volume operations, on Hardhat's in-process network.
 * Last line of output: one JSON object with the figures the README quotes.
 */
import { ethers } from "hardhat";
import type { ContractTransactionResponse } from "ethers";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { caseRef, packRefs, unitRef } from "../backend/codes/refs";
import type { DrugLedger } from "../typechain-types";

const UNITS = 10_000;
const UNITS_PER_CASE = 100;

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
  const settleGas = await gasOf(ledger.connect(insurer!).settle(ethers.id("claim-1"), pharmacy!.address, hundred));
  // A single pack sold from an opened case, the everyday case at a pharmacy counter.
  const singleGas = await gasOf(ledger.connect(pharmacy!).dispense(packRefs([unitRef(runId, 49)]), ethers.id("rx-2")));
  // The first pack of a case no unit has left yet: opens the case and starts a fresh status word.
  const singleColdGas = await gasOf(
    ledger.connect(pharmacy!).dispense(packRefs([unitRef(runId, 500)]), ethers.id("rx-3")),
  );
  const settleSingleGas = await gasOf(
    ledger.connect(insurer!).settle(ethers.id("claim-2"), pharmacy!.address, packRefs([unitRef(runId, 49)])),
  );

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
  ];
  console.log("operation".padEnd(44) + "gas".padStart(12) + "gas/unit".padStart(12));
  for (const [name, gas, units] of rows) {
    console.log(name.padEnd(44) + String(gas).padStart(12) + String(perUnit(gas, units)).padStart(12));
  }
  console.log(
    JSON.stringify({
      commissionGasPerUnit: perUnit(registerGas + commissionGas, UNITS),
      shipReceiveGasPerUnit: perUnit(shipGas + receiveGas, UNITS),
      dispenseGasPerUnit100: perUnit(dispenseGas, 100),
      settleGasPerUnit100: perUnit(settleGas, 100),
      dispenseGasSingle: singleGas,
      dispenseGasSingleFirstOfCase: singleColdGas,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
