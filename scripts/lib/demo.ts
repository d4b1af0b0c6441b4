import type { Signer } from "ethers";
import { ethers } from "ethers";
import type { DrugLedger } from "../../typechain-types";
import { consentDomain, signConsent } from "../../backend/chain/consent";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import { caseRef, packRefs, palletRef, unitRef } from "../../backend/codes/refs";

const DAY = 86_400;

export interface DemoSummary {
  participants: {
    manufacturer: string;
    distributor: string;
    pharmacy: string;
    otherPharmacy: string;
    insurer: string;
  };
  runId: number;
  sampleCodes: { dispensedAndSettled: string; dispensed: string; inStock: string; atDistributor: string };
}

/**
 * A small demo history made by direct contract calls (the indexer's and the demo's tests use it; `npm start` seeds
 * its larger story through the HTTP API instead, `scripts/lib/seed.ts`): a manufacturer, a distributor, two pharmacies and an insurer; one product,
 * one batch of 1,000 packs in 10 cases on 2 pallets; a pallet shipped to the distributor, cases passed on to a
 * pharmacy, some packs dispensed and settled.
 */
export async function seedDemo(ledger: DrugLedger, signers: Signer[], codeHashDomain: string): Promise<DemoSummary> {
  const [admin, maker, distributor, pharmacy, otherPharmacy, insurer] = signers as [Signer, ...Signer[]];
  const as = (s: Signer) => ledger.connect(s);
  const wait = async (tx: Promise<ethers.ContractTransactionResponse>) => (await tx).wait();
  const org = async (s: Signer, role: number, name: string, licence: string) =>
    wait(as(admin).onboard(await s.getAddress(), role, name, licence, "310000"));
  await org(maker!, 1, "Shanghai Demo Pharmaceutical Co.", "沪20160001");
  await org(distributor!, 2, "East China Demo Distribution", "沪AA0210001");
  await org(pharmacy!, 3, "Demo Pharmacy No. 1", "沪CB0210001");
  await org(otherPharmacy!, 3, "Demo Pharmacy No. 2", "沪CB0210002");
  await org(insurer!, 4, "Shanghai Healthcare Security Fund (demo)", "NHSA-310000");
  await wait(as(admin).assignCodePrefixes(await maker!.getAddress(), ["CN:86123"]));

  await wait(
    as(maker!).registerProduct(
      "8612345",
      "Amoxicillin Capsules 0.25g",
      "国药准字H00000001",
      "0.25g x 24 capsules/box",
      24,
    ),
  );
  const now = Math.floor(Date.now() / 1000);
  await wait(as(maker!).registerBatch(1, "20261101", now - 20 * DAY, now + 2 * 365 * DAY));

  const shape = { unitCount: 1000, unitsPerCase: 100, casesPerPallet: 5 };
  const normalised = demoRunCodes("8612345", shape, 1);
  const run = buildRun(normalised, shape, codeHashDomain);
  await wait(
    as(maker!).commission(1, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness),
  );
  const runId = 1;

  await wait(as(maker!).ship(await distributor!.getAddress(), packRefs([palletRef(runId, 0)])));
  await wait(as(distributor!).receiveShipment(1, packRefs([palletRef(runId, 0)])));
  await wait(as(distributor!).ship(await pharmacy!.getAddress(), packRefs([caseRef(runId, 0), caseRef(runId, 1)])));
  await wait(as(pharmacy!).receiveShipment(2, packRefs([caseRef(runId, 0), caseRef(runId, 1)])));
  const sold = packRefs([unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 2)]);
  await wait(as(pharmacy!).dispense(sold, ethers.id("demo-prescription-1")));
  const claimRef = ethers.id("demo-claim-1");
  const billed = packRefs([unitRef(runId, 0), unitRef(runId, 1)]);
  const { chainId } = await ledger.runner!.provider!.getNetwork();
  const consent = await signConsent(pharmacy!, consentDomain(chainId, await ledger.getAddress()), {
    insurer: await insurer!.getAddress(),
    claimRef,
    units: billed,
    quantity: 0,
  });
  await wait(as(insurer!).settle(claimRef, await pharmacy!.getAddress(), billed, consent));

  const code = (i: number) => normalised[i]!.replace(/^CN:/, "");
  return {
    participants: {
      manufacturer: await maker!.getAddress(),
      distributor: await distributor!.getAddress(),
      pharmacy: await pharmacy!.getAddress(),
      otherPharmacy: await otherPharmacy!.getAddress(),
      insurer: await insurer!.getAddress(),
    },
    runId,
    sampleCodes: { dispensedAndSettled: code(0), dispensed: code(2), inStock: code(150), atDistributor: code(250) },
  };
}
