/**
 * `npm run bench:commission`: commissioning from a CSV end to end on a local chain. A `hardhat node` in its own
 * process (BENCH_CHAIN=anvil: an Anvil node), a fresh ledger with a maker, product and batch, indexed into a fresh redis-server (the command reads
 * the batch, product and prefixes from the index); a CSV of BENCH_CODES loose unit codes (default 400,000; one
 * code a line, as a packing line exports them) is written, then `scripts/commission-csv.ts` runs on it as an
 * operator runs it (a child process, COMMISSION_IN_FLIGHT transactions in flight, default 4). Timed from the
 * command's start to its exit: reading, parsing, planning and hashing, signing, sending and mining every run. The
 * last line of output is one JSON object: codes, seconds, codesPerSecond, peakRssMb (the command's own).
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { HDNodeWallet, JsonRpcProvider } from "ethers";
import { demoRunCodes } from "../backend/chain/runs";
import { loadConfig } from "../backend/config/env";
import { createLogger } from "../backend/log";
import { connectRedis } from "../backend/store/redis";
import { deployBenchLedger, indexChain, PRODUCT_CODE, startNode } from "./lib/bench-chain";
import { startAnvil } from "./lib/anvil";
import { freePort, startRedis } from "./lib/redis-server";

/**
 * 400,000 by default: a `hardhat node` keeps every block in its memory and stops answering (GC-bound, 6 GB) after
 * about 16 runs of 28,000 codes; BENCH_CHAIN=anvil carries millions.
 */
const CODES = Number(process.env.BENCH_CODES ?? 400_000);
const CHAIN = process.env.BENCH_CHAIN ?? "hardhat";
const IN_FLIGHT = process.env.COMMISSION_IN_FLIGHT ?? "4";
const MNEMONIC = "test test test test test test test test test test test junk";
const ROOT = path.resolve(__dirname, "..");
/** Codes generated and written at a time, so that the generator's own memory stays small. */
const CHUNK = 100_000;

async function writeCsv(file: string, codes: number): Promise<void> {
  const out = createWriteStream(file);
  for (let from = 0; from < codes; from += CHUNK) {
    const n = Math.min(CHUNK, codes - from);
    const lines = demoRunCodes(PRODUCT_CODE, { unitCount: n, unitsPerCase: 0, casesPerPallet: 0 }, 1 + from)
      .map((c) => c.replace(/^CN:/, ""))
      .join("\n");
    if (!out.write(lines + "\n")) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger("warn", "bench-commission");
  const dir = mkdtempSync(path.join(tmpdir(), "bench-commission-"));
  const node =
    CHAIN === "anvil"
      ? await startAnvil()
      : await startNode(await freePort()).then(({ url, child }) => ({
          url,
          stop: async () => void (child.pid && process.kill(-child.pid, "SIGKILL")),
        }));
  const redisServer = await startRedis();
  const redis = connectRedis({ url: redisServer.url });
  const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
  try {
    const chain = await deployBenchLedger(provider);
    await indexChain(node.url, chain, redis, 16, log, config);
    const file = path.join(dir, "codes.csv");
    await writeCsv(file, CODES);
    const makerKey = HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/1").privateKey;
    const env = {
      ...process.env,
      RPC_URL: node.url,
      REDIS_URL: redisServer.url,
      LEDGER_ADDRESS: await chain.ledger.getAddress(),
      DEPLOYMENT_FILE: path.join(dir, "none.json"),
      CODE_BUCKET_BITS: "16",
      SIGNER_DEV_KEYS: makerKey,
      NODE_ENV: "development",
      LOG_LEVEL: "warn",
      COMMISSION_IN_FLIGHT: IN_FLIGHT,
    };
    const started = Date.now();
    const child = spawn(
      process.execPath,
      ["-r", "ts-node/register/transpile-only", "scripts/commission-csv.ts", "--batch", "1", "--file", file],
      { cwd: ROOT, env, stdio: ["ignore", "pipe", "inherit"] },
    );
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    const seconds = (Date.now() - started) / 1000;
    const lines = stdout.trim().split("\n");
    if (code !== 0) throw new Error(`commission:csv exited ${code}: ${lines.slice(-3).join(" ")}`);
    const result = JSON.parse(lines[lines.length - 1]!) as {
      runs: number;
      codesSentNow: number;
      seconds: number;
      peakRssMb: number;
    };
    if (result.codesSentNow !== CODES) throw new Error(`sent ${result.codesSentNow} codes, expected ${CODES}`);
    console.log(
      JSON.stringify({
        codes: CODES,
        chain: CHAIN,
        runs: result.runs,
        inFlight: Number(IN_FLIGHT),
        seconds: Number(seconds.toFixed(2)),
        codesPerSecond: Math.round(CODES / seconds),
        sendingSeconds: result.seconds,
        peakRssMb: result.peakRssMb,
      }),
    );
  } finally {
    provider.destroy();
    redis.disconnect();
    await redisServer.stop();
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
