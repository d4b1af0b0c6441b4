/**
 * API benchmark: indexes at least 100,000 unit codes with realistic custody (pallets at a distributor, half the
 * cases on at a pharmacy, some packs dispensed there), then drives over 127.0.0.1 with autocannon (50
 * connections, in a child process so that the load generator does not share the server's event loop), in the
 * same run: the scan on random known codes, a bare Express 5 route returning a constant JSON, and a 10-code
 * claim check. Each leg runs BENCH_API_RUNS times (default 3), interleaved; figures are medians.
 *
 * BENCH_API_UNITS (default 100,000), BENCH_API_SECONDS (per leg and run, default 10), BENCH_API_CONNECTIONS (50).
 * BENCH_API_PROFILE=<dir>: a CPU profile of the service's process during each leg of the first run
 * (`<leg>.cpuprofile`, for Chrome DevTools or speedscope; one process only).
 * BENCH_API_WORKERS=n (default 1): the API and the bare route each served by the same n processes (node:cluster,
 * as API_WORKERS runs the service), so that the two are compared in the same process shape; CPU per request is
 * then the workers' and the primary's together.
 * The last line of output is one JSON object.
 */
import { spawn } from "node:child_process";
import cluster, { type Worker } from "node:cluster";
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { JsonRpcProvider } from "ethers";
import type { AddressInfo } from "node:net";
import { loadAlertSettings } from "../backend/alerts";
import { loadClaimSettings } from "../backend/api/claims-config";
import { loadCommissionSettings } from "../backend/api/commissioning";
import { apiContext, serveApi } from "../backend/api/service";
import { LedgerChain } from "../backend/chain/client";
import { demoRunCodes } from "../backend/chain/runs";
import { totalCodes } from "../backend/codes/run";
import { loadConfig } from "../backend/config/env";
import { createLogger } from "../backend/log";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { indexChain, populate, PRODUCT_CODE, SHAPE, startNode } from "./lib/bench-chain";
import type { BenchWorkerSetup } from "./lib/bench-api-worker";
import { bareExpress } from "./lib/bench-bare";
import { freePort, startRedis } from "./lib/redis-server";

const UNITS = Number(process.env.BENCH_API_UNITS ?? 100_000);
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 10);
const RUNS = Number(process.env.BENCH_API_RUNS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_API_CONNECTIONS ?? 50);
const PROFILE_DIR = process.env.BENCH_API_PROFILE;
const WORKERS = Number(process.env.BENCH_API_WORKERS ?? 1);
const DISPENSED_PER_RUN = 1_000;

interface Leg {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  /** GET: one path is picked at random per request. */
  paths?: string[];
  /** POST to `path`: a claim check of `lineCount` random codes of `codes`. */
  claim?: { path: string; pharmacy: string; codes: string[]; lineCount: number };
  seconds: number;
}

interface LegResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** The service's CPU time per request (µs), measured here, not by the load generator. */
  cpuUs?: number;
  /** redis-server's CPU time per request (µs): it shares the two cores with the service and the load generator. */
  redisCpuUs?: number;
  /** Redis commands per request (a script counts once). */
  redisCommands?: number;
}

/**
 * autocannon in a child process (plain JS, so it needs no TypeScript loader; not a worker thread, where
 * autocannon reports raw histograms instead of its summary). The leg arrives on stdin, the result leaves on stdout.
 */
const LOAD_GENERATOR = `
const autocannon = require("autocannon");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
const leg = JSON.parse(input);
const pick = (list) => list[Math.floor(Math.random() * list.length)];
let n = 0;
const setupRequest = (req) => {
  if (leg.paths) return { ...req, path: pick(leg.paths) };
  const lines = Array.from({ length: leg.claim.lineCount }, () => ({ code: pick(leg.claim.codes) }));
  return { ...req, path: leg.claim.path, body: JSON.stringify({ claimRef: "bench-" + process.pid + "-" + n++, pharmacy: leg.claim.pharmacy, lines }) };
};
autocannon(
  { url: leg.url, connections: leg.connections, duration: leg.seconds, method: leg.method,
    headers: leg.headers, requests: [{ setupRequest }] },
  (err, r) => {
    if (err) throw err;
    process.stdout.write(JSON.stringify({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99,
      requests: r.requests.total, non2xx: r.non2xx, errors: r.errors + r.timeouts }));
  },
);
});
`;

