import path from "node:path";
import { subtask } from "hardhat/config";
import { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } from "hardhat/builtin-tasks/task-names";
import type { HardhatUserConfig } from "hardhat/config";
import "@nomicfoundation/hardhat-toolbox";

const SOLC_VERSION = "0.8.28";

// TEST_CHAIN=anvil runs the tests against a spawned Anvil node (`npm run test:anvil` starts it and sets
// ANVIL_RPC_URL) instead of Hardhat's in-process network; its rules are in scripts/lib/anvil.ts.
const onAnvil = process.env.TEST_CHAIN === "anvil";
if (onAnvil && !process.env.ANVIL_RPC_URL)
  throw new Error("TEST_CHAIN=anvil needs ANVIL_RPC_URL: run `npm run test:anvil`");

// Hardhat cannot download compilers on this network; the solc npm package ships the same
// compiler as WebAssembly, pinned to SOLC_VERSION in package.json.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args: { solcVersion: string }, _hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const solc = require("solc") as { version(): string };
  return {
    compilerPath: path.join(path.dirname(require.resolve("solc")), "soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: solc.version(),
  };
});

const config: HardhatUserConfig = {
  defaultNetwork: onAnvil ? "anvil" : "hardhat",
  solidity: {
    version: SOLC_VERSION,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      viaIR: true,
      evmVersion: "cancun",
    },
  },
  networks: {
    hardhat: {
      // A 10,000-unit commissioning carries ~150 KB of calldata; Osaka caps a transaction at 2^24 gas.
      blockGasLimit: 60_000_000,
      // DrugLedger is above EIP-170's 24,576 bytes; a permissioned network sets its own limit (see README).
      allowUnlimitedContractSize: true,
    },
    localhost: { url: process.env.RPC_URL ?? "http://127.0.0.1:8545" },
    // Signs locally with the same mnemonic Anvil funds (scripts/lib/anvil.ts ANVIL_RULES), as the hardhat network does.
    anvil: {
      url: process.env.ANVIL_RPC_URL ?? "http://127.0.0.1:8545",
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 20 },
      timeout: 120_000,
    },
  },
  typechain: { outDir: "typechain-types", target: "ethers-v6" },
  gasReporter: { enabled: process.env.REPORT_GAS === "true" },
  mocha: { timeout: 120_000, reporter: path.join(__dirname, "test/support/summary-reporter.ts") },
};

export default config;
