/**
 * Writes benchmark, on a `hardhat node` in its own process, with the indexer following it and the API in this
 * process holding the organisations' dev keys, in one run:
 * - dispensing through the API by 10 pharmacies at once (BENCH_WRITES_DISPENSE per pharmacy, 5 requests in flight
 *   each, one pack a request): requests per second, gas per unit as submitted, p99 until the answer;
 * - settlement of 1,000 claims of 10 codes by one insurer (20 in flight; the pharmacies' consents are submitted
 *   first, untimed): claims per second, gas per unit;
 * - commissioning of 100,000 codes (BENCH_WRITES_COMMISSION units in cases of 100 on pallets of 10) through one
 *   request: codes per second from the request until the job reports every run indexed.
 * Stock is commissioned, shipped and (for the claims) dispensed directly on chain beforehand. The last line of
 * output is one JSON object.
 */
import { HDNodeWallet, JsonRpcProvider, type JsonRpcSigner } from "ethers";
import { loadAlertSettings } from "../backend/alerts";
import { loadClaimSettings } from "../backend/api/claims-config";
import { loadCommissionSettings } from "../backend/api/commissioning";
import { apiContext, serveApi } from "../backend/api/service";
import { packingOrder } from "../backend/chain/commission-plan";
import { LedgerChain } from "../backend/chain/client";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { caseRef, packRefs, unitRef } from "../backend/codes/refs";
import { loadConfig } from "../backend/config/env";
import { Indexer } from "../backend/index/indexer";
import { IndexStore } from "../backend/index/store";
import { createLogger } from "../backend/log";
import { connectRedis } from "../backend/store/redis";
import { DrugLedger__factory } from "../typechain-types";
import { startNode } from "./lib/bench-chain";
import { freePort, startRedis } from "./lib/redis-server";

const PHARMACIES = 10;
const DISPENSE_PER_PHARMACY = Number(process.env.BENCH_WRITES_DISPENSE ?? 100);
const IN_FLIGHT_PER_PHARMACY = 5;
const CLAIMS = Number(process.env.BENCH_WRITES_CLAIMS ?? 1_000);
const CODES_PER_CLAIM = 10;
const SETTLE_IN_FLIGHT = 20;
const COMMISSION_UNITS = Number(process.env.BENCH_WRITES_COMMISSION ?? 100_000);
/** A network's own run limit (setMaxRunCodes), when its gas cap is not Osaka's; default: the ledger's 28,000. */
const MAX_RUN_CODES = process.env.BENCH_WRITES_MAX_RUN_CODES;
const PRODUCT = "8612345";
const MNEMONIC = "test test test test test test test test test test test junk";
const DAY = 86_400;
/**
 * bench:gas's batched figures (README), gas per unit: 100 units a transaction, and the shapes this bench's batching
 * can reach (a pharmacy keeps 5 requests in flight, so a basket is at most 5 units; 10 claims of 10 units in one
 * settleClaims). `dispenseSealedCase5` is this bench's own dispensing shape (each pharmacy sells the 100 units of a
 * sealed case between sold-out ones, 5 a transaction: the case is opened and a fresh status word started every 16
 * units), the like-for-like goal; `dispenseBasket5` (5 units from an opened case into a started word) is kept for
 * comparison.
 */
const BATCHED = {
  dispense: 2_974,
  settle: 1_760,
  dispenseBasket5: 10_223,
  dispenseSealedCase5: 11_383,
  settle10x10: 3_166,
};

const devKey = (i: number) => HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const scanned = (normalised: string) => normalised.replace(/^(CN|X):/, "");

interface Tx {
  txHash: string;
  gasUsed?: number;
}

/** Runs `jobs` with at most `width` at a time; returns each one's latency in ms. */
async function pool<T>(items: T[], width: number, job: (item: T) => Promise<void>): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const item = items[next++]!;
        const t = performance.now();
        await job(item);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

/** Gas of the distinct transactions that carried `units` units. */
function gasPerUnit(txs: Tx[], units: number): number {
  const byHash = new Map(txs.map((t) => [t.txHash, t.gasUsed ?? 0]));
  return Math.round([...byHash.values()].reduce((a, b) => a + b, 0) / units);
}