function drive(leg: Leg): Promise<LegResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", LOAD_GENERATOR], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      resolve(JSON.parse(out) as LegResult);
    });
    child.stdin.end(JSON.stringify({ ...leg, connections: CONNECTIONS }));
  });
}

/** Runs `work` under the V8 CPU profiler and writes the profile to `<PROFILE_DIR>/<name>.cpuprofile`. */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!PROFILE_DIR) return work();
  mkdirSync(PROFILE_DIR, { recursive: true });
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await work();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** BENCH_API_WORKERS processes serving the API and the bare route on shared ports (scripts/lib/bench-api-worker.ts). */
async function startWorkers(setup: BenchWorkerSetup): Promise<{ workers: Worker[]; stop: () => Promise<void> }> {
  cluster.setupPrimary({
    exec: join(__dirname, "lib", "bench-api-worker.ts"),
    execArgv: ["-r", "ts-node/register/transpile-only"],
  });
  const workers = Array.from({ length: WORKERS }, () => cluster.fork({ BENCH_API_WORKER: JSON.stringify(setup) }));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.once("message", (m) => (m === "ready" ? resolve() : reject(new Error(`worker said ${String(m)}`))));
          w.once("exit", (code) => reject(new Error(`bench worker exited with ${code}`)));
        }),
    ),
  );
  const stop = async () => {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => (w.isDead() ? resolve() : (w.once("exit", () => resolve()), w.send("stop")))),
      ),
    );
  };
  return { workers, stop };
}

/** CPU time (µs) of this process and of the workers, so far. */
async function cpuNow(workers: Worker[]): Promise<number> {
  const own = process.cpuUsage();
  const theirs = await Promise.all(
    workers.map(
      (w) =>
        new Promise<number>((resolve) => {
          const onMessage = (m: { cpu?: NodeJS.CpuUsage }) => {
            if (!m.cpu) return;
            w.off("message", onMessage);
            resolve(m.cpu.user + m.cpu.system);
          };
          w.on("message", onMessage);
          w.send("cpu");
        }),
    ),
  );
  return own.user + own.system + theirs.reduce((a, b) => a + b, 0);
}

