/**
 * A benchmark chain: a `hardhat node` in its own process (as a real node would be), with runs of demo codes
 * commissioned and moved the way stock really moves — every pallet to a distributor, half of each run's cases
 * on to a pharmacy — and, when asked, some packs dispensed there. Shared by bench:index and bench:api.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { JsonRpcProvider, type JsonRpcSigner } from "ethers";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import { caseRef, packRefs, palletRef, unitRef } from "../../backend/codes/refs";
import { caseCount, palletCount, type RunShape } from "../../backend/codes/run";
import { LedgerChain } from "../../backend/chain/client";
import type { Config } from "../../backend/config/env";
import { Indexer, type IndexerStatus } from "../../backend/index/indexer";
import { IndexStore } from "../../backend/index/store";
import type { Logger } from "../../backend/log";
import type { RedisClient } from "../../backend/store/redis";
import { DrugLedger__factory, type DrugLedger } from "../../typechain-types";

// 20,000 units a run keeps commissioning (about 566 gas a unit) under Osaka's 2^24 gas cap per transaction.
export const SHAPE: RunShape = { unitCount: 20_000, unitsPerCase: 100, casesPerPallet: 10 };
export const PRODUCT_CODE = "8612345";
const DAY = 86_400;

/** A `hardhat node` on the port; `heapMb` raises its Node heap limit (NODE_OPTIONS=--max-old-space-size). */
export async function startNode(port: number, heapMb?: number): Promise<{ url: string; child: ChildProcess }> {
  const env = heapMb
    ? { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-old-space-size=${heapMb}`.trim() }
    : process.env;
  const child = spawn("npx", ["hardhat", "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    stdio: "ignore",
    detached: true,
    env,
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      const probe = new JsonRpcProvider(url, undefined, { staticNetwork: true });
      await probe.getBlockNumber();
      probe.destroy();
      return { url, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("hardhat node did not start");
}

export interface BenchChain {
  ledger: DrugLedger;
  startBlock: number;
  runs: number;
  /** Accounts: admin (also the first regulator), maker, distributor, pharmacy, insurer. */
  accounts: { admin: string; maker: string; distributor: string; pharmacy: string; insurer: string };
  /** Normalised unit codes of run r (1-based) are demoRunCodes(PRODUCT_CODE, SHAPE, serialBase(r)). */
  serialBase(runId: number): number;
  /** Unit indexes (per run) the pharmacy dispensed. */
  dispensed: number[];
}

/**
 * A fresh ledger on the node (account 0 deploys it and is the regulator) with a maker (account 1) holding the
 * prefix of PRODUCT_CODE, the product registered and batch 1 open; a distributor, a pharmacy and an insurer
 * (accounts 2-4) onboarded.
 */
export async function deployBenchLedger(
  provider: JsonRpcProvider,
): Promise<{ ledger: DrugLedger; startBlock: number; signers: JsonRpcSigner[] }> {
  const signers = (await Promise.all([0, 1, 2, 3, 4].map((i) => provider.getSigner(i)))) as JsonRpcSigner[];
  const [admin, maker, distributor, pharmacy, insurer] = signers;
  const deployed = await new DrugLedger__factory(admin!).deploy(0, await admin!.getAddress());
  const startBlock = (await deployed.deploymentTransaction()!.wait())!.blockNumber;
  const ledger = deployed.connect(admin!) as DrugLedger;
  const wait = async (p: Promise<{ wait(): Promise<unknown> }>) => (await p).wait();
  await wait(ledger.onboard(await maker!.getAddress(), 1, "Bench Maker", "LIC-M", "310000"));
  await wait(ledger.onboard(await distributor!.getAddress(), 2, "Bench Distributor", "LIC-D", "310000"));
  await wait(ledger.onboard(await pharmacy!.getAddress(), 3, "Bench Pharmacy", "LIC-P", "310000"));
  await wait(ledger.onboard(await insurer!.getAddress(), 4, "Bench Insurer", "LIC-I", "310000"));
  const asMaker = ledger.connect(maker!);
  await wait(ledger.assignCodePrefixes(await maker!.getAddress(), ["CN:" + PRODUCT_CODE]));
  await wait(asMaker.registerProduct(PRODUCT_CODE, "Amoxicillin 250mg", "H20000001", "capsule 24/box", 24));
  const now = (await provider.getBlock("latest"))!.timestamp;
  await wait(asMaker.registerBatch(1, "LOT-BENCH", now - DAY, now + 700 * DAY));
  return { ledger, startBlock, signers };
}

/**
 * Commissions at least `units` unit codes, moves them, and (with `dispensePerRun`) has the pharmacy dispense
 * that many units of each run from the cases it received, 100 a transaction.
 */
export async function populate(provider: JsonRpcProvider, units: number, dispensePerRun = 0): Promise<BenchChain> {
  const { ledger, startBlock, signers } = await deployBenchLedger(provider);
  const [admin, maker, distributor, pharmacy, insurer] = signers as [
    JsonRpcSigner,
    JsonRpcSigner,
    JsonRpcSigner,
    JsonRpcSigner,
    JsonRpcSigner,
  ];
  const wait = async (p: Promise<{ wait(): Promise<unknown> }>) => (await p).wait();
  const asMaker = ledger.connect(maker);

  const runs = Math.ceil(units / SHAPE.unitCount);
  const serialBase = (runId: number) => 1 + (runId - 1) * SHAPE.unitCount;
  const pending: Promise<unknown>[] = [];
  for (let r = 1; r <= runs; r++) {
    const run = buildRun(demoRunCodes(PRODUCT_CODE, SHAPE, serialBase(r)), SHAPE);
    const tx = await asMaker.commission(
      1,
      SHAPE.unitCount,
      SHAPE.unitsPerCase,
      SHAPE.casesPerPallet,
      run.codes,
      run.witness,
    );
    pending.push(tx.wait());
  }
  await Promise.all(pending);
  // Move everything: every pallet to the distributor, then half of each run's cases on to the pharmacy.
  const receipts: Promise<unknown>[] = [];
  for (let runId = 1; runId <= runs; runId++) {
    const pallets = packRefs(Array.from({ length: palletCount(SHAPE) }, (_, i) => palletRef(runId, i)));
    const shipped = await (await asMaker.ship(await distributor!.getAddress(), pallets)).wait();
    const shipmentId = ledger.interface.parseLog(shipped!.logs[0]!)!.args.shipmentId as bigint;
    receipts.push(wait(ledger.connect(distributor!).receiveShipment(shipmentId, pallets)));
  }
  await Promise.all(receipts);
  for (let runId = 1; runId <= runs; runId++) {
    const cases = packRefs(Array.from({ length: caseCount(SHAPE) / 2 }, (_, i) => caseRef(runId, i)));
    const shipped = await (await ledger.connect(distributor!).ship(await pharmacy!.getAddress(), cases)).wait();
    const shipmentId = ledger.interface.parseLog(shipped!.logs[0]!)!.args.shipmentId as bigint;
    await wait(ledger.connect(pharmacy!).receiveShipment(shipmentId, cases));
  }
  // Dispense from the pharmacy's cases (the first half of each run's units), 100 a transaction.
  const dispensed = Array.from({ length: Math.min(dispensePerRun, SHAPE.unitCount / 2) }, (_, i) => i);
  const asPharmacy = ledger.connect(pharmacy!);
  for (let runId = 1; runId <= runs; runId++)
    for (let i = 0; i < dispensed.length; i += 100) {
      const refs = dispensed.slice(i, i + 100).map((u) => unitRef(runId, u));
      await wait(asPharmacy.dispense(packRefs(refs), `0x${"ab".repeat(32)}`));
    }
  const address = (s: JsonRpcSigner) => s.getAddress();
  return {
    ledger,
    startBlock,
    runs,
    accounts: {
      admin: await address(admin!),
      maker: await address(maker!),
      distributor: await address(distributor!),
      pharmacy: await address(pharmacy!),
      insurer: await address(insurer!),
    },
    serialBase,
    dispensed,
  };
}

/** Back-fills the bench chain into `redis` with the configured indexer settings; returns the final status. */
export async function indexChain(
  nodeUrl: string,
  chain: Pick<BenchChain, "ledger" | "startBlock">,
  redis: RedisClient,
  codeBucketBits: number,
  log: Logger,
  config: Config,
  /** Called with the client before indexing starts (bench:index records the ranges fetched through it). */
  onClient?: (client: LedgerChain) => void,
): Promise<IndexerStatus> {
  const client = await LedgerChain.connect(nodeUrl, await chain.ledger.getAddress());
  onClient?.(client);
  try {
    const indexer = new Indexer({
      chain: client,
      store: new IndexStore(redis, log),
      log,
      startBlock: chain.startBlock,
      confirmations: config.CONFIRMATIONS,
      reorgDepth: config.REORG_DEPTH,
      maxRangeBlocks: config.LOG_RANGE_MAX_BLOCKS,
      batchMaxCodes: config.BATCH_MAX_CODES,
      pollIntervalMs: config.POLL_INTERVAL_MS,
      codeBucketBits,
    });
    return await indexer.syncOnce();
  } finally {
    client.destroy();
  }
}
