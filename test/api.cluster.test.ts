/**
 * The API as several stateless processes behind a load balancer, against one Redis Cluster: two real API processes
 * (scripts/api.ts, sharing nothing but Redis and the chain) over a 3-master cluster, the indexer following the
 * in-process Hardhat network into the same cluster. Rate limits, Idempotency-Keys, alerts and the signers' nonces
 * must hold across the two: a limit is reached at its configured total whichever process counted, one key sent
 * to both at once submits once, an alert raised through one is worked through the other, and one organisation's
 * concurrent writes through both get consecutive nonces with none lost or used twice.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { ApiKeyStore } from "../backend/api/keys";
import type { Alert } from "../backend/alerts";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import type { RunShape } from "../backend/codes/run";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedisCluster, type RedisCluster } from "../scripts/lib/redis-server";
import { apiScenario, call, codePath, type ApiScenario, type Reply } from "./helpers/api";
import { childEnv, killChildApis, startChildApi, type ChildApi } from "./helpers/child-api";
import { newIndexer, startRpcServer, testLog, type TestIndexer } from "./helpers/indexer";
import { shipAndReceive, unitRef } from "./helpers/ledger";

type Written = {
  status: string;
  transactions: { txHash: string; block?: number }[];
  items: { code: string; status: string }[];
};

const PER_KEY_LIMIT = 10;
const PUBLIC_LIMIT = 6;
/** Units the pharmacy holds for this file's writes: one for the idempotency race, the rest for the nonce race. */
const UNITS = 13;

