/**
 * `npm run test:anvil [-- test files]`: the end-to-end tests against Anvil, a second, independent EVM. Starts
 * Anvil on a free loopback port (scripts/lib/anvil.ts), runs `hardhat test` with TEST_CHAIN=anvil pointing the
 * default network at it, stops Anvil and exits with the tests' exit code.
 */
import { spawn } from "child_process";
import { startAnvil } from "./lib/anvil";

/** The subset CI runs on Anvil: the HTTP story, the every-event scenario, and the cheap end-to-end files. */
export const ANVIL_TEST_FILES = ["test/smoke.test.ts", "test/indexer.events.test.ts", "test/api.story.test.ts"];

const USAGE = `usage: npm run test:anvil [-- <test files...>]
Runs the given test files (default: ${ANVIL_TEST_FILES.join(" ")}) on a fresh Anvil node.`;

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const anvil = await startAnvil();
  try {
    const child = spawn("npx", ["hardhat", "test", ...(args.length > 0 ? args : ANVIL_TEST_FILES)], {
      stdio: "inherit",
      env: { ...process.env, TEST_CHAIN: "anvil", ANVIL_RPC_URL: anvil.url },
    });
    const stopChild = () => child.kill("SIGINT");
    process.once("SIGINT", stopChild);
    process.once("SIGTERM", stopChild);
    return await new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  } finally {
    await anvil.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
