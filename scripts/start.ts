/**
 * `npm start`: the whole system on embedded defaults — a local chain on 127.0.0.1, the ledger deployed with demo
 * data — running until Ctrl-C.
 */
import { spawn, spawnSync } from "node:child_process";
import { loadConfig } from "../backend/config/env";

const config = loadConfig();
const hardhat = require.resolve("hardhat/internal/cli/cli");

async function waitForRpc(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`chain at ${url} did not answer within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const node = spawn(
    process.execPath,
    [hardhat, "node", "--hostname", "127.0.0.1", "--port", String(config.RPC_PORT)],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const stop = () => node.kill("SIGINT");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  node.on("exit", (code) => process.exit(code ?? 0));
  await waitForRpc(config.RPC_URL, 60_000);
  console.log(JSON.stringify({ msg: "local chain up", rpcUrl: config.RPC_URL }));
  const deploy = spawnSync(process.execPath, [hardhat, "run", "scripts/deploy.ts", "--network", "localhost"], {
    stdio: "inherit",
    env: { ...process.env, RPC_URL: config.RPC_URL },
  });
  if (deploy.status !== 0) {
    stop();
    throw new Error("deployment failed");
  }
  console.log(JSON.stringify({ msg: "system running; Ctrl-C stops it", rpcUrl: config.RPC_URL }));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
