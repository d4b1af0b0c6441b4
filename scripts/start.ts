/**
 * `npm start`: the whole system on embedded defaults — a local chain on 127.0.0.1 (or RPC_URL when set), the ledger
 * deployed, a local redis-server (unless REDIS_URL already answers), the indexer following the chain and the API
 * serving the pages — with the demo story (scripts/lib/seed.ts) written through the API, running until Ctrl-C.
 * Ports already taken move on to the next free one; Ctrl-C stops every process it started before it exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { loadConfig, type Config } from "../backend/config/env";
import { shapeDifferences } from "../backend/index/indexer";
import { createIndexer } from "../backend/index/service";
import { createLogger } from "../backend/log";
import { startDemoApi, type DemoApi } from "./lib/demo-api";
import { freePortFrom, rpcAnswers } from "./lib/ports";
import { seedStory, type SeedSummary } from "./lib/seed";

const hardhat = require.resolve("hardhat/internal/cli/cli");
const LOOPBACK = "127.0.0.1";
const PAGES = ["/", "/counter", "/insurer", "/manufacturer", "/regulator"];
const say = (msg: string, fields: Record<string, unknown> = {}) => console.log(JSON.stringify({ msg, ...fields }));

/** The processes this run started, stopped in reverse order at Ctrl-C or on a failure. */
class Children {
  private readonly live: ChildProcess[] = [];
  add(child: ChildProcess, name: string, onUnexpectedExit: (message: string) => void): ChildProcess {
    this.live.push(child);
    child.once("exit", (code, signal) => {
      this.live.splice(this.live.indexOf(child), 1);
      if (!this.stopping) onUnexpectedExit(`${name} exited (${signal ?? `code ${code}`})`);
    });
    return child;
  }
  stopping = false;
  /** SIGTERM each child, SIGKILL what has not exited within 5 s, and resolve once all are gone. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.live].reverse().map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
            child.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
  }
}

async function until(what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** RPC_URL when set (it must answer); otherwise a `hardhat node` on RPC_PORT or the next free port. */
async function startChain(config: Config, children: Children, fail: (m: string) => void): Promise<string> {
  if (process.env.RPC_URL) {
    if (!(await rpcAnswers(config.RPC_URL))) throw new Error(`RPC_URL ${config.RPC_URL} does not answer`);
    return config.RPC_URL;
  }
  const port = await freePortFrom("chain (RPC_PORT)", LOOPBACK, config.RPC_PORT);
  if (port !== config.RPC_PORT) say(`port ${config.RPC_PORT} is in use; the chain takes ${port}`);
  const node = spawn(process.execPath, [hardhat, "node", "--hostname", LOOPBACK, "--port", String(port)], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.add(node, "hardhat node", fail);
  const url = `http://${LOOPBACK}:${port}`;
  await until(`the chain at ${url}`, () => rpcAnswers(url), 60_000);
  return url;
}

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const NO_REDIS =
  "Redis is needed: set REDIS_URL to a Redis that answers, or install redis-server " +
  "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) and run npm start again.";

/**
 * REDIS_URL when it answers; otherwise a redis-server on a free loopback port (REDIS_URL's, or the next free one)
 * keeping its data in `.data/redis` with an append-only file, so that the service's own data (API keys, alerts)
 * survives a restart while the index is rebuilt from the chain.
 */
async function startRedis(config: Config, children: Children, fail: (m: string) => void): Promise<string> {
  if (await redisAnswers(config.REDIS_URL)) return config.REDIS_URL;
  const asked = new URL(config.REDIS_URL);
  if (process.env.REDIS_URL && !["127.0.0.1", "localhost"].includes(asked.hostname))
    throw new Error(`REDIS_URL ${config.REDIS_URL} does not answer`);
  const wanted = Number(asked.port || 6379);
  const port = await freePortFrom("redis-server", LOOPBACK, wanted);
  if (port !== wanted) say(`port ${wanted} is in use and is not a Redis that answers; redis-server takes ${port}`);
  const dir = path.resolve(__dirname, "..", ".data", "redis");
  mkdirSync(dir, { recursive: true });
  const args = ["--port", String(port), "--bind", LOOPBACK, "--dir", dir, "--save", "", "--appendonly", "yes"];
  const server = spawn("redis-server", args, { stdio: "ignore" });
  const missing = new Promise<never>((_, reject) =>
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === "ENOENT" ? NO_REDIS : `cannot start redis-server: ${err.message}`)),
    ),
  );
  children.add(server, "redis-server", fail);
  const url = `redis://${LOOPBACK}:${port}`;
  await Promise.race([missing, until(`redis-server at ${url}`, () => redisAnswers(url), 10_000)]);
  return url;
}

/** Deploys with scripts/deploy.ts (which records the deployment the indexer and API read). */
async function deploy(rpcUrl: string, children: Children): Promise<void> {
  const run = spawn(process.execPath, [hardhat, "run", "scripts/deploy.ts", "--network", "localhost"], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, RPC_URL: rpcUrl },
  });
  children.add(run, "deploy", () => undefined);
  const code = await new Promise<number | null>((resolve) => run.once("exit", resolve));
  if (code !== 0) throw new Error("deployment failed");
}