/** redis-server's CPU time (µs) and commands processed so far, from INFO. */
async function redisLoad(redis: RedisClient): Promise<{ cpuUs: number; commands: number }> {
  const info = await redis.info();
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0);
  return {
    cpuUs: (field("used_cpu_user") + field("used_cpu_sys")) * 1e6,
    // Less this INFO itself, which is counted when it runs.
    commands: field("total_commands_processed") - 1,
  };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const env = {
    ...process.env,
    API_RATE_LIMIT_PER_KEY: "1000000000",
    API_RATE_LIMIT_PER_ADDRESS: "1000000000",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
  };
  const config = {
    ...loadConfig(env),
    ...loadAlertSettings(env),
    ...loadClaimSettings(env),
    ...loadCommissionSettings(env),
  };
  const log = createLogger(config.LOG_LEVEL, "bench-api");
  const redisServer = await startRedis();
  const node = await startNode(await freePort());
  const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
  const closers: (() => Promise<void> | void)[] = [];
  try {
    let t = Date.now();
    const bench = await populate(provider, UNITS, DISPENSED_PER_RUN);
    const codes = bench.runs * totalCodes(SHAPE);
    const codeBucketBits = Math.max(8, Math.ceil(Math.log2(codes / 64)));
    const apiConfig = { ...config, CODE_BUCKET_BITS: codeBucketBits };
    const redis = connectRedis({ url: redisServer.url }, log, apiConfig.REDIS_COMMAND_TIMEOUT_MS);
    closers.push(() => redis.disconnect());
    const status = await indexChain(node.url, bench, redis, codeBucketBits, log, config);
    console.log(
      `indexed ${status.codesIndexed} codes (${bench.runs} runs) in ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );

    const chain = await LedgerChain.connect(node.url, await bench.ledger.getAddress());
    closers.push(() => chain.destroy());
    const ctx = apiContext(apiConfig, redis, chain, log);
    let apiUrl: string;
    let bareUrl: string;
    let workers: Worker[] = [];
    if (WORKERS > 1) {
      const [apiPort, barePort] = [await freePort(), await freePort()];
      const started = await startWorkers({
        config: apiConfig,
        redisUrl: redisServer.url,
        nodeUrl: node.url,
        ledger: await bench.ledger.getAddress(),
        apiPort,
        barePort,
      });
      closers.push(started.stop);
      workers = started.workers;
      apiUrl = `http://127.0.0.1:${apiPort}`;
      bareUrl = `http://127.0.0.1:${barePort}`;
    } else {
      const api = await serveApi(ctx, "127.0.0.1", 0);
      closers.push(() => api.close());
      const bareServer = bareExpress(ctx).listen(0, "127.0.0.1");
      await new Promise((r) => bareServer.once("listening", r));
      closers.push(() => new Promise<void>((r) => bareServer.close(() => r())));
      apiUrl = api.url;
      bareUrl = `http://127.0.0.1:${(bareServer.address() as AddressInfo).port}`;
    }

    const distributorKey = (await ctx.keys.issue(bench.accounts.distributor, "bench scanner")).key;
    const insurerKey = (await ctx.keys.issue(bench.accounts.insurer, "bench claims")).key;
    const unitCodes: string[] = [];
    for (let runId = 1; runId <= bench.runs; runId++)
      for (const c of demoRunCodes(PRODUCT_CODE, SHAPE, bench.serialBase(runId)).slice(0, SHAPE.unitCount))
        unitCodes.push(c.slice(3));
    const dispensedCodes: string[] = [];
    for (let runId = 1; runId <= bench.runs; runId++) {
      const run = demoRunCodes(PRODUCT_CODE, SHAPE, bench.serialBase(runId));
      for (const i of bench.dispensed) dispensedCodes.push(run[i]!.slice(3));
    }

    const legs: Record<"bare" | "floor" | "scan" | "claim", (seconds: number) => Leg> = {
      bare: (seconds) => ({ url: bareUrl, method: "GET", headers: {}, paths: ["/bare"], seconds }),
      floor: (seconds) => ({
        url: bareUrl,
        method: "GET",
        headers: { authorization: `Bearer ${distributorKey}` },
        paths: unitCodes.map((c) => `/floor/${c}`),
        seconds,
      }),
      scan: (seconds) => ({
        url: apiUrl,
        method: "GET",
        headers: { authorization: `Bearer ${distributorKey}` },
        paths: unitCodes.map((c) => `/v1/codes/${c}`),
        seconds,
      }),
      claim: (seconds) => ({
        url: apiUrl,
        method: "POST",
        headers: { authorization: `Bearer ${insurerKey}`, "content-type": "application/json" },
        claim: { path: "/v1/claims/check", pharmacy: bench.accounts.pharmacy, codes: dispensedCodes, lineCount: 10 },
        seconds,
      }),
    };
    // Warm-up: JIT, caches and connections.
    for (const leg of Object.values(legs)) await drive(leg(2));
    const results: Record<keyof typeof legs, LegResult[]> = { bare: [], floor: [], scan: [], claim: [] };
    t = Date.now();
    for (let run = 0; run < RUNS; run++)
      for (const name of ["bare", "floor", "scan", "claim"] as const) {
        const leg = legs[name](SECONDS);
        // The service's CPU per request: a figure other load on the machine disturbs less than req/s.
        const cpu = await cpuNow(workers);
        const redisBefore = await redisLoad(redis);
        const r = run === 0 && WORKERS === 1 ? await profiled(name, () => drive(leg)) : await drive(leg);
        const redisAfter = await redisLoad(redis);
        const perRequest = (total: number) => total / Math.max(1, r.requests);
        const cpuUs = Math.round(perRequest((await cpuNow(workers)) - cpu));
        const redisCpuUs = Math.round(perRequest(redisAfter.cpuUs - redisBefore.cpuUs));
        const redisCommands = Number(perRequest(redisAfter.commands - redisBefore.commands).toFixed(2));
        results[name].push({ ...r, cpuUs, redisCpuUs, redisCommands });
        console.log(
          `run ${run + 1} ${name}: ${Math.round(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${cpuUs} µs CPU/request, ` +
            `Redis ${redisCpuUs} µs CPU and ${redisCommands} commands/request` +
            (r.non2xx || r.errors ? `, ${r.non2xx} non-2xx, ${r.errors} errors` : ""),
        );
      }
    const m = (name: keyof typeof legs, pick: (r: LegResult) => number) => median(results[name].map(pick));
    const failures = Object.values(results)
      .flat()
      .reduce((sum, r) => sum + r.non2xx + r.errors, 0);
    const summary = {
      codesIndexed: status.codesIndexed,
      scanRps: Math.round(m("scan", (r) => r.rps)),
      bareExpressRps: Math.round(m("bare", (r) => r.rps)),
      scanP50Ms: m("scan", (r) => r.p50),
      scanP99Ms: m("scan", (r) => r.p99),
      claimCheckRps: Math.round(m("claim", (r) => r.rps)),
      claimCheckP99Ms: m("claim", (r) => r.p99),
      bareExpressP99Ms: m("bare", (r) => r.p99),
      scanToBareRatio: Number((m("scan", (r) => r.rps) / m("bare", (r) => r.rps)).toFixed(3)),
      // The scan's own work in the bare app, without the service's middleware: what bounds scanToBareRatio.
      scanFloorRps: Math.round(m("floor", (r) => r.rps)),
      scanFloorP99Ms: m("floor", (r) => r.p99),
      scanFloorToBareRatio: Number((m("floor", (r) => r.rps) / m("bare", (r) => r.rps)).toFixed(3)),
      // Where even the bare route misses an absolute latency goal (a slower or busier machine), hold the ratio.
      scanP99ToBareP99Ratio: Number((m("scan", (r) => r.p99) / m("bare", (r) => r.p99)).toFixed(2)),
      cpuUsPerRequest: {
        bare: m("bare", (r) => r.cpuUs ?? 0),
        scanFloor: m("floor", (r) => r.cpuUs ?? 0),
        scan: m("scan", (r) => r.cpuUs ?? 0),
        claimCheck: m("claim", (r) => r.cpuUs ?? 0),
      },
      redisCpuUsPerRequest: {
        scan: m("scan", (r) => r.redisCpuUs ?? 0),
        claimCheck: m("claim", (r) => r.redisCpuUs ?? 0),
      },
      redisCommandsPerRequest: {
        scan: m("scan", (r) => r.redisCommands ?? 0),
        claimCheck: m("claim", (r) => r.redisCommands ?? 0),
      },
      workers: WORKERS,
      runs: RUNS,
      secondsPerLeg: SECONDS,
      connections: CONNECTIONS,
      failedRequests: failures,
    };
    console.log(`${RUNS} runs x 4 legs x ${SECONDS} s in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    console.log(JSON.stringify(summary));
  } finally {
    // The load generator leaves by dropping its connections: let the requests it left in flight finish.
    await new Promise((r) => setTimeout(r, 500));
    for (const close of closers.reverse()) await close();
    provider.destroy();
    if (node.child.pid) process.kill(-node.child.pid, "SIGKILL");
    await redisServer.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
