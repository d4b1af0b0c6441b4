/**
 * `npm run bench:commission`: commissioning from a CSV end to end on a local chain. A `hardhat node` in its own
 * process (BENCH_CHAIN=anvil: an Anvil node; BENCH_NODE_HEAP_MB raises the hardhat node's Node heap limit), a
 * fresh ledger with a maker, product and batch, indexed into a fresh redis-server (the command reads the batch,
 * product and prefixes from the index); a CSV of BENCH_CODES loose unit codes (default 400,000; one code a line,
 * as a packing line exports them) is written, then `scripts/commission-csv.ts` runs on it as an operator runs it
 * (a child process, COMMISSION_IN_FLIGHT transactions in flight, default 4). With BENCH_KILL_AT (a fraction of the
 * runs, e.g. 0.5) the command is SIGKILLed once that many runs are done and started again, as an operator would.
 * Timed from the first start to the last exit: checking, planning and hashing, signing, sending and mining every
 * run, the kill and the resume. Afterwards the chain is read: every run once (no root twice), the units on chain
 * equal to the file's, and the maker's transactions equal to the runs (nothing was sent twice, not even a
 * transaction the ledger would have refused). The last line of output is one JSON object.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { dataSlice, HDNodeWallet, JsonRpcProvider, toBeHex, zeroPadValue } from "ethers";
import { demoRunCodes } from "../backend/chain/runs";
import { loadConfig } from "../backend/config/env";
import { createLogger } from "../backend/log";
import { connectRedis } from "../backend/store/redis";
import { deployBenchLedger, indexChain, PRODUCT_CODE, startNode } from "./lib/bench-chain";
import { startAnvil } from "./lib/anvil";
import { DrugLedger__factory } from "../typechain-types";
import { freePort, startRedis } from "./lib/redis-server";
import type { CommissionState } from "./lib/commission-state";

/**
 * 400,000 by default: a `hardhat node` keeps every block in its memory (about 290 MB a run of 28,000 codes) and,
 * with Node's default heap, stops answering (GC-bound) after about 16 runs; BENCH_NODE_HEAP_MB=16384 carries
 * 1,000,000 codes, and BENCH_CHAIN=anvil carries millions.
 */
const CODES = Number(process.env.BENCH_CODES ?? 400_000);
const CHAIN = process.env.BENCH_CHAIN ?? "hardhat";
const IN_FLIGHT = process.env.COMMISSION_IN_FLIGHT ?? "4";
/** Fraction of the runs done at which the command is SIGKILLed and started again (0: not killed). */
const KILL_AT = Number(process.env.BENCH_KILL_AT ?? 0);
const NODE_HEAP_MB = process.env.BENCH_NODE_HEAP_MB ? Number(process.env.BENCH_NODE_HEAP_MB) : undefined;
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

/** The command's last line (scripts/commission-csv.ts). */
interface CommandResult {
  runs: number;
  seconds: number;
  codesSentNow: number;
  codesSignedNow: number;
  codesRebroadcastNow: number;
  runsFoundOnChain: number;
  peakRssMb: number;
}

/**
 * The batch's UnitsCommissioned events, a few blocks at a time and read from their data words: each carries its
 * run's code hashes (0.9 MB a run), and one eth_getLogs over millions of codes would not fit in a string.
 */
async function runsOf(
  provider: JsonRpcProvider,
  ledger: string,
  batchId: number,
): Promise<{ root: string; unitCount: number }[]> {
  const topic = DrugLedger__factory.createInterface().getEvent("UnitsCommissioned").topicHash;
  const head = await provider.getBlockNumber();
  const runs: { root: string; unitCount: number }[] = [];
  for (let from = 0; from <= head; from += 8) {
    const logs = await provider.getLogs({
      address: ledger,
      fromBlock: from,
      toBlock: Math.min(head, from + 7),
      topics: [topic, null, zeroPadValue(toBeHex(batchId), 32)],
    });
    // Data words: unitCount, unitsPerCase, casesPerPallet, root, then the codes' offset, length and bytes.
    for (const log of logs)
      runs.push({ unitCount: Number(BigInt(dataSlice(log.data, 0, 32))), root: dataSlice(log.data, 96, 128) });
  }
  return runs;
}

