/**
 * Writes survive the service dying between sending a transaction and answering. The real API (scripts/api.ts)
 * runs as a child process against the in-process Hardhat network (served over HTTP) and a real redis-server;
 * automine is off, so a sent transaction stays pending until the test mines it, and the child can be killed
 * (SIGKILL: no shutdown code runs) while its request waits. On restart, a retry with the same Idempotency-Key
 * returns the mined result and submits nothing new; without any retry, the start-up sweep finishes the request
 * (re-broadcasting a transaction the node lost); a transaction stuck past TX_REPLACE_AFTER_MS is replaced with
 * the same nonce and higher fees, and exactly one version is mined. A commissioning job killed between its runs is
 * finished by the restarted service, each run submitted once.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { packingOrder } from "../backend/chain/commission-plan";
import { demoRunCodes } from "../backend/chain/runs";
import { META } from "../backend/index/keys";
import { PENDING_TXS, type TxRecord } from "../backend/chain/submit";
import { UNANSWERED, type IdemRecord } from "../backend/api/idempotency";
import { call, type Reply } from "./helpers/api";
import { childEnv, killChildApis, sleep, startChildApi, until, type ChildApi } from "./helpers/child-api";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

type Written = { status: string; transactions: { txHash: string; block?: number }[]; items: { status: string }[] };

describe("API: writes survive a crash of the service", function () {
  this.timeout(180_000);
  let h: WriteHarness;
  let env: Record<string, string>;
  let units: string[];
  const startChild = (overrides: Record<string, string> = {}): Promise<ChildApi> =>
    startChildApi({ ...env, ...overrides });

  const mine = () => ethers.provider.send("evm_mine", []);
  const minedNonce = () => ethers.provider.getTransactionCount(h.s.pharmacy.address, "latest");
  const pendingInNode = async () =>
    ((await ethers.provider.send("eth_getBlockByNumber", ["pending", false])) as { transactions: string[] })
      .transactions;
  const idem = async (key: string) => {
    const raw = await h.redis.get(`svc:idem:${h.s.pharmacy.address.toLowerCase()}:${key}`);
    return raw ? (JSON.parse(raw) as IdemRecord) : null;
  };
  const txRecord = async (hash: string) => JSON.parse((await h.redis.get(`svc:tx:${hash}`))!) as TxRecord;
  /** The request's transaction once it is signed, recorded and in the node's pool (not mined: automine is off). */
  const sentHash = (key: string) =>
    until(`the transaction of ${key} in the node's pool`, async () => {
      const hash = (await idem(key))?.calls?.[0]?.hash;
      if (!hash) return undefined;
      return (await ethers.provider.send("eth_getTransactionByHash", [hash])) ? hash : undefined;
    });
  const dispense = (api: { url: string }, code: string, key: string) =>
    call<Written>(api, "/v1/dispense", {
      key: h.keys.pharmacy,
      body: { codes: [code] },
      headers: { "Idempotency-Key": key },
    });

  before(async function () {
    h = await startWriteApi();
    env = childEnv(
      { rpcUrl: h.rpcUrl, ledger: await h.s.ledger.getAddress(), redisUrl: h.redisServer.url },
      { API_WRITE_WAIT_MS: "25000", TX_SWEEP_INTERVAL_MS: "200" },
    );
    units = demoRunCodes("8612345", { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, h.s.serialBase).map((c) =>
      c.replace(/^CN:/, ""),
    );
    await ethers.provider.send("evm_setAutomine", [false]);
  });
  after(async function () {
    killChildApis();
    await ethers.provider.send("evm_setAutomine", [true]);
    await mine();
    await h?.close();
  });

  it("a retry while the first request is still pending waits for it and answers once", async function () {
    const api = await startChild();
    try {
      const nonce = await minedNonce();
      const first = dispense(api, units[5]!, "crash-wait-1");
      const hash = await sentHash("crash-wait-1");
      const retry = dispense(api, units[5]!, "crash-wait-1");
      await sleep(300);
      expect(await pendingInNode()).to.deep.equal([hash]);
      await mine();
      const [a, b] = await Promise.all([first, retry]);
      for (const r of [a, b]) {
        expect(r.status, r.text).to.equal(200);
        expect(r.body.transactions[0]!.txHash).to.equal(hash);
      }
      expect(b.headers.get("idempotent-replayed")).to.equal("true");
      expect(await minedNonce()).to.equal(nonce + 1);
    } finally {
      await api.kill("SIGTERM");
    }
  });

  it("SIGKILL between sending and answering: the retry after restart returns the mined result, sends nothing", async function () {
    let api = await startChild();
    const nonce = await minedNonce();
    const lost = dispense(api, units[6]!, "crash-kill-1").catch((err: Error) => err);
    const hash = await sentHash("crash-kill-1");
    await api.kill("SIGKILL");
    expect(await lost).to.be.instanceOf(Error); // the connection died with the service: no answer
    expect((await idem("crash-kill-1"))!.state).to.equal("pending");
    await mine();
    const mined = await minedNonce();
    expect(mined).to.equal(nonce + 1);
    api = await startChild();
    try {
      const retry = await dispense(api, units[6]!, "crash-kill-1");
      expect(retry.status, retry.text).to.equal(200);
      expect(retry.body.status).to.equal("mined");
      expect(retry.body.transactions[0]!.txHash).to.equal(hash);
      expect(retry.body.items[0]!.status).to.equal("dispensed");
      await mine();
      expect(await minedNonce()).to.equal(mined);
      expect(await pendingInNode()).to.deep.equal([]);
      expect((await idem("crash-kill-1"))!.state).to.equal("done");
    } finally {
      await api.kill("SIGTERM");
    }
  });

  it("without any retry, the start-up sweep re-sends a transaction the node lost and answers its record", async function () {
    let api = await startChild();
    const nonce = await minedNonce();
    const lost = dispense(api, units[7]!, "crash-sweep-1").catch((err: Error) => err);
    const hash = await sentHash("crash-sweep-1");
    await api.kill("SIGKILL");
    await lost;
    // The node forgets it too (a node restarted with an empty pool).
    expect(await ethers.provider.send("hardhat_dropTransaction", [hash])).to.equal(true);
    expect(await pendingInNode()).to.deep.equal([]);
    api = await startChild();
    try {
      await until("the sweep to re-broadcast", async () => ((await pendingInNode()).includes(hash) ? true : undefined));
      await mine();
      const record = await until("the record to be answered", async () => {
        const r = await idem("crash-sweep-1");
        return r?.state === "done" ? r : undefined;
      });
      expect(record.answer!.status).to.equal(200);
      expect((record.answer!.body as Written).transactions[0]!.txHash).to.equal(hash);
      expect(await minedNonce()).to.equal(nonce + 1);
      expect(await h.redis.zcard(PENDING_TXS)).to.equal(0);
      expect(await h.redis.sismember(UNANSWERED, `${h.s.pharmacy.address.toLowerCase()}:crash-sweep-1`)).to.equal(0);
      // The client, back much later, gets that answer.
      const late: Reply<Written> = await dispense(api, units[7]!, "crash-sweep-1");
      expect(late.status, late.text).to.equal(200);
      expect(late.headers.get("idempotent-replayed")).to.equal("true");
      expect(late.body.transactions[0]!.txHash).to.equal(hash);
    } finally {
      await api.kill("SIGTERM");
    }
  });

  it("replaces a transaction stuck past TX_REPLACE_AFTER_MS: same nonce, higher fees, exactly one mined", async function () {
    const api = await startChild({ TX_REPLACE_AFTER_MS: "500" });
    try {
      const nonce = await minedNonce();
      const reply = dispense(api, units[8]!, "stuck-1");
      const first = await sentHash("stuck-1");
      // The record names a replacement BEFORE it is broadcast (so that a crash never loses it): mining as soon as
      // the record shows it would, on a loaded machine, mine the original still in the pool. Wait until the node's
      // pool holds a replacement instead of the original.
      const replaced = await until("a replacement in the node's pool", async () => {
        const record = await txRecord(first);
        if (record.versions.length < 2) return undefined;
        const pool = await pendingInNode();
        const later = record.versions.slice(1).some((v) => pool.includes(v.hash));
        return later && !pool.includes(first) ? record : undefined;
      });
      await mine();
      const r = await reply;
      expect(r.status, r.text).to.equal(200);
      const record = await txRecord(first);
      expect(record.versions.length).to.be.at.least(replaced.versions.length);
      const txs = await Promise.all(record.versions.map((v) => ethers.provider.getTransaction(v.hash)));
      const receipts = await Promise.all(record.versions.map((v) => ethers.provider.getTransactionReceipt(v.hash)));
      expect(receipts.filter((x) => x !== null)).to.have.length(1);
      const minedAs = receipts.find((x) => x !== null)!.hash;
      expect(r.body.transactions[0]!.txHash).to.equal(minedAs);
      expect(minedAs).to.not.equal(first);
      for (const [i, v] of record.versions.entries()) {
        expect(txs[i] === null || txs[i]!.nonce === record.nonce).to.equal(true);
        if (i === 0) continue;
        const before = record.versions[i - 1]!;
        expect(BigInt(v.maxFeePerGas) * 100n >= BigInt(before.maxFeePerGas) * 110n).to.equal(true);
        expect(BigInt(v.maxPriorityFeePerGas) * 100n >= BigInt(before.maxPriorityFeePerGas) * 110n).to.equal(true);
      }
      expect(await minedNonce()).to.equal(nonce + 1);
      await mine();
      expect(await pendingInNode()).to.deep.equal([]);
    } finally {
      await api.kill("SIGTERM");
    }
  });

  it("SIGKILL in the middle of a multi-run commissioning job: after restart the job finishes, no run sent twice", async function () {
    const { ledger, admin, maker } = h.s;
    const makerNonce = () => ethers.provider.getTransactionCount(maker.address, "latest");
    const indexedPast = (block: number) =>
      until(`the index to pass block ${block}`, async () => {
        const raw = await h.redis.get(META.checkpoint);
        return raw && (JSON.parse(raw) as { number: number }).number >= block ? true : undefined;
      });
    await ledger.connect(admin).setMaxRunCodes(600);
    const now = (await ethers.provider.getBlock("latest"))!.timestamp;
    const registered = await ledger.connect(maker).registerBatch(1, "LOT-CRASH-JOB", now - 86_400, now + 400 * 86_400);
    await mine();
    const receipt = (await registered.wait())!;
    const batchId = receipt.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "BatchRegistered")!
      .args.batchId as bigint;
    await indexedPast(receipt.blockNumber);
    // 10 pallets of 4 cases of 50 units: 205 codes a pallet, 2 pallets a run under 600 -> 5 runs.
    const shape = { unitCount: 2000, unitsPerCase: 50, casesPerPallet: 4 };
    const codes = demoRunCodes("8612345", shape, 900_000_000).map((c) => c.replace(/^(CN|X):/, ""));
    const csv = packingOrder(codes, shape)
      .map((l) => `${l.code},${l.level}`)
      .join("\n");
    const before = await makerNonce();
    type JobBody = {
      status: string;
      runs: Record<string, number>;
      runList: { runId?: number; txHash?: string }[];
      codes: { indexed: number };
    };
    const jobOf = (api: ChildApi, jobId: string) => call<JobBody>(api, `/v1/jobs/${jobId}`, { key: h.keys.maker });
    let api = await startChild({ JOB_LEASE_MS: "1000" });
    let jobId: string;
    try {
      const posted = await call<{ jobId: string; runs: { planned: number } }>(
        api,
        `/v1/batches/${batchId}/commissions`,
        {
          key: h.keys.maker,
          rawBody: csv,
          headers: { "content-type": "text/csv" },
        },
      );
      expect(posted.status, posted.text).to.equal(202);
      expect(posted.body.runs.planned).to.equal(5);
      jobId = posted.body.jobId;
      // Let the first runs be mined, then kill the service while the next ones wait in the node's pool.
      await until("the first runs in the pool", async () => ((await pendingInNode()).length > 0 ? true : undefined));
      await mine();
      await until("the next runs in the pool", async () => ((await pendingInNode()).length > 0 ? true : undefined));
      const mid = (await jobOf(api, jobId)).body;
      expect(mid.status).to.equal("running");
      expect(mid.runs.submitted).to.be.below(5);
    } finally {
      await api.kill("SIGKILL");
    }
    const submittedBeforeKill = (await makerNonce()) - before + (await pendingInNode()).length;
    expect(submittedBeforeKill).to.be.within(2, 4);
    api = await startChild({ JOB_LEASE_MS: "1000" });
    try {
      const job = await until(
        "the resumed job to finish",
        async () => {
          await mine();
          const r = await jobOf(api, jobId);
          return r.body.status === "running" ? undefined : r.body;
        },
        90_000,
      );
      expect(job.status).to.equal("done");
      expect(job.runs).to.deep.include({ planned: 5, submitted: 5, mined: 5, indexed: 5, failed: 0 });
      expect(job.codes.indexed).to.equal(2050);
      // Five transactions by the maker in all, five distinct runs of the batch, nothing left pending.
      expect((await makerNonce()) - before).to.equal(5);
      expect(new Set(job.runList.map((r) => r.txHash)).size).to.equal(5);
      const runIds = job.runList.map((r) => r.runId!);
      expect(new Set(runIds).size).to.equal(5);
      for (const runId of runIds) expect((await ledger.runOf(runId)).batchId).to.equal(batchId);
      expect(await pendingInNode()).to.deep.equal([]);
    } finally {
      await api.kill("SIGTERM");
      await ledger.connect(admin).setMaxRunCodes(28_000);
      await mine();
    }
  });
});