/**
 * The write pipeline's state of an earlier run (sent transactions, nonces, idempotency records, consents,
 * commissioning jobs) belongs to a chain that is gone: `hardhat node` starts empty each time, at the same chain id
 * and ledger address, so its signed transactions would replay there and its nonces would leave gaps. Forgotten at
 * start; API keys and alerts are kept.
 */
async function forgetEarlierChainsWrites(url: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let forgotten = 0;
    for (const match of ["svc:tx:*", "svc:{nonce:*", "svc:idem*", "svc:consent:*", "svc:job*"]) {
      for await (const keys of redis.scanStream({ match, count: 1000 }) as AsyncIterable<string[]>) {
        if (keys.length > 0) forgotten += await redis.unlink(...keys);
      }
    }
    if (forgotten > 0) say("forgot an earlier local chain's write state", { forgotten });
  } finally {
    redis.disconnect();
  }
}

/** What a newcomer needs: the pages, a key per organisation, and codes worth scanning with what they show. */
function printWelcome(api: DemoApi, story: SeedSummary | null, seconds: number): void {
  const lines = [
    "",
    `Drug trace ledger running (ready in ${seconds.toFixed(1)} s). Ctrl-C stops it.`,
    "",
    "Pages:",
    ...PAGES.map((p) => `  ${api.url}${p}`),
    `  ${api.url}/docs (the API)`,
    "",
    "Demo API keys (sign in with the key of the organisation you are):",
    ...Object.entries(api.keys).map(([org, key]) => `  ${org.padEnd(17)} ${key}`),
  ];
  if (story) {
    lines.push("", "Codes worth scanning (verdict [alerts] as the named organisation scans it):");
    for (const c of story.codes)
      lines.push(`  ${c.code}`, `      ${c.verdict} [${c.alerts.join(", ")}] at ${c.scannedBy}: ${c.story}`);
    lines.push(
      "",
      `Refused on chain: ${story.refusedSale.pharmacy} selling ${story.refusedSale.code} (${story.refusedSale.error}; an alert on the regulator page);`,
      `  ${story.refusedSettlement.insurer} settling claim ${story.refusedSettlement.claimRef} (${story.refusedSettlement.error}).`,
    );
  }
  console.log(lines.join("\n") + "\n");
}

async function main(): Promise<void> {
  const began = Date.now();
  // A local dev chain mines at once: the indexer polls often, so that each seeded write is answered promptly.
  process.env.POLL_INTERVAL_MS ??= "100";
  const children = new Children();
  let shuttingDown: Promise<void> | null = null;
  const closers: (() => Promise<void>)[] = [];
  const shutdown = (exitCode: number) => {
    shuttingDown ??= (async () => {
      for (const close of closers.reverse()) await close().catch(() => undefined);
      await children.stopAll();
      process.exit(exitCode);
    })();
    return shuttingDown;
  };
  const fail = (message: string) => {
    console.error(message);
    void shutdown(1);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  try {
    const base = loadConfig();
    const [rpcUrl, redisUrl] = await Promise.all([startChain(base, children, fail), startRedis(base, children, fail)]);
    say("chain and Redis up", { rpcUrl, redisUrl });
    await deploy(rpcUrl, children);
    const apiPort = base.API_PORT === 0 ? 0 : await freePortFrom("API (API_PORT)", base.API_HOST, base.API_PORT);
    if (apiPort !== base.API_PORT) say(`port ${base.API_PORT} is in use; the API takes ${apiPort}`);
    process.env.RPC_URL = rpcUrl;
    process.env.REDIS_URL = redisUrl;
    process.env.API_PORT = String(apiPort);
    const config = loadConfig();
    const service = await createIndexer(config, createLogger(config.LOG_LEVEL, "indexer"));
    closers.push(() => service.close());
    // The chain was just deployed afresh (a new local node deploys at the same address): an index of an earlier
    // chain in this Redis is stale, and so is one an earlier version laid out otherwise. The service's own data
    // (API keys, alerts) is kept.
    const checkpoint = await service.store.checkpoint();
    const indexedBlock = checkpoint ? await service.chain.blockOrNull(checkpoint.number) : null;
    if (
      checkpoint &&
      (indexedBlock?.hash !== checkpoint.hash || shapeDifferences(checkpoint, service.indexer.shape()).length > 0)
    )
      await service.store.wipe();
    await forgetEarlierChainsWrites(redisUrl);
    const following = service.indexer.run();
    const api = await startDemoApi(config);
    closers.push(() => api.close());
    const story = config.SEED_DEMO ? await seedStory(api, (msg) => say(`seeding: ${msg}`)) : null;
    printWelcome(api, story, (Date.now() - began) / 1000);
    say("system running; Ctrl-C stops it", { rpcUrl, redisUrl, apiUrl: api.url });
    await following;
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    await shutdown(1);
  }
}

void main();