/** SIGKILLs the command once `fraction` of its runs are done (read from its state file); the runs done then. */
async function killWhenDone(
  child: ChildProcess,
  exited: Promise<unknown>,
  stateFile: string,
  fraction: number,
): Promise<number | null> {
  let finished = false;
  void exited.then(() => (finished = true));
  while (!finished) {
    await new Promise((r) => setTimeout(r, 100));
    let state: CommissionState;
    try {
      state = JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState;
    } catch {
      continue; // not written yet, or being renamed into place
    }
    const done = state.runs.filter((r) => r.state === "done").length;
    if (done >= Math.max(1, Math.floor(state.totalRuns * fraction))) {
      child.kill("SIGKILL");
      return done;
    }
  }
  return null;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger("warn", "bench-commission");
  const dir = mkdtempSync(path.join(tmpdir(), "bench-commission-"));
  const node =
    CHAIN === "anvil"
      ? await startAnvil()
      : await startNode(await freePort(), NODE_HEAP_MB).then(({ url, child }) => ({
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
    const maker = HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/1").address;
    const nonceBefore = await provider.getTransactionCount(maker, "latest");
    const stateFile = `${file}.state.json`;
    const started = Date.now();
    let killedAfterRuns: number | null = null;
    let peakRssMb = 0;
    let result = null as CommandResult | null;
    let onWireAtKill = 0;
    for (let attempt = 0; attempt < 2 && !result; attempt++) {
      const child = spawn(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", "scripts/commission-csv.ts", "--batch", "1", "--file", file],
        { cwd: ROOT, env, stdio: ["ignore", "pipe", "inherit"] },
      );
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      if (attempt === 0 && KILL_AT > 0)
        void killWhenDone(child, exited, stateFile, KILL_AT).then((n) => (killedAfterRuns = n));
      const code = await exited;
      if (code === null && killedAfterRuns !== null) {
        // What the killed process had signed: runs done, or recorded `sending` (perhaps on the wire).
        const atKill = JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState;
        onWireAtKill = atKill.runs.filter((r) => r.state !== "planned").reduce((n, r) => n + r.codes, 0);
        continue;
      }
      const lines = stdout.trim().split("\n");
      if (code !== 0) throw new Error(`commission:csv exited ${code}: ${lines.slice(-3).join(" ")}`);
      result = JSON.parse(lines[lines.length - 1]!) as CommandResult;
      peakRssMb = Math.max(peakRssMb, result.peakRssMb);
    }
    const seconds = (Date.now() - started) / 1000;
    if (!result) throw new Error("commission:csv did not finish");
    const onChain = await runsOf(provider, await chain.ledger.getAddress(), 1);
    const roots = new Set(onChain.map((e) => e.root));
    const unitsOnChain = onChain.reduce((n, e) => n + e.unitCount, 0);
    const transactions = (await provider.getTransactionCount(maker, "latest")) - nonceBefore;
    if (roots.size !== result.runs || onChain.length !== result.runs || unitsOnChain !== CODES)
      throw new Error(`on chain: ${onChain.length} runs, ${roots.size} roots, ${unitsOnChain} units`);
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState;
    console.log(
      JSON.stringify({
        codes: CODES,
        chain: CHAIN,
        runs: result.runs,
        inFlight: Number(IN_FLIGHT),
        seconds: Number(seconds.toFixed(2)),
        codesPerSecond: Math.round(CODES / seconds),
        lastProcessSeconds: result.seconds,
        peakRssMb,
        killedAfterRuns,
        resumedRunsFoundOnChain: killedAfterRuns === null ? 0 : result.runsFoundOnChain,
        // Each run's transaction once: a resubmitted run would show as a second UnitsCommissioned or an extra
        // (refused) transaction of the maker.
        transactions,
        extraTransactions: transactions - result.runs,
        // Codes signed into a new transaction by the resumed process although the killed one had signed them.
        codesResubmitted: killedAfterRuns === null ? 0 : onWireAtKill + result.codesSignedNow - CODES,
        codesRebroadcast: result.codesRebroadcastNow,
        stateRunsDone: state.runs.filter((r) => r.state === "done").length,
        loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
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