async function main(): Promise<void> {
  const env = {
    ...process.env,
    API_RATE_LIMIT_PER_KEY: "1000000000",
    API_RATE_LIMIT_PER_ADDRESS: "1000000000",
    API_WRITE_WAIT_MS: "60000",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    SIGNER_DEV_KEYS: Array.from({ length: 15 }, (_, i) => devKey(i)).join(","),
    POLL_INTERVAL_MS: "20",
    CODE_BUCKET_BITS: "14",
  };
  const config = {
    ...loadConfig(env),
    ...loadAlertSettings(env),
    ...loadClaimSettings(env),
    ...loadCommissionSettings(env),
  };
  const log = createLogger(config.LOG_LEVEL, "bench-writes");
  const redisServer = await startRedis();
  const node = await startNode(await freePort());
  const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
  const closers: (() => Promise<void> | void)[] = [];
  try {
    // ---- the network: admin (regulator), maker, distributor, 10 pharmacies, insurer ----
    const signers = (await Promise.all(Array.from({ length: 14 }, (_, i) => provider.getSigner(i)))) as JsonRpcSigner[];
    const [admin, maker, distributor] = signers as [JsonRpcSigner, JsonRpcSigner, JsonRpcSigner];
    const pharmacies = signers.slice(3, 3 + PHARMACIES);
    const insurer = signers[13]!;
    const deployed = await new DrugLedger__factory(admin).deploy(0, await admin.getAddress());
    const startBlock = (await deployed.deploymentTransaction()!.wait())!.blockNumber;
    const ledger = deployed.connect(admin);
    const wait = async (p: Promise<{ wait(): Promise<unknown> }>) => (await p).wait();
    await wait(ledger.onboard(await maker.getAddress(), 1, "Bench Maker", "LIC-M", "310000"));
    await wait(ledger.onboard(await distributor.getAddress(), 2, "Bench Distributor", "LIC-D", "310000"));
    for (const [i, p] of pharmacies.entries())
      await wait(ledger.onboard(await p.getAddress(), 3, `Bench Pharmacy ${i + 1}`, `LIC-P${i}`, "310000"));
    await wait(ledger.onboard(await insurer.getAddress(), 4, "Bench Insurer", "LIC-I", "310000"));
    const asMaker = ledger.connect(maker);
    await wait(ledger.assignCodePrefixes(await maker.getAddress(), ["CN:" + PRODUCT]));
    await wait(asMaker.registerProduct(PRODUCT, "Amoxicillin 250mg", "H20000001", "capsule 24/box", 24));
    const now = (await provider.getBlock("latest"))!.timestamp;
    await wait(asMaker.registerBatch(1, "LOT-STOCK", now - DAY, now + 700 * DAY));
    await wait(asMaker.registerBatch(1, "LOT-COMMISSION", now - DAY, now + 700 * DAY));
    if (MAX_RUN_CODES) await wait(ledger.setMaxRunCodes(Number(MAX_RUN_CODES)));

    // ---- stock: 12 cases of 100 per pharmacy; 10 of them dispensed on chain for the claims ----
    const casesEach = Math.ceil((CLAIMS * CODES_PER_CLAIM) / PHARMACIES / 100) + Math.ceil(DISPENSE_PER_PHARMACY / 100);
    const stockShape = { unitCount: casesEach * PHARMACIES * 100, unitsPerCase: 100, casesPerPallet: 0 };
    const stockCodes = demoRunCodes(PRODUCT, stockShape, 1);
    const run = buildRun(stockCodes, stockShape);
    await wait(asMaker.commission(1, stockShape.unitCount, 100, 0, run.codes, run.witness));
    const settleCasesEach = casesEach - Math.ceil(DISPENSE_PER_PHARMACY / 100);
    for (const [i, p] of pharmacies.entries()) {
      const cases = Array.from({ length: casesEach }, (_, c) => caseRef(1, i * casesEach + c));
      const shipped = await (await asMaker.ship(await p.getAddress(), packRefs(cases))).wait();
      const shipmentId = ledger.interface.parseLog(shipped!.logs[0]!)!.args.shipmentId as bigint;
      await wait(ledger.connect(p).receiveShipment(shipmentId, packRefs(cases)));
      for (let c = 0; c < settleCasesEach; c++) {
        const units = Array.from({ length: 100 }, (_, u) => unitRef(1, (i * casesEach + c) * 100 + u));
        await wait(ledger.connect(p).dispense(packRefs(units), `0x${"ab".repeat(32)}`));
      }
    }
    console.log(`stock: ${stockShape.unitCount} units at ${PHARMACIES} pharmacies`);

    // ---- Redis, the indexer following the chain, the API ----
    const redis = connectRedis({ url: redisServer.url }, log, config.REDIS_COMMAND_TIMEOUT_MS);
    closers.push(() => redis.disconnect());
    const address = await ledger.getAddress();
    const indexerChain = await LedgerChain.connect(node.url, address);
    closers.push(() => indexerChain.destroy());
    const indexer = new Indexer({
      chain: indexerChain,
      store: new IndexStore(redis, log),
      log,
      startBlock,
      confirmations: 0,
      reorgDepth: config.REORG_DEPTH,
      maxRangeBlocks: config.LOG_RANGE_MAX_BLOCKS,
      batchMaxCodes: config.BATCH_MAX_CODES,
      pollIntervalMs: config.POLL_INTERVAL_MS,
      codeBucketBits: config.CODE_BUCKET_BITS,
    });
    await indexer.syncOnce();
    const following = indexer.run();
    closers.push(async () => {
      indexer.stop();
      await following.catch(() => undefined);
    });
    const chain = await LedgerChain.connect(node.url, address);
    closers.push(() => chain.destroy());
    const ctx = apiContext(config, redis, chain, log);
    const api = await serveApi(ctx, "127.0.0.1", 0);
    closers.push(() => api.close());
    const keyOf = async (s: JsonRpcSigner, name: string) => (await ctx.keys.issue(await s.getAddress(), name)).key;
    const pharmacyKeys = await Promise.all(pharmacies.map((p, i) => keyOf(p, `pharmacy ${i}`)));
    const insurerKey = await keyOf(insurer, "insurer");
    const makerKey = await keyOf(maker, "maker");
    const post = async <T>(path: string, key: string, body: unknown, contentType = "application/json") => {
      const res = await fetch(api.url + path, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": contentType },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const json = (await res.json()) as T;
      if (res.status >= 300 && res.status !== 202) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };

    // ---- leg 1: dispensing by 10 pharmacies at once ----
    const dispenseTxs: Tx[] = [];
    const requests = pharmacies.flatMap((_, i) =>
      Array.from({ length: DISPENSE_PER_PHARMACY }, (_, n) => ({
        pharmacy: i,
        code: scanned(stockCodes[(i * casesEach + settleCasesEach) * 100 + n]!),
      })),
    );
    let t = performance.now();
    const dispenseLatencies = (
      await Promise.all(
        pharmacies.map((_, i) =>
          pool(
            requests.filter((r) => r.pharmacy === i),
            IN_FLIGHT_PER_PHARMACY,
            async (r) => {
              const answer = await post<{ transactions: Tx[] }>("/v1/dispense", pharmacyKeys[i]!, { codes: [r.code] });
              dispenseTxs.push(...answer.transactions);
            },
          ),
        ),
      )
    ).flat();
    const dispenseSeconds = (performance.now() - t) / 1000;
    dispenseLatencies.sort((a, b) => a - b);
    const dispense = {
      requests: requests.length,
      rps: Math.round(requests.length / dispenseSeconds),
      gasPerUnit: gasPerUnit(dispenseTxs, requests.length),
      transactions: new Set(dispenseTxs.map((x) => x.txHash)).size,
      p50Ms: Math.round(percentile(dispenseLatencies, 0.5)),
      p99Ms: Math.round(percentile(dispenseLatencies, 0.99)),
    };
    console.log(`dispense: ${JSON.stringify(dispense)}`);

    // ---- leg 2: 1,000 claims of 10 codes settled by one insurer ----
    const claims = Array.from({ length: CLAIMS }, (_, k) => {
      const perPharmacy = CLAIMS / PHARMACIES;
      const i = Math.floor(k / perPharmacy);
      const first = i * casesEach * 100 + (k % perPharmacy) * CODES_PER_CLAIM;
      const codes = Array.from({ length: CODES_PER_CLAIM }, (_, u) => scanned(stockCodes[first + u]!));
      return { pharmacy: i, claimRef: `BENCH-CLAIM-${k}`, codes };
    });
    const insurerAccount = await insurer.getAddress();
    await pool(claims, 20, async (c) => {
      await post("/v1/claims", pharmacyKeys[c.pharmacy]!, {
        insurer: insurerAccount,
        claimRef: c.claimRef,
        lines: c.codes.map((code) => ({ code })),
      });
    });
    const settleTxs: Tx[] = [];
    t = performance.now();
    await pool(claims, SETTLE_IN_FLIGHT, async (c) => {
      const answer = await post<{ transactions: Tx[] }>("/v1/claims/settle", insurerKey, { claimRef: c.claimRef });
      settleTxs.push(...answer.transactions);
    });
    const settleSeconds = (performance.now() - t) / 1000;
    const settle = {
      claims: CLAIMS,
      claimsPerSecond: Math.round((CLAIMS / settleSeconds) * 10) / 10,
      gasPerUnit: gasPerUnit(settleTxs, CLAIMS * CODES_PER_CLAIM),
      transactions: new Set(settleTxs.map((x) => x.txHash)).size,
    };
    console.log(`settle: ${JSON.stringify(settle)}`);

    // ---- leg 3: commissioning 100,000 units with cases and pallets in one request ----
    const shape = { unitCount: COMMISSION_UNITS, unitsPerCase: 100, casesPerPallet: 10 };
    const codes = demoRunCodes(PRODUCT, shape, 50_000_000).map(scanned);
    const csv = packingOrder(codes, shape)
      .map((l) => `${l.code},${l.level}`)
      .join("\n");
    t = performance.now();
    const job = await post<{ jobId: string; runs: { planned: number } }>(
      "/v1/batches/2/commissions",
      makerKey,
      csv,
      "text/csv",
    );
    const accepted = performance.now() - t;
    let status: { status: string; codes: { total: number }; gasUsed: number; errors: unknown[] };
    for (;;) {
      const res = await fetch(`${api.url}/v1/jobs/${job.jobId}`, { headers: { authorization: `Bearer ${makerKey}` } });
      status = (await res.json()) as typeof status;
      if (status.status !== "running") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const commissionSeconds = (performance.now() - t) / 1000;
    if (status.status !== "done")
      throw new Error(`commissioning job ${status.status}: ${JSON.stringify(status.errors)}`);
    const commission = {
      codes: status.codes.total,
      runs: job.runs.planned,
      acceptedMs: Math.round(accepted),
      seconds: Math.round(commissionSeconds * 10) / 10,
      codesPerSecond: Math.round(status.codes.total / commissionSeconds),
      gasPerCode: Math.round(status.gasUsed / status.codes.total),
    };
    console.log(`commission: ${JSON.stringify(commission)}`);
    const over = (measured: number, baseline: number) => `${Math.round((measured / baseline - 1) * 100)}%`;
    console.log(
      `gas per unit against bench:gas's batched figures: dispense ${dispense.gasPerUnit} vs ${BATCHED.dispense} ` +
        `(${over(dispense.gasPerUnit, BATCHED.dispense)}; sealed case in baskets of 5 ${BATCHED.dispenseSealedCase5}: ` +
        `${over(dispense.gasPerUnit, BATCHED.dispenseSealedCase5)}; basket of 5 from an opened case ` +
        `${BATCHED.dispenseBasket5}: ${over(dispense.gasPerUnit, BATCHED.dispenseBasket5)}), settle ${settle.gasPerUnit} vs ${BATCHED.settle} ` +
        `(${over(settle.gasPerUnit, BATCHED.settle)}; 10 claims of 10 ${BATCHED.settle10x10}: ` +
        `${over(settle.gasPerUnit, BATCHED.settle10x10)})`,
    );
    console.log(
      JSON.stringify({
        dispenseRps: dispense.rps,
        dispenseGasPerUnit: dispense.gasPerUnit,
        dispenseP99Ms: dispense.p99Ms,
        dispenseTransactions: dispense.transactions,
        dispenseBatchedGasPerUnit100: BATCHED.dispense,
        dispenseBatchedGasPerUnitBasket5: BATCHED.dispenseBasket5,
        dispenseBatchedGasPerUnitSealedCase5: BATCHED.dispenseSealedCase5,
        settleClaimsPerSecond: settle.claimsPerSecond,
        settleGasPerUnit: settle.gasPerUnit,
        settleTransactions: settle.transactions,
        settleBatchedGasPerUnit100: BATCHED.settle,
        settleBatchedGasPerUnit10x10: BATCHED.settle10x10,
        commissionCodesPerSecond: commission.codesPerSecond,
        commissionRuns: commission.runs,
      }),
    );
  } finally {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    provider.destroy();
    if (node.child.pid) process.kill(-node.child.pid, "SIGKILL");
    await redisServer.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
