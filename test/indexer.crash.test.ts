/**
 * Crash and outage tests of the indexer: the real CLI SIGKILLed many times mid-ingest, Redis killed under a
 * running indexer (with and without an append-only file) and the chain node going away. Each ends by comparing
 * the canonical dump of the index with a clean rebuild's.
 *
 * Kill timings come from a seeded PRNG: set CRASH_SEED to replay a failing run (the seed is in every message).
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import hre, { ethers } from "hardhat";
import { TASK_NODE_CREATE_SERVER } from "hardhat/builtin-tasks/task-names";
import { dumpIndex } from "../backend/index/dump";
import { META } from "../backend/index/keys";
import { IndexStore, type Checkpoint } from "../backend/index/store";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { mulberry32 } from "../backend/util/random";
import { freePort, startRedis, type RedisServer } from "../scripts/lib/redis-server";
import type { DrugLedger } from "../typechain-types";
import { newIndexer, startRpcServer, type TestIndexer } from "./helpers/indexer";
import {
  caseRef,
  commissionRun,
  deployLedger,
  packRefs,
  palletRef,
  settlePartialWithConsent,
  settleWithConsent,
  ship,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";

const ROOT = path.resolve(__dirname, "..");
const SEED = Number(process.env.CRASH_SEED ?? 0x5eed1);
const RUNS = 18;
const KILL_ROUNDS = 10;
const BATCH_MAX_CODES = 1000;

interface Rpc {
  url: string;
  close(): Promise<void>;
}

interface JsonRpcServer {
  listen(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Small utilities

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const prng = mulberry32;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
};

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs` with `what()`. */
async function waitFor<T>(
  what: () => string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(everyMs);
  }
}

/** The outcome of an indexer's run() after stop(): null, its error, or an error if it does not return in 10 s. */
function stopped(outcome: Promise<Error | null>): Promise<Error | null> {
  return Promise.race([outcome, sleep(10_000).then(() => new Error("run() did not return within 10 s of stop()"))]);
}

async function checkpointOf(redis: RedisClient): Promise<Checkpoint | null> {
  return new IndexStore(redis).checkpoint();
}

