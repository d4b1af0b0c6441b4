/**
 * `npm run deploy -- --network <name>`: deploys the ledger (scripts/deploy.ts) to a network of hardhat.config.ts
 * and records it in `.deployments/<name>.json` (DEPLOYMENT_FILE overrides), which the indexer, the API and the
 * operators' commands read.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { EXIT, runCommand, UsageError } from "./lib/cli";

runCommand({
  usage: "npm run deploy -- [--network <name>] [--no-seed]",
  help: `
Deploys DrugLedger to <name> (a network of hardhat.config.ts; default localhost, i.e. RPC_URL) with the network's
first account as consortium admin and first regulator, and writes .deployments/<name>.json (network, chain id,
ledger address, deployment block, admin). SEED_DEMO (default true) loads the demo data; --no-seed skips it.

Exit codes: 0 deployed, 1 failure (the node's or Hardhat's message is printed), 2 usage.`,
  options: { network: { type: "string", default: "localhost" }, "no-seed": { type: "boolean" } },
  async run(values) {
    const network = values.network!;
    if (!/^[A-Za-z0-9_-]+$/.test(network)) throw new UsageError(`--network ${network} is not a network name`);
    const env = {
      ...process.env,
      DEPLOYMENT_FILE: process.env.DEPLOYMENT_FILE ?? path.join(".deployments", `${network}.json`),
      ...(values["no-seed"] ? { SEED_DEMO: "false" } : {}),
    };
    const hardhat = require.resolve("hardhat/internal/cli/cli");
    const child = spawn(process.execPath, [hardhat, "run", "--network", network, "scripts/deploy.ts"], {
      env,
      stdio: "inherit",
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) {
      process.exitCode = code ?? EXIT.failed;
      throw new Error(`deploy to ${network} failed`);
    }
  },
});