describe("API: two processes against one Redis Cluster (3 masters)", function () {
  this.timeout(300_000);
  let cluster: RedisCluster;
  let rpc: { url: string; close(): Promise<void> };
  let redis: RedisClient;
  let indexer: TestIndexer;
  let following: Promise<void>;
  let s: ApiScenario;
  let keyStore: ApiKeyStore;
  let a: ChildApi;
  let b: ChildApi;
  /** Codes of units the pharmacy holds and nobody dispensed yet, as a scanner sends them. */
  let units: string[];

  /** A fresh API key (its own rate-limit count) for `who`. */
  const keyOf = async (who: { address: string }) => (await keyStore.issue(who.address, "cluster test key")).key;
  const minedNonce = (who: { address: string }) => ethers.provider.getTransactionCount(who.address, "latest");

  before(async function () {
    [cluster, rpc] = await Promise.all([startRedisCluster({ masters: 3 }), startRpcServer()]);
    redis = connectRedis({ clusterNodes: cluster.nodes }, testLog, 5_000);
    s = await apiScenario();
    // Units of the pharmacy's own, shipped to it loose, so that this file's writes touch nothing else.
    const shape: RunShape = { unitCount: UNITS, unitsPerCase: 0, casesPerPallet: 0 };
    const codes = demoRunCodes("8612345", shape, s.serialBase + 500_000);
    const run = buildRun(codes, shape);
    const receipt = await (
      await s.ledger.connect(s.maker).commission(s.batchId, UNITS, 0, 0, run.codes, run.witness)
    ).wait();
    const event = receipt!.logs.map((l) => s.ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
    const runId = Number(event!.args.runId);
    await shipAndReceive(
      s.ledger,
      s.maker,
      s.pharmacy,
      codes.map((_, i) => unitRef(runId, i)),
    );
    units = codes.map((c) => c.replace(/^CN:/, ""));

    const ledgerAddress = await s.ledger.getAddress();
    indexer = await newIndexer(rpc.url, ledgerAddress, redis);
    await indexer.indexer.syncOnce();
    following = indexer.indexer.run();
    keyStore = new ApiKeyStore(redis, 0);
    const env = childEnv(
      { rpcUrl: rpc.url, ledger: ledgerAddress, clusterNodes: cluster.nodes },
      {
        API_WRITE_WAIT_MS: "30000",
        API_RATE_LIMIT_PER_KEY: String(PER_KEY_LIMIT),
        API_PUBLIC_RATE_LIMIT_PER_ADDRESS: String(PUBLIC_LIMIT),
        // Behind a load balancer: the client's address is the one it forwards.
        API_TRUST_PROXY: "true",
      },
    );
    [a, b] = await Promise.all([startChildApi(env), startChildApi(env)]);
    expect(a.proc.pid).to.not.equal(b.proc.pid);
  });

  after(async function () {
    await Promise.all([a?.kill("SIGTERM"), b?.kill("SIGTERM")]);
    killChildApis();
    indexer?.indexer.stop();
    await following?.catch(() => undefined);
    indexer?.close();
    redis?.disconnect();
    await rpc?.close();
    await cluster?.stop();
  });

  it("counts a rate limit across both processes: alternating requests are refused past the configured total", async function () {
    const key = await keyOf(s.pharmacy);
    const statuses: number[] = [];
    for (let i = 0; i < PER_KEY_LIMIT + 2; i++)
      statuses.push((await call(i % 2 ? a : b, codePath(units[0]!), { key })).status);
    expect(statuses).to.deep.equal([...Array<number>(PER_KEY_LIMIT).fill(200), 429, 429]);
    const limited = await call(a, codePath(units[0]!), { key });
    expect(limited.body).to.deep.include({ type: "urn:drugtrace:problem:rate-limited" });
    // Another key of the same organisation has its own count.
    expect((await call(b, codePath(units[0]!), { key: await keyOf(s.pharmacy) })).status).to.equal(200);

    const client = { "x-forwarded-for": `198.51.100.${Math.floor(Math.random() * 200) + 1}` };
    const pub: number[] = [];
    for (let i = 0; i < PUBLIC_LIMIT + 1; i++)
      pub.push((await call(i % 2 ? a : b, codePath(units[0]!, "/v1/public/codes/"), { headers: client })).status);
    expect(pub).to.deep.equal([...Array<number>(PUBLIC_LIMIT).fill(200), 429]);
  });

  it("the same Idempotency-Key sent to both at once submits once and both get the same answer", async function () {
    const key = await keyOf(s.pharmacy);
    const nonce = await minedNonce(s.pharmacy);
    const request = (api: ChildApi, codes: string[]) =>
      call<Written>(api, "/v1/dispense", {
        key,
        body: { codes },
        headers: { "Idempotency-Key": "cluster-idem-1" },
      });
    const [fromA, fromB] = await Promise.all([request(a, [units[0]!]), request(b, [units[0]!])]);
    for (const r of [fromA, fromB]) {
      expect(r.status, r.text).to.equal(200);
      expect(r.body.items[0]!.status).to.equal("dispensed");
    }
    expect(fromA.body).to.deep.equal(fromB.body);
    const replayed = [fromA, fromB].map((r) => r.headers.get("idempotent-replayed"));
    expect(replayed.filter((v) => v === "true")).to.have.length(1);
    expect(await minedNonce(s.pharmacy)).to.equal(nonce + 1);

    // The same key with another body, through either process, is refused and sends nothing.
    for (const api of [a, b]) {
      const other = await request(api, [units[1]!]);
      expect(other.status, other.text).to.equal(422);
      expect(other.body).to.deep.include({ type: "urn:drugtrace:problem:idempotency-mismatch" });
    }
    expect(await minedNonce(s.pharmacy)).to.equal(nonce + 1);
  });

  it("an alert raised through one process is seen and worked through its workflow through the other", async function () {
    const pharmacyKey = await keyOf(s.pharmacy);
    const regulatorKey = await keyOf(s.regulator);
    const unknown = "86123459999999995555";
    const scan = await call<{ verdict: string; alertIds: string[] }>(a, codePath(unknown), { key: pharmacyKey });
    expect(scan.status, scan.text).to.equal(200);
    expect(scan.body.verdict).to.equal("UNKNOWN");
    const [id] = scan.body.alertIds;
    expect(id).to.be.a("string");

    const listed = await call<{ alerts: Alert[] }>(b, "/v1/alerts?status=new&limit=200", { key: regulatorKey });
    expect(listed.status, listed.text).to.equal(200);
    expect(listed.body.alerts.map((x) => x.id)).to.include(id);
    // The same scan again through the other process counts on the same open alert.
    const again = await call<{ alertIds: string[] }>(b, codePath(unknown), { key: pharmacyKey });
    expect(again.body.alertIds).to.deep.equal([id]);

    const transition = (api: ChildApi, key: string, body: Record<string, unknown>): Promise<Reply<Alert>> =>
      call<Alert>(api, `/v1/alerts/${id}/transitions`, { key, body });
    const investigating = await transition(b, pharmacyKey, { to: "investigating", note: "checking the scanner" });
    expect(investigating.status, investigating.text).to.equal(200);
    // Process A sees the move B made, and refuses what the workflow no longer allows.
    const stale = await transition(a, pharmacyKey, { to: "investigating" });
    expect(stale.status, stale.text).to.equal(409);
    const closed = await transition(a, regulatorKey, { to: "closed", reason: "scanner_error" });
    expect(closed.status, closed.text).to.equal(200);
    const seen = await call<Alert>(b, `/v1/alerts/${id}`, { key: regulatorKey });
    expect(seen.body).to.deep.include({ status: "closed", closeReason: "scanner_error", count: 2 });
    expect(seen.body.history.map((e) => [e.action, e.to])).to.deep.equal([
      ["raised", "new"],
      ["transition", "investigating"],
      ["transition", "closed"],
    ]);
  });

  it("one organisation's concurrent writes through both processes get consecutive nonces, none lost or reused", async function () {
    // Two of the pharmacy's keys (two counters), each used through both processes.
    const keys = [await keyOf(s.pharmacy), await keyOf(s.pharmacy)];
    const codes = units.slice(1);
    const before = await minedNonce(s.pharmacy);
    // A prescription each, so that no two requests share a transaction: one transaction (one nonce) per request.
    const replies = await Promise.all(
      codes.map((code, i) =>
        call<Written>(i % 2 ? a : b, "/v1/dispense", {
          key: keys[(i >> 1) % 2],
          body: { codes: [code], prescriptionHash: `cluster-rx-${i}` },
        }),
      ),
    );
    for (const r of replies) {
      // A failure names what the processes logged (at warn: errors only).
      expect(r.status, `${r.text}\nprocess A:\n${a.output()}\nprocess B:\n${b.output()}`).to.equal(200);
      expect(r.body.items[0]!.status).to.equal("dispensed");
    }
    const hashes = replies.map((r) => r.body.transactions[0]!.txHash);
    expect(new Set(hashes).size).to.equal(codes.length);
    const txs = await Promise.all(hashes.map((h) => ethers.provider.getTransaction(h)));
    const nonces = txs.map((t) => t!.nonce).sort((x, y) => x - y);
    for (const t of txs) expect(t!.from).to.equal(s.pharmacy.address);
    expect(nonces).to.deep.equal(codes.map((_, i) => before + i));
    expect(await minedNonce(s.pharmacy)).to.equal(before + codes.length);
    const receipts = await Promise.all(hashes.map((h) => ethers.provider.getTransactionReceipt(h)));
    for (const r of receipts) expect(r!.status).to.equal(1);
  });
});
