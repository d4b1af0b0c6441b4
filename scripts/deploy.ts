/**
 * Deploys the ledger to the network Hardhat is pointed at and records the deployment. The first account becomes
 * consortium admin and first regulator. (`npm start` then seeds its demo story through the API: scripts/lib/seed.ts.)
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ethers, network } from "hardhat";
import { loadConfig } from "../backend/config/env";
import type { DrugLedger } from "../typechain-types";

async function main(): Promise<void> {
  const config = loadConfig();
  const admin = (await ethers.getSigners())[0]!;
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
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
