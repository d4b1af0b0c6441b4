/**
 * Deploys the ledger to the network Hardhat is pointed at, records the deployment, and (SEED_DEMO=true, the
 * default) loads the demo data. The first account becomes consortium admin and first regulator.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ethers, network } from "hardhat";
import { loadConfig } from "../backend/config/env";
import type { DrugLedger } from "../typechain-types";
import { seedDemo } from "./lib/demo";

async function main(): Promise<void> {
  const config = loadConfig();
  const signers = await ethers.getSigners();
  const admin = signers[0]!;
  const ledger = (await ethers.deployContract("DrugLedger", [
    config.ADMIN_TRANSFER_DELAY_SECONDS,
    admin.address,
  ])) as unknown as DrugLedger;
  const receipt = await ledger.deploymentTransaction()!.wait();
  const address = await ledger.getAddress();
  const deployment = {
    network: network.name,
    chainId: Number((await ethers.provider.getNetwork()).chainId),
    ledger: address,
    deployedAtBlock: receipt!.blockNumber,
    admin: admin.address,
  };
  await mkdir(path.dirname(config.DEPLOYMENT_FILE), { recursive: true });
  await writeFile(config.DEPLOYMENT_FILE, JSON.stringify(deployment, null, 2) + "\n");
  console.log(JSON.stringify({ msg: "ledger deployed", ...deployment, deploymentFile: config.DEPLOYMENT_FILE }));
  if (config.SEED_DEMO) {
    const summary = await seedDemo(ledger, signers, config.CODE_HASH_DOMAIN);
    console.log(JSON.stringify({ msg: "demo data loaded", ...summary }));
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
