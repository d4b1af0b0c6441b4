/**
 * `npm run commission:csv` (scripts/commission-csv.ts) as a child process against the in-process Hardhat network
 * (served over HTTP), a real redis-server and the indexer: bad lines are all reported by number and nothing is
 * sent; a good file is split into runs; a commissioning SIGKILLed at random points and started again submits no
 * run twice and finishes; a lost state file does not make it send again.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { ethers } from "hardhat";
import { packingOrder, type PlannedRun } from "../backend/chain/commission-plan";
import { demoRunCodes } from "../backend/chain/runs";
import type { RunShape } from "../backend/codes/run";
import { Wallet } from "ethers";
import type { LedgerChain } from "../backend/chain/client";
import { CommissionSender } from "../scripts/lib/commission-send";
import { newState, type CommissionState } from "../scripts/lib/commission-state";
import { DrugLedger__factory } from "../typechain-types";
import { call } from "./helpers/api";
import { lastJson, runScript, spawnScript } from "./helpers/cli";
import { startWriteApi, type WriteHarness } from "./helpers/writes";
import { childEnv } from "./helpers/child-api";

const PRODUCT = "8612345";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A packing line's CSV of demo codes (`code,level`), as a scanner prints them. */
function csvOf(shape: RunShape, serialBase: number): string {
  const codes = demoRunCodes(PRODUCT, shape, serialBase).map((c) => c.replace(/^(CN|X):/, ""));
  return ["code,level", ...packingOrder(codes, shape).map((l) => `${l.code},${l.level}`)].join("\n") + "\n";
}

