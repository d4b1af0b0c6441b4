/**
 * API_WORKERS: `npm run api` as several processes sharing one port (node:cluster). Each worker is a whole service
 * over the same Redis and chain; the primary only forks them, replaces one that dies and passes signals on.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { ApiKeyStore } from "../backend/api/keys";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis, type RedisServer } from "../scripts/lib/redis-server";
import { apiScenario, call, codePath, type ApiScenario } from "./helpers/api";
import { childEnv, killChildApis, ROOT, startChildApi, until, type ChildApi } from "./helpers/child-api";
import { newIndexer, startRpcServer, testLog, type TestIndexer } from "./helpers/indexer";

/** The pids of a process's children (Linux /proc). */
const childrenOf = (pid: number): number[] =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);

describe("API: API_WORKERS processes on one port", function () {
  this.timeout(180_000);
  let server: RedisServer;
  let rpc: { url: string; close(): Promise<void> };
  let redis: RedisClient;
  let indexer: TestIndexer;
  let s: ApiScenario;
  let api: ChildApi;
  let key: string;

  before(async function () {
    [server, rpc] = await Promise.all([startRedis(), startRpcServer()]);
    redis = connectRedis({ url: server.url }, testLog, 5_000);
    s = await apiScenario();
    const ledger = await s.ledger.getAddress();
    indexer = await newIndexer(rpc.url, ledger, redis);
    await indexer.indexer.syncOnce();
    key = (await new ApiKeyStore(redis, 0).issue(s.pharmacy.address, "workers test")).key;
    api = await startChildApi(childEnv({ rpcUrl: rpc.url, ledger, redisUrl: server.url }, { API_WORKERS: "2" }));
  });

  after(async function () {
    await api?.kill("SIGTERM");
    killChildApis();
    indexer?.close();
    redis?.disconnect();
    await rpc?.close();
    await server?.stop();
  });

  it("serves the port from two worker processes and replaces one that dies", async function () {
    const listening = () =>
      api
        .output()
        .split("\n")
        .filter((l) => l.includes('"API listening"')).length;
    await until("both workers to listen", async () => (listening() === 2 ? true : undefined), 90_000);
    const workers = childrenOf(api.proc.pid!);
    expect(workers).to.have.length(2);
    const scan = async () => (await call<{ verdict: string }>(api, codePath(s.codes.inPharmacyStock), { key })).body;
    for (let i = 0; i < 6; i++) expect(await scan()).to.deep.include({ verdict: "OK" });

    process.kill(workers[0]!, "SIGKILL");
    const replaced = await until("a replacement worker", async () => {
      const found = childrenOf(api.proc.pid!);
      return found.length === 2 && !found.includes(workers[0]!) ? found : undefined;
    });
    expect(replaced).to.include(workers[1]);
    await until("the replacement to listen", async () => (listening() === 3 ? true : undefined), 90_000);
    for (let i = 0; i < 6; i++) expect(await scan()).to.deep.include({ verdict: "OK" });
  });

  it("stops every worker on SIGTERM after their in-flight requests finish", async function () {
    const workers = childrenOf(api.proc.pid!);
    const codes = Array.from({ length: 1000 }, (_, i) => (i % 2 ? s.codes.inPharmacyStock : s.codes.unknown));
    const inFlight = call<{ results: unknown[] }>(api, "/v1/codes/verify", { key, body: { codes } });
    await new Promise((r) => setTimeout(r, 20));
    const stopped = api.kill("SIGTERM");
    const reply = await inFlight;
    expect(reply.status).to.equal(200);
    expect(reply.body.results).to.have.length(1000);
    await stopped;
    expect(api.proc.exitCode).to.equal(0);
    for (const pid of workers) expect(() => process.kill(pid, 0), `worker ${pid}`).to.throw();
  });

  it("stops rather than forking forever when its workers crash each time they start", async function () {
    const preload = path.join(ROOT, "test", "fixtures", "preload", "worker-crash-after-listen.cjs");
    const crashing = await startChildApi(
      childEnv(
        { rpcUrl: rpc.url, ledger: await s.ledger.getAddress(), redisUrl: server.url },
        { API_WORKERS: "2", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${preload}`.trim() },
      ),
    );
    const primary = crashing.proc.pid!;
    const exited = new Promise<number | null>((resolve) => {
      if (crashing.proc.exitCode !== null) resolve(crashing.proc.exitCode);
      else crashing.proc.once("exit", (code) => resolve(code));
    });
    const outcome = await Promise.race([
      exited,
      new Promise<"running">((r) => setTimeout(() => r("running"), 90_000).unref()),
    ]);
    const deaths = crashing
      .output()
      .split("\n")
      .filter((l) => l.includes('"API worker died')).length;
    if (outcome === "running") await crashing.kill("SIGKILL");
    expect(outcome, `primary ${primary} after ${deaths} worker deaths`).to.equal(1);
    expect(crashing.output()).to.include("crash loop");
    expect(deaths).to.be.at.most(4);
  });
});
