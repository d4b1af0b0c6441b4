/**
 * A real Anvil node (Foundry's EVM, independent of Hardhat's) on a free loopback port, for the end-to-end tests
 * run with TEST_CHAIN=anvil (`npm run test:anvil`). The binary comes from the npm package
 * `@foundry-rs/anvil-linux-amd64`, which ships it prebuilt.
 */
import { spawn, type ChildProcess } from "child_process";
import * as path from "path";
import { rpcAnswers } from "./ports";
import { freePort } from "./redis-server";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 15_000;
const POLL_MS = 100;

/**
 * The node's rules, matched to the hardhat network in hardhat.config.ts so that the same tests mean the same
 * thing on both: Hardhat's default test mnemonic (the same 20 funded accounts), the same block gas limit, Osaka
 * with EIP-7825's 2^24 per-transaction cap, and a code-size limit raised past DrugLedger's ~27 KB (a permissioned
 * chain sets its own; Besu's `contractSizeLimit` plays the same part, see scripts/besu-genesis.ts).
 */
export const ANVIL_RULES = {
  mnemonic: "test test test test test test test test test test test junk",
  accounts: 20,
  blockGasLimit: 60_000_000,
  codeSizeLimit: 49_152,
  hardfork: "osaka",
} as const;

export interface AnvilNode {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Path of the Anvil binary inside its platform package (no download, no postinstall needed). */
export function anvilBinary(): string {
  const pkg = `@foundry-rs/anvil-${process.platform}-${process.arch === "x64" ? "amd64" : process.arch}`;
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", "anvil");
  } catch {
    throw new Error(`Anvil's binary package ${pkg} is not installed (npm ci installs it on linux x64)`);
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** Starts Anvil on a free loopback port and resolves once it answers JSON-RPC. */
export async function startAnvil(): Promise<AnvilNode> {
  const port = await freePort();
  const args = [
    ["--host", HOST],
    ["--port", String(port)],
    ["--mnemonic", ANVIL_RULES.mnemonic],
    ["--accounts", String(ANVIL_RULES.accounts)],
    ["--gas-limit", String(ANVIL_RULES.blockGasLimit)],
    ["--code-size-limit", String(ANVIL_RULES.codeSizeLimit)],
    ["--hardfork", ANVIL_RULES.hardfork],
    ["--tx-gas-limit"],
    ["--silent"],
  ].flat();
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const url = `http://${HOST}:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited(child);
  };
  process.once("exit", () => child.kill("SIGKILL"));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await rpcAnswers(url))) {
    if (child.exitCode !== null) throw new Error(`anvil exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`anvil did not answer on ${url} within ${READY_TIMEOUT_MS} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return { url, port, stop };
}