/** A short-lived client of the test's own (the indexer's client keeps its production retry settings). */
async function withRedis<T>(url: string, use: (redis: RedisClient) => Promise<T>): Promise<T> {
  const redis = connectRedis({ url });
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

/** Asserts two dumps are equal, showing the first differing lines rather than megabytes of them. */
function expectSameDump(actual: string[], expected: string[], label: string): void {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  if (i === actual.length && i === expected.length) return;
  const show = (lines: string[]) =>
    lines
      .slice(Math.max(0, i - 2), i + 4)
      .map((l, k) => `    ${Math.max(0, i - 2) + k}: ${l.length > 160 ? l.slice(0, 160) + "…" : l}`)
      .join("\n") || "    (nothing)";
  const missing = expected.filter((l) => !actual.includes(l)).length;
  const extra = actual.filter((l) => !expected.includes(l)).length;
  expect.fail(
    `${label}: dump differs from a clean rebuild at line ${i} ` +
      `(${actual.length} vs ${expected.length} lines; ${missing} missing, ${extra} extra)\n` +
      `  index:\n${show(actual)}\n  rebuild:\n${show(expected)}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Processes and servers, all cleaned up in after() hooks

/** Runs an in-process indexer until it is stopped; `outcome` is its error, or null once it stopped cleanly. */
function runInBackground(t: TestIndexer) {
  const background = {
    outcome: t.indexer.run().then(
      () => null,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    ),
    ended: undefined as Error | null | undefined,
    context: () =>
      `status ${JSON.stringify(t.indexer.status)}` +
      (background.ended !== undefined ? `; run ended: ${background.ended?.message}` : ""),
  };
  void background.outcome.then((e) => (background.ended = e));
  return background;
}

const children = new Set<ChildProcess>();
const redisServers = new Set<RedisServer>();
const rpcServers = new Set<Rpc>();
const indexers = new Set<TestIndexer>();

process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

async function newRedis(appendonly = false): Promise<RedisServer> {
  const server = await startRedis({ appendonly });
  redisServers.add(server);
  return server;
}

async function stopRedis(server: RedisServer): Promise<void> {
  redisServers.delete(server);
  await server.stop();
}

/** Serves the in-process network on a given port (a node coming back where it was). */
async function rpcOnPort(port: number): Promise<Rpc> {
  const server = (await hre.run(TASK_NODE_CREATE_SERVER, {
    hostname: "127.0.0.1",
    port,
    provider: hre.network.provider,
  })) as JsonRpcServer;
  await server.listen();
  const rpc: Rpc = {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      rpcServers.delete(rpc);
      await server.close();
    },
  };
  rpcServers.add(rpc);
  return rpc;
}

async function track<T extends TestIndexer>(t: Promise<T>): Promise<T> {
  const ix = await t;
  indexers.add(ix);
  return ix;
}

function closeIndexer(ix: TestIndexer): void {
  ix.indexer.stop();
  ix.close();
  indexers.delete(ix);
}

interface CliIndexer {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/**
 * The real indexer CLI as a child process. `node -r ts-node/register/transpile-only` starts as fast as
 * `npx ts-node --transpile-only` here, and the signal reaches the indexer itself: npx runs it under `sh` and a
 * second node, and a SIGKILL of npx leaves the indexer running as an orphan.
 */
function spawnCli(env: Record<string, string>): CliIndexer {
  const proc = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "scripts/indexer.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  let out = "";
  const keep = (chunk: Buffer): void => {
    out = (out + chunk.toString("utf8")).slice(-6000);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("error", (err) => {
      keep(Buffer.from(`spawn error: ${err.message}\n`));
      resolve({ code: null, signal: null });
    });
    proc.once("exit", (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
  });
  return { proc, exited, output: () => out };
}

const running = (cli: CliIndexer): boolean => cli.proc.exitCode === null && cli.proc.signalCode === null;

// ---------------------------------------------------------------------------------------------------
// A sizeable ledger history with most kinds of event

interface History {
  f: LedgerFixture;
  ledger: DrugLedger;
  address: string;
  firstBlock: number;
  head: number;
  codes: number;
}

async function buildHistory(): Promise<History> {
  const firstBlock = (await ethers.provider.getBlockNumber()) + 1;
  const f = await deployLedger();
  const { ledger, admin, regulator, maker, otherMaker, distributor, pharmacy, otherPharmacy, insurer, otherInsurer } =
    f;
  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  await ledger.connect(maker).registerBatch(1, "LOT-CRASH-2", now - 86_400, now + 400 * 86_400);
  await ledger.connect(otherMaker).registerProduct("8654321", "Ibuprofen 200mg", "H20000002", "tablet 10/box", 10);
  await ledger.connect(regulator).setReturnWindow(30);
  let codes = 0;
  for (let i = 0; i < RUNS; i++) {
    const batchId = i % 3 === 2 ? 2n : f.batchId;
    const shape = { unitCount: 3000 + ((i * 737) % 2001), unitsPerCase: 50, casesPerPallet: 10 };
    const { runId } = await commissionRun(ledger, maker, batchId, shape);
    codes += shape.unitCount + Math.ceil(shape.unitCount / 50) + Math.ceil(shape.unitCount / 500);

    // Three pallets to the distributor; every third shipment arrives short and the maker takes a pallet back.
    const pallets = [palletRef(runId, 0), palletRef(runId, 1), palletRef(runId, 2)];
    const toDistributor = await ship(ledger, maker, distributor, pallets);
    if (i % 3 === 1) {
      await ledger.connect(distributor).receiveShipment(toDistributor, packRefs(pallets.slice(0, 2)));
      await ledger.connect(maker).returnToSender(toDistributor, packRefs(pallets.slice(2)));
    } else {
      await ledger.connect(distributor).receiveShipment(toDistributor, packRefs(pallets));
    }

    // Two cases and a loose unit on to a pharmacy, which dispenses, takes one back; the insurer settles.
    const toPharmacy = [caseRef(runId, 0), caseRef(runId, 1), unitRef(runId, 120)];
    const pharmacyHere = i % 4 === 3 ? otherPharmacy : pharmacy;
    const shipment = await ship(ledger, distributor, pharmacyHere, toPharmacy);
    await ledger.connect(pharmacyHere).receiveShipment(shipment, packRefs(toPharmacy));
    const sold = Array.from({ length: 20 }, (_, k) => unitRef(runId, k));
    await ledger.connect(pharmacyHere).dispense(packRefs(sold), ethers.id(`rx-${i}`));
    await ledger.connect(pharmacyHere).undoDispense(packRefs([sold[19]!]));
    const claim = ethers.id(`claim-${i}`);
    const payer = i % 2 === 0 ? insurer : otherInsurer;
    await settleWithConsent(ledger, payer, pharmacyHere, claim, packRefs(sold.slice(0, 10)));
    if (i % 2 === 1) {
      await ledger.connect(payer).reverseSettlement(claim, pharmacyHere.address, packRefs([sold[9]!]), "billing error");
    }

    if (i % 4 === 0) {
      // A split pack: doses dispensed, some taken back, some settled, one settlement reversed.
      const pack = unitRef(runId, 60);
      await ledger.connect(pharmacyHere).dispensePartial(pack, 5, ethers.id(`rx-split-${i}`));
      await ledger.connect(pharmacyHere).dispensePartial(pack, 3, ethers.ZeroHash);
      await ledger.connect(pharmacyHere).undoDispensePartial(pack, 2);
      await settlePartialWithConsent(ledger, insurer, pharmacyHere, ethers.id(`split-${i}`), pack, 4);
      await settlePartialWithConsent(ledger, insurer, pharmacyHere, ethers.id(`split-b-${i}`), pack, 1);
      await ledger
        .connect(insurer)
        .reversePartialSettlement(ethers.id(`split-b-${i}`), pharmacyHere.address, pack, "duplicate");
    }
    if (i % 5 === 2) await ledger.connect(distributor).decommission(packRefs([unitRef(runId, 160)]), 1);
    if (i === 7) {
      await ledger.connect(maker).recallBatch(2, "label misprint");
      await ledger.connect(regulator).liftRecall(2, "relabelled");
      await ledger.connect(regulator).suspend(otherPharmacy.address, "inspection");
      await ledger.connect(regulator).reinstate(otherPharmacy.address);
      const role = await ledger.REGULATOR_ROLE();
      await ledger.connect(admin).grantRole(role, f.outsider.address);
      await ledger.connect(admin).revokeRole(role, f.outsider.address);
    }
  }
  return {
    f,
    ledger,
    address: await ledger.getAddress(),
    firstBlock,
    head: await ethers.provider.getBlockNumber(),
    codes,
  };
}

/** Indexes the ledger from scratch into a fresh Redis and returns the canonical dump. */
async function cleanRebuild(rpcUrl: string, address: string): Promise<{ lines: string[]; ms: number }> {
  const server = await newRedis(false);
  try {
    return await withRedis(server.url, async (redis) => {
      const t = await track(newIndexer(rpcUrl, address, redis));
      try {
        const started = Date.now();
        await t.indexer.syncOnce();
        const ms = Date.now() - started;
        return { lines: (await dumpIndex(redis)).lines, ms };
      } finally {
        closeIndexer(t);
      }
    });
  } finally {
    await stopRedis(server);
  }
}

// ---------------------------------------------------------------------------------------------------

describe("Indexer: crashes and outages", function () {
  let rpc: Rpc;
  let h: History;
  let reference: string[];
  let rebuildMs: number;

  before(async function () {
    this.timeout(120_000);
    const started = Date.now();
    h = await buildHistory();
    rpc = await startRpcServer();
    rpcServers.add(rpc);
    ({ lines: reference, ms: rebuildMs } = await cleanRebuild(rpc.url, h.address));
    console.log(
      `      history: blocks ${h.firstBlock}..${h.head}, ${h.codes} codes, ${reference.length} dump lines; ` +
        `built in ${Date.now() - started} ms (clean rebuild ${rebuildMs} ms)`,
    );
  });

  after(async function () {
    this.timeout(30_000);
    for (const child of children) child.kill("SIGKILL");
    for (const ix of [...indexers]) closeIndexer(ix);
    await Promise.allSettled([...rpcServers].map((r) => r.close()));
    await Promise.allSettled([...redisServers].map((s) => stopRedis(s)));
  });

  it("survives SIGKILL of the indexer CLI at random points of an ingest", async function () {
    this.timeout(150_000);
    const rng = prng(SEED);
    const server = await newRedis(true);
    const env: Record<string, string> = {
      RPC_URL: rpc.url,
      REDIS_URL: server.url,
      REDIS_CLUSTER_NODES: "",
      LEDGER_ADDRESS: h.address,
      // From the ledger's deployment: blocks of earlier test files before it hold nothing to interrupt, and kills
      // spent crossing them would not count as mid-ingest.
      START_BLOCK: String(h.firstBlock),
      LOG_LEVEL: "warn",
      POLL_INTERVAL_MS: "50",
      BATCH_MAX_CODES: String(BATCH_MAX_CODES),
      REORG_DEPTH: "64",
      CONFIRMATIONS: "0",
      LOG_RANGE_MAX_BLOCKS: "5000",
      CODE_BUCKET_BITS: "16",
    };
    const redis = connectRedis({ url: server.url });
    try {
      // Kills after the first commit of a round are spread over a window a fraction of a full ingest long,
      // so that progress per round is small and most rounds die mid-ingest; some rounds kill blind from the
      // spawn, which may land in start-up, connection or the first eth_getLogs.
      const window = Math.max(150, Math.round(rebuildMs / 6));
      const startups: number[] = [];
      const rounds: { mode: string; delay: number; before: number; after: number }[] = [];
      const summary = () =>
        rounds.map((r) => `${r.mode === "blind" ? "b" : "c"}${r.delay}ms:${r.before}->${r.after}`).join(" ");
      const landedMidIngest = (r: (typeof rounds)[number]) =>
        r.after >= h.firstBlock && r.after < h.head && r.after > r.before;
      const midIngestSoFar = () => rounds.filter(landedMidIngest).length;
      // At least KILL_ROUNDS kills; more (bounded) while fewer than 3 landed mid-ingest, on an index wiped once it
      // reaches the head: on a fast machine a few kills' progress finishes the whole ingest, leaving later kills
      // nothing to interrupt.
      for (let round = 0; round < KILL_ROUNDS || (midIngestSoFar() < 3 && round < 3 * KILL_ROUNDS); round++) {
        if (round >= KILL_ROUNDS && (await checkpointOf(redis))?.number === h.head) await redis.flushall();
        const before = (await checkpointOf(redis))?.number ?? -1;
        const cli = spawnCli(env);
        const spawnedAt = Date.now();
        let seen = "";
        const context = () =>
          `round ${round} (CRASH_SEED=${SEED}; earlier rounds ${summary()}; ${seen}); indexer output:\n${cli.output()}`;
        let mode: string;
        let delay: number;
        if (rng() < 0.25 || before === h.head) {
          mode = "blind";
          // Until a start-up is measured, guess short: a whole ingest now fits in a couple of seconds, and a blind
          // kill that lands after it has nothing left to interrupt.
          delay = Math.round(rng() * ((startups.length > 0 ? median(startups) : 1000) + window));
          await sleep(delay);
        } else {
          mode = "after-commit";
          await waitFor(context, 30_000, async () => {
            if (!running(cli)) throw new Error(`the indexer exited by itself in ${context()}`);
            const cp = await checkpointOf(redis);
            seen = `checkpoint ${cp?.number}, status ${await redis.get(META.status)}`;
            return cp && cp.number !== before ? true : undefined;
          });
          startups.push(Date.now() - spawnedAt);
          delay = Math.round(rng() * window);
          await sleep(delay);
        }
        expect(running(cli), `the indexer exited by itself in ${context()}`).to.equal(true);
        cli.proc.kill("SIGKILL");
        const { signal } = await cli.exited;
        expect(signal, context()).to.equal("SIGKILL");
        const after = (await checkpointOf(redis))?.number ?? -1;
        expect(after, `checkpoint went backwards in ${context()}`).to.be.at.least(before);
        rounds.push({ mode, delay, before, after });
      }

      const midIngest = rounds.filter(landedMidIngest);
      console.log(
        `      ${rounds.length} kills (seed ${SEED}, window ${window} ms): ` +
          summary() +
          `; ${midIngest.length} mid-ingest; spawn to first commit ~${median(startups)} ms; head ${h.head}`,
      );

      // One last run to the head, then a clean stop. At level info it says when its signal handlers are in place
      // (the checkpoint may be at the head already, and a SIGTERM before that kills node outright).
      const cli = spawnCli({ ...env, LOG_LEVEL: "info" });
      const spawnedAt = Date.now();
      let startedMs: number | undefined;
      const context = () => `the final run (CRASH_SEED=${SEED}); indexer output:\n${cli.output()}`;
      await waitFor(context, 60_000, async () => {
        if (!running(cli)) throw new Error(`the indexer exited by itself in ${context()}`);
        if (!cli.output().includes('"msg":"indexer started"')) return undefined;
        startedMs ??= Date.now() - spawnedAt;
        return (await checkpointOf(redis))?.number === h.head ? true : undefined;
      });
      console.log(`      final run: started ${startedMs} ms, caught up ${Date.now() - spawnedAt} ms after its spawn`);
      cli.proc.kill("SIGTERM");
      const exit = await Promise.race([cli.exited, sleep(15_000).then(() => null)]);
      expect(exit, `the indexer did not exit within 15 s of SIGTERM: ${context()}`).to.not.equal(null);
      expect(exit, context()).to.deep.equal({ code: 0, signal: null });

      expectSameDump((await dumpIndex(redis)).lines, reference, `after ${rounds.length} kills (CRASH_SEED=${SEED})`);
      expect(midIngest.length, "kills that landed mid-ingest").to.be.at.least(3);
    } finally {
      redis.disconnect();
      await stopRedis(server);
    }
  });

  for (const appendonly of [true, false]) {
    it(`recovers when Redis restarts mid-ingest ${appendonly ? "with its data (AOF)" : "empty (no AOF)"}`, async function () {
      this.timeout(90_000);
      const server = await newRedis(appendonly);
      const redis = connectRedis({ url: server.url });
      const t = await track(newIndexer(rpc.url, h.address, redis, { batchMaxCodes: BATCH_MAX_CODES }));
      const background = runInBackground(t);
      const { outcome, context } = background;
      try {
        const third = h.firstBlock + Math.floor((h.head - h.firstBlock) / 3);
        const atKill = await withRedis(server.url, (probe) =>
          waitFor(context, 30_000, async () => {
            if (background.ended !== undefined) throw new Error(`the indexer stopped: ${context()}`);
            const cp = await checkpointOf(probe);
            return cp && cp.number >= third ? cp : undefined;
          }),
        );
        expect(atKill.number, "Redis must go down mid-ingest").to.be.below(h.head);
        await server.kill();
        await sleep(1500);
        await server.start();
        const afterRestart = await withRedis(server.url, checkpointOf);
        if (appendonly) {
          expect(afterRestart?.number, "checkpoint survives in the AOF").to.be.at.least(atKill.number);
        } else {
          expect(afterRestart?.number ?? -1, "checkpoint lost with the data").to.be.below(atKill.number);
        }
        await withRedis(server.url, (probe) =>
          waitFor(context, 60_000, async () => {
            if (background.ended !== undefined) throw new Error(`the indexer stopped: ${context()}`);
            return (await checkpointOf(probe))?.number === h.head ? true : undefined;
          }),
        );
        t.indexer.stop();
        expect(await stopped(outcome), context()).to.equal(null);
        console.log(
          `      checkpoint ${atKill.number} at the kill, ${afterRestart?.number ?? "none"} after the restart; ` +
            `${t.indexer.status.retries} retries (${t.indexer.status.lastError})`,
        );
        expect(t.indexer.status.retries, context()).to.be.greaterThan(0);
        expectSameDump((await dumpIndex(redis)).lines, reference, `Redis restarted (appendonly ${appendonly})`);
      } finally {
        closeIndexer(t);
        await Promise.race([outcome, sleep(5000)]);
        redis.disconnect();
        await stopRedis(server);
      }
    });
  }

  it("recovers when its Redis connection drops with a reply outstanding", async function () {
    this.timeout(60_000);
    const server = await newRedis(false);
    // ioredis leaves a command whose connection dropped pending for ever; the command timeout turns it into an
    // error the indexer retries. A short one keeps the test quick.
    const redis = connectRedis({ url: server.url }, undefined, 1000);
    const t = await track(newIndexer(rpc.url, h.address, redis, { pollIntervalMs: 50 }));
    const { outcome } = runInBackground(t);
    try {
      await withRedis(server.url, async (admin) => {
        await waitFor(
          () => JSON.stringify(t.indexer.status),
          60_000,
          async () => ((await checkpointOf(admin))?.number === h.head ? true : undefined),
        );
        // Hold the indexer's next write in the server, drop its connection while the reply is outstanding, and
        // let the server go on: the indexer's client reconnects at once.
        const redisAdmin = admin as unknown as { client(...args: string[]): Promise<unknown> };
        await redisAdmin.client("PAUSE", "2000", "WRITE");
        await sleep(300);
        await redisAdmin.client("KILL", "TYPE", "normal", "SKIPME", "yes");
        await redisAdmin.client("UNPAUSE");
      });
      const now = (await ethers.provider.getBlock("latest"))!.timestamp;
      await h.ledger
        .connect(h.f.maker)
        .registerBatch(h.f.productId, `LOT-AFTER-DROP`, now - 86_400, now + 400 * 86_400);
      const head = await ethers.provider.getBlockNumber();
      await withRedis(server.url, (probe) =>
        waitFor(
          () => JSON.stringify(t.indexer.status),
          20_000,
          async () => ((await checkpointOf(probe))?.number === head ? true : undefined),
        ),
      );
      expect(t.indexer.status.retries).to.be.greaterThan(0);
      t.indexer.stop();
      expect(await stopped(outcome)).to.equal(null);
    } finally {
      closeIndexer(t);
      await Promise.race([outcome, sleep(5000)]);
      redis.disconnect();
      await stopRedis(server);
    }
  });

  it("catches up when the chain node goes away and comes back on the same port", async function () {
    this.timeout(90_000);
    const port = await freePort();
    let node = await rpcOnPort(port);
    const server = await newRedis(false);
    const redis = connectRedis({ url: server.url });
    const t = await track(newIndexer(node.url, h.address, redis, { batchMaxCodes: BATCH_MAX_CODES }));
    const background = runInBackground(t);
    const { outcome, context } = background;
    const reaches = (block: number, timeoutMs: number) =>
      waitFor(context, timeoutMs, async () => {
        if (background.ended !== undefined) throw new Error(`the indexer stopped: ${context()}`);
        return (await checkpointOf(redis))?.number === block ? true : undefined;
      });
    try {
      await reaches(await ethers.provider.getBlockNumber(), 60_000);
      await node.close();
      const retriesBefore = t.indexer.status.retries;

      // New blocks while the node is unreachable: a run, shipments, dispensing, a settlement.
      const { ledger, maker, distributor, pharmacy, insurer } = h.f;
      const { runId } = await commissionRun(ledger, maker, h.f.batchId, {
        unitCount: 3000,
        unitsPerCase: 50,
        casesPerPallet: 10,
      });
      const pallets = [palletRef(runId, 0)];
      const s1 = await ship(ledger, maker, distributor, pallets);
      await ledger.connect(distributor).receiveShipment(s1, packRefs(pallets));
      const cases = [caseRef(runId, 0)];
      const s2 = await ship(ledger, distributor, pharmacy, cases);
      await ledger.connect(pharmacy).receiveShipment(s2, packRefs(cases));
      const sold = [unitRef(runId, 0), unitRef(runId, 1), unitRef(runId, 2)];
      await ledger.connect(pharmacy).dispense(packRefs(sold), ethers.id("rx-away"));
      await settleWithConsent(ledger, insurer, pharmacy, ethers.id("claim-away"), packRefs(sold.slice(0, 2)));
      const head = await ethers.provider.getBlockNumber();

      await waitFor(context, 10_000, async () => (t.indexer.status.retries > retriesBefore ? true : undefined));
      await sleep(1000);
      node = await rpcOnPort(port);
      await reaches(head, 60_000);
      t.indexer.stop();
      expect(await stopped(outcome), context()).to.equal(null);
      console.log(
        `      ${t.indexer.status.retries - retriesBefore} retries while the node was away (${t.indexer.status.lastError})`,
      );
      const rebuilt = await cleanRebuild(node.url, h.address);
      expectSameDump((await dumpIndex(redis)).lines, rebuilt.lines, "after the node came back");
    } finally {
      closeIndexer(t);
      await Promise.race([outcome, sleep(5000)]);
      redis.disconnect();
      await stopRedis(server);
      await node.close().catch(() => undefined);
    }
  });
});