describe("operators: commission a batch from a CSV", function () {
  this.timeout(300_000);
  let h: WriteHarness;
  let env: Record<string, string>;
  let dir: string;
  let serial = 900_000_000;
  const nextBase = () => (serial += 1_000_000);

  const newBatch = async (lot: string) => {
    const today = new Date().toISOString().slice(0, 10);
    const expires = new Date(Date.now() + 500 * 86_400_000).toISOString().slice(0, 10);
    const r = await call<{ batch: { id: number } }>(h, "/v1/batches", {
      key: h.keys.maker,
      body: { productId: 1, lot, manufacturedOn: today, expiresOn: expires },
    });
    expect(r.status, r.text).to.equal(201);
    return r.body.batch.id;
  };
  /** The batch's UnitsCommissioned events on chain, by root: how often each run content was sent. */
  const runsOnChain = async (batchId: number) => {
    const events = await h.s.ledger.queryFilter(h.s.ledger.filters.UnitsCommissioned(undefined, batchId));
    return events.map((e) => e.args.root);
  };
  const commission = (args: string[]) => runScript("commission-csv.ts", [...args, "--no-progress"], env);

  before(async function () {
    h = await startWriteApi();
    dir = mkdtempSync(path.join(tmpdir(), "commission-csv-"));
    env = childEnv(
      { rpcUrl: h.rpcUrl, ledger: await h.s.ledger.getAddress(), redisUrl: h.redisServer.url },
      { DEPLOYMENT_FILE: path.join(dir, "none.json") },
    );
    // Small runs, so that a small file makes many runs: 2 pallets of 2 cases of 10 (46 codes) a run.
    await h.s.ledger.connect(h.s.admin).setMaxRunCodes(50);
  });
  after(async function () {
    await h?.s.ledger.connect(h.s.admin).setMaxRunCodes(28_000);
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("prints its usage with --help and exits 2 on a usage mistake", async function () {
    const help = await runScript("commission-csv.ts", ["--help"], env);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^usage: npm run commission:csv/);
    const missing = await runScript("commission-csv.ts", ["--file", "x.csv"], env);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.include("--batch is required");
    const unknown = await runScript("commission-csv.ts", ["--batch", "1", "--bogus"], env);
    expect(unknown.code).to.equal(2);
  });

  it("reports every bad line by number and sends nothing; --skip-bad commissions the rest", async function () {
    const batchId = await newBatch("LOT-CSV-BAD");
    const file = path.join(dir, "bad.csv");
    // Loose units, one code per line: a wrong product at line 3, a code of no product at line 5, a duplicate at 6.
    const units = csvOf({ unitCount: 8, unitsPerCase: 0, casesPerPallet: 0 }, nextBase())
      .split("\n")
      .slice(1, 9)
      .map((l) => l.split(",")[0]!);
    const rows = [...units];
    rows[2] = "86999990000000011111";
    rows[4] = "86123";
    rows[5] = rows[0]!;
    writeFileSync(file, rows.join("\n") + "\n");
    const refused = await commission(["--batch", String(batchId), "--file", file]);
    expect(refused.code, refused.stderr).to.equal(3);
    const reported = refused.stderr.split("\n").filter((l) => l.startsWith(`${file}:`));
    expect(reported.map((l) => Number(l.split(":")[1]))).to.deep.equal([3, 5, 6]);
    expect(refused.stderr).to.include(":3: WRONG_PRODUCT").and.include(":6: DUPLICATE_IN_UPLOAD");
    expect(await runsOnChain(batchId)).to.have.length(0);

    const skipped = await commission(["--batch", String(batchId), "--file", file, "--skip-bad"]);
    expect(skipped.code, skipped.stderr).to.equal(0);
    expect(lastJson(skipped.stdout)).to.include({ msg: "batch commissioned", units: 5 });
    expect(await runsOnChain(batchId)).to.have.length(1);
  });

  it("checks a parent column against the packing order", async function () {
    const batchId = await newBatch("LOT-CSV-PARENT");
    const shape = { unitCount: 20, unitsPerCase: 10, casesPerPallet: 0 };
    const rows = csvOf(shape, nextBase()).trim().split("\n").slice(1);
    const firstCase = rows[10]!.split(",")[0]!;
    const secondCase = rows[21]!.split(",")[0]!;
    const withParents = rows.map((r, i) => `${r},${i < 10 ? firstCase : i < 21 && i !== 10 ? secondCase : ""}`);
    withParents[3] = withParents[3]!.replace(firstCase, secondCase); // line 5: unit 4 names the wrong case
    const file = path.join(dir, "parents.csv");
    writeFileSync(file, ["code,level,parent", ...withParents].join("\n"));
    const refused = await commission(["--batch", String(batchId), "--file", file, "--dry-run"]);
    expect(refused.code, refused.stderr).to.equal(3);
    expect(refused.stderr).to.match(new RegExp(`${file.replace(/[.]/g, "\\.")}:5: BAD_PARENT`));
    withParents[3] = withParents[3]!.replace(secondCase, firstCase);
    writeFileSync(file, ["code,level,parent", ...withParents].join("\n"));
    const planned = await commission(["--batch", String(batchId), "--file", file, "--dry-run"]);
    expect(planned.code, planned.stderr).to.equal(0);
    expect(lastJson(planned.stdout)).to.include({ units: 20, cases: 2, runs: 1 });
  });

  it("killed (SIGKILL) at random points and started again, submits no run twice and finishes", async function () {
    const batchId = await newBatch("LOT-CSV-KILL");
    const shape = { unitCount: 400, unitsPerCase: 10, casesPerPallet: 2 }; // 20 pallets: 10 runs of 46 codes
    const file = path.join(dir, "kill.csv");
    writeFileSync(file, csvOf(shape, nextBase()));
    const stateFile = `${file}.state.json`;
    const doneRuns = () => {
      try {
        return (JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState).runs.filter((r) => r.state === "done")
          .length;
      } catch {
        return 0;
      }
    };
    let kills = 0;
    for (let attempt = 0; attempt < 4 && kills < 3; attempt++) {
      const target = doneRuns() + 1 + Math.floor(Math.random() * 3);
      const child = spawnScript(
        "commission-csv.ts",
        ["--batch", String(batchId), "--file", file, "--no-progress"],
        env,
      );
      let finished = false;
      void child.exited.then(() => (finished = true));
      for (let i = 0; i < 1200 && !finished && doneRuns() < target; i++) await sleep(25);
      if (finished) break;
      await sleep(Math.floor(Math.random() * 40)); // anywhere in the next run: signing, sending, recording
      child.proc.kill("SIGKILL");
      const result = await child.exited;
      expect(result.signal).to.equal("SIGKILL");
      kills++;
    }
    expect(kills).to.be.greaterThan(0);
    const last = await commission(["--batch", String(batchId), "--file", file]);
    expect(last.code, last.stderr).to.equal(0);
    const summary = lastJson<{ msg: string; runs: number; resumed: boolean }>(last.stdout);
    expect(summary).to.include({ msg: "batch commissioned", runs: 10, resumed: true });
    const roots = await runsOnChain(batchId);
    expect(roots).to.have.length(10);
    expect(new Set(roots).size).to.equal(10);
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState;
    expect(state.runs.map((r) => r.root).sort()).to.deep.equal([...roots].sort());
    expect(state.runs.every((r) => r.state === "done" && r.runId! > 0)).to.equal(true);

    // The state file lost: the runs are found on chain by their roots, and nothing is sent.
    rmSync(stateFile);
    const again = await commission(["--batch", String(batchId), "--file", file]);
    expect(again.code, again.stderr).to.equal(0);
    expect(lastJson(again.stdout)).to.include({ runsFoundOnChain: 10, codesSentNow: 0 });
    expect(await runsOnChain(batchId)).to.have.length(10);
  });

  /** Runs done in a state file (0 while it is not written yet). */
  const doneIn = (stateFile: string) => {
    try {
      return (JSON.parse(readFileSync(stateFile, "utf8")) as CommissionState).runs.filter((r) => r.state === "done")
        .length;
    } catch {
      return 0;
    }
  };
  /** Starts the command and SIGKILLs it once `runs` runs are done; false when it finished first. */
  const killAfter = async (args: string[], stateFile: string, runs: number) => {
    const child = spawnScript("commission-csv.ts", [...args, "--no-progress"], env);
    let finished = false;
    void child.exited.then(() => (finished = true));
    for (let i = 0; i < 2400 && !finished && doneIn(stateFile) < runs; i++) await sleep(10);
    if (finished) return false;
    child.proc.kill("SIGKILL");
    expect((await child.exited).signal).to.equal("SIGKILL");
    return true;
  };

  it("killed in the middle of a planned window, resumes with another window size and sends each run once", async function () {
    const batchId = await newBatch("LOT-CSV-WINDOW");
    const file = path.join(dir, "window.csv");
    writeFileSync(file, csvOf({ unitCount: 400, unitsPerCase: 10, casesPerPallet: 2 }, nextBase())); // 10 runs
    const args = ["--batch", String(batchId), "--file", file];
    // Windows of 3 runs: the 4th or 5th run done is inside the second window, planned and partly sent.
    expect(await killAfter([...args, "--window", "3", "--in-flight", "2"], `${file}.state.json`, 4)).to.equal(true);
    const resumed = await commission([...args, "--window", "1"]);
    expect(resumed.code, resumed.stderr).to.equal(0);
    const summary = lastJson<{ resumed: boolean; codesSentNow: number; codesSignedNow: number }>(resumed.stdout);
    expect(summary.resumed).to.equal(true);
    const roots = await runsOnChain(batchId);
    expect(roots).to.have.length(10);
    expect(new Set(roots).size).to.equal(10);
  });

  it("refuses to resume a file changed since the commissioning started, and sends nothing", async function () {
    const batchId = await newBatch("LOT-CSV-CHANGED");
    const file = path.join(dir, "changed.csv");
    const original = csvOf({ unitCount: 400, unitsPerCase: 10, casesPerPallet: 2 }, nextBase());
    writeFileSync(file, original);
    const args = ["--batch", String(batchId), "--file", file];
    expect(await killAfter([...args, "--in-flight", "1"], `${file}.state.json`, 2)).to.equal(true);
    const before = (await runsOnChain(batchId)).length;
    // Another, valid file of the same size: one unit of a run not sent yet changed.
    const lines = original.split("\n");
    let last = lines.length - 1;
    while (!lines[last]!.endsWith(",unit")) last--;
    const code = lines[last]!.slice(0, 20);
    lines[last] = `${code.slice(0, 19)}${(Number(code[19]) + 1) % 10},unit`; // a check digit: no other code's
    expect(lines.join("\n")).to.not.equal(original);
    writeFileSync(file, lines.join("\n"));
    const refused = await commission(args);
    expect(refused.code, refused.stderr).to.equal(3);
    expect(refused.stderr).to.include("the file changed since the commissioning started");
    expect(await runsOnChain(batchId)).to.have.length(before);
    writeFileSync(file, original);
    const finished = await commission(args);
    expect(finished.code, finished.stderr).to.equal(0);
    expect(await runsOnChain(batchId)).to.have.length(10);
  });

  it("resumes a run whose transaction was sent but not mined when it was killed", async function () {
    const batchId = await newBatch("LOT-CSV-PENDING");
    const file = path.join(dir, "pending.csv");
    writeFileSync(file, csvOf({ unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, nextBase()));
    await ethers.provider.send("evm_setAutomine", [false]);
    try {
      const child = spawnScript(
        "commission-csv.ts",
        ["--batch", String(batchId), "--file", file, "--no-progress"],
        env,
      );
      let state: CommissionState | null = null;
      for (let i = 0; i < 1200 && !state?.runs[0]?.txHash; i++) {
        await sleep(25);
        try {
          state = JSON.parse(readFileSync(`${file}.state.json`, "utf8")) as CommissionState;
        } catch {
          state = null;
        }
      }
      const hash = state!.runs[0]!.txHash!;
      for (let i = 0; i < 400 && !(await ethers.provider.send("eth_getTransactionByHash", [hash])); i++)
        await sleep(25);
      child.proc.kill("SIGKILL");
      await child.exited;
      await ethers.provider.send("evm_mine", []);
    } finally {
      await ethers.provider.send("evm_setAutomine", [true]);
    }
    const resumed = await commission(["--batch", String(batchId), "--file", file]);
    expect(resumed.code, resumed.stderr).to.equal(0);
    expect(await runsOnChain(batchId)).to.have.length(1);
  });
});

describe("operators: the commissioning's state reconciled with the chain", function () {
  const iface = DrugLedger__factory.createInterface();
  const wallet = new Wallet("0x" + "42".repeat(32));
  const revertedHash = "0x" + "bb".repeat(32);
  /** A node that mined the recorded transaction (nonce 0), and it reverted: no UnitsCommissioned, nonce spent. */
  const chain = {
    iface,
    address: "0x" + "11".repeat(20),
    chainId: 31337,
    head: async () => ({ number: 3 }),
    rpc: {
      call: async (method: string) => {
        if (method === "eth_getLogs") return [];
        if (method === "eth_getTransactionCount") return "0x1";
        if (method === "eth_getTransactionReceipt")
          return { status: "0x0", blockNumber: "0x3", transactionHash: revertedHash, logs: [] };
        throw new Error(`unexpected ${method}`);
      },
    },
  } as unknown as LedgerChain;

  /** A fresh state of a one-run file, as a new start writes it (no run recorded yet). */
  const oneRunState = () =>
    newState({
      csvSha256: "00",
      csvBytes: 1,
      batchId: 1,
      account: wallet.address.toLowerCase(),
      ledger: chain.address,
      chainId: 31337,
      totalRuns: 1,
      codes: 3,
    });
  const senderOptions = (on: LedgerChain, stateFile: string) => ({
    chain: on,
    wallet,
    batchId: 1,
    stateFile,
    fromBlock: 0,
    maxRangeBlocks: 100,
    onRunDone: () => undefined,
    stopRequested: () => false,
    pollMs: 1,
  });
  const senderOn = (on: LedgerChain, stateFile: string) => new CommissionSender(senderOptions(on, stateFile));

  it("waits for the account's unmined transactions before looking runs up by root (a lost state file)", async function () {
    // The killed process's run is in the node's pool (pending nonce 1, latest 0) and mined two polls later.
    const root = "0x" + "cc".repeat(32);
    let polls = 0;
    const sent: string[] = [];
    const mined = () => polls >= 2;
    const log = iface.encodeEventLog("UnitsCommissioned", [7, 1, 1, 3, 0, 0, root, "0x"]);
    const pooled = {
      ...chain,
      rpc: {
        call: async (method: string, params: unknown[]) => {
          if (method === "eth_getTransactionCount") {
            if (params[1] === "latest") polls++;
            return params[1] === "pending" || mined() ? "0x1" : "0x0";
          }
          if (method === "eth_getLogs")
            return mined()
              ? [{ ...log, address: chain.address, transactionHash: revertedHash, blockNumber: "0x3" }]
              : [];
          sent.push(method);
          return null;
        },
      },
    } as unknown as LedgerChain;
    const dir = mkdtempSync(path.join(tmpdir(), "commission-state-"));
    try {
      const state = oneRunState();
      const sender = senderOn(pooled, path.join(dir, "state.json"));
      await sender.reconcile(state);
      const planned = { index: 0, shape: {}, lines: [1, 2, 3], payload: { root } } as unknown as PlannedRun;
      async function* plan() {
        yield planned;
      }
      expect(await sender.sendAll(state, plan())).to.equal(true);
      expect(sent).to.deep.equal([]); // nothing estimated, signed or broadcast: the run was found by its root
      expect(state.runs[0]).to.include({ state: "done", runId: 7 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops with the nonces it waited for when the account's pooled transactions are not mined in time", async function () {
    const stuck = {
      ...chain,
      rpc: { call: async (_method: string, params: unknown[]) => (params[1] === "pending" ? "0x3" : "0x1") },
    } as unknown as LedgerChain;
    const dir = mkdtempSync(path.join(tmpdir(), "commission-state-"));
    try {
      const sender = new CommissionSender({ ...senderOptions(stuck, path.join(dir, "state.json")), poolWaitMs: 20 });
      const failure = await sender.reconcile(oneRunState()).then(
        () => null,
        (err: Error) => err,
      );
      expect(failure?.message).to.contain("2 transaction(s)").and.contain("nonces 1 to 2");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sends again a run whose recorded transaction reverted, rather than counting it done", async function () {
    const dir = mkdtempSync(path.join(tmpdir(), "commission-state-"));
    try {
      const state = oneRunState();
      state.runs.push({
        index: 0,
        root: "0x" + "aa".repeat(32),
        codes: 3,
        lines: { first: 1, last: 3 },
        state: "sending",
        nonce: 0,
        gasLimit: "100000",
        maxFeePerGas: "1",
        maxPriorityFeePerGas: "1",
        txHash: revertedHash,
      });
      const sender = senderOn(chain, path.join(dir, "state.json"));
      expect(await sender.reconcile(state)).to.equal(0);
      // Its codes are not on chain: done would finish the batch without them.
      expect(state.runs[0]!.state).to.equal("planned");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
