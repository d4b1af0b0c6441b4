/**
 * Sends a plan's runs one transaction each, several in flight, as the plan's windows arrive
 * (scripts/lib/csv-stream.ts), recording every step in the state file, and reconciles what an earlier,
 * interrupted process may have sent before sending anything again (once the account's transactions in the node's
 * pool are mined, so that the chain shows them):
 * - a run `sending` whose transaction has a receipt is done, unless it reverted: then it is sent again;
 * - a run `sending` whose nonce the account has not used yet is re-signed with the same nonce and fees (the same
 *   transaction, byte for byte: deterministic signatures) and re-broadcast when its window is planned again;
 *   the nonce makes a second copy impossible, and no later run is sent before it;
 * - a run `sending` whose nonce was used by another transaction, any run `planned`, and any run the state does not
 *   hold yet (a lost state file), is looked up among the batch's UnitsCommissioned events by its Merkle root:
 *   found, it is done; not found, it is (re)sent.
 */
import { Transaction, Wallet } from "ethers";
import type { PlannedRun } from "../../backend/chain/commission-plan";
import type { LedgerChain } from "../../backend/chain/client";
import { gasWithMargin } from "../../backend/chain/submit";
import { RpcError } from "../../backend/chain/rpc";
import { recordOf, saveState, StateMismatchError, type CommissionState, type RunRecord } from "./commission-state";

interface Receipt {
  status: string;
  blockNumber: string;
  transactionHash: string;
  logs: { address: string; topics: string[]; data: string }[];
}

export interface SendOptions {
  chain: LedgerChain;
  wallet: Wallet;
  batchId: number;
  stateFile: string;
  /** Earliest block a run of this batch can be in (the ledger's deployment). */
  fromBlock: number;
  /** Blocks per eth_getLogs call. */
  maxRangeBlocks: number;
  onRunDone(run: RunRecord): void;
  /** Checked between runs: true stops cleanly after the run in flight is recorded. */
  stopRequested(): boolean;
  pollMs?: number;
  /**
   * How long to wait at start for the account's transactions still in the node's pool to be mined (default 120 s);
   * past it the command stops rather than send runs that may be among them.
   */
  poolWaitMs?: number;
  /** Transactions sent and not yet mined at once (default 1: one run at a time). */
  inFlight?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type OnChain = Map<string, { runId: number; txHash: string; block: number }>;

export class CommissionSender {
  private readonly commissioned;
  /** The batch's runs on chain when reconciled, by root. */
  private onChain: OnChain = new Map();
  /** Runs recorded `sending` whose nonce is unused: signed and broadcast again when their window comes. */
  private readonly rebroadcast = new Set<number>();
  /** Runs found on chain that the state did not show done. */
  found = 0;
  /** Codes of the runs this process signed a new transaction for, and of those it broadcast again as recorded. */
  signedCodes = 0;
  rebroadcastCodes = 0;

  constructor(private readonly o: SendOptions) {
    this.commissioned = o.chain.iface.getEvent("UnitsCommissioned");
  }

  /** The batch's runs on the ledger, by Merkle root. */
  async runsOnChain(): Promise<Map<string, { runId: number; txHash: string; block: number }>> {
    const { chain, batchId } = this.o;
    const found = new Map<string, { runId: number; txHash: string; block: number }>();
    const head = (await chain.head()).number;
    const batchTopic = "0x" + batchId.toString(16).padStart(64, "0");
    // Each log carries its run's code hashes (0.9 MB for a full run): the range narrows while responses hold more
    // than a few runs and widens over empty blocks, so that one response stays small on a chain of any length.
    let span = Math.min(this.o.maxRangeBlocks, 8);
    for (let from = this.o.fromBlock; from <= head;) {
      const to = Math.min(head, from + span - 1);
      const logs = await chain.rpc.call<
        { topics: string[]; data: string; transactionHash: string; blockNumber: string }[]
      >("eth_getLogs", [
        {
          address: chain.address,
          fromBlock: "0x" + from.toString(16),
          toBlock: "0x" + to.toString(16),
          topics: [this.commissioned.topicHash, null, batchTopic],
        },
      ]);
      for (const log of logs) {
        const parsed = chain.iface.parseLog(log)!;
        found.set(parsed.args.root as string, {
          runId: Number(parsed.args.runId),
          txHash: log.transactionHash,
          block: Number(log.blockNumber),
        });
      }
      from = to + 1;
      if (logs.length > 8) span = Math.max(1, Math.floor(span / 2));
      else if (logs.length < 2) span = Math.min(this.o.maxRangeBlocks, span * 2);
    }
    return found;
  }

  /**
   * Waits until the account's transactions that the node holds unmined are mined: a run in the pool is not among
   * the UnitsCommissioned events yet, so a process killed with runs in flight whose state file is lost (or does
   * not record them) would send them a second time, and the ledger would commission the codes twice.
   */
  private async untilPoolMined(): Promise<void> {
    const pending = await this.nonce("pending");
    const deadline = Date.now() + (this.o.poolWaitMs ?? 120_000);
    for (let latest = await this.nonce("latest"); latest < pending; latest = await this.nonce("latest")) {
      if (Date.now() > deadline) {
        throw new Error(
          `${pending - latest} transaction(s) of ${this.o.wallet.address} are still unmined in the node's pool ` +
            `(nonces ${latest} to ${pending - 1}); they may carry runs of this batch, so nothing is sent until they ` +
            `are mined or replaced: start the command again then`,
        );
      }
      await sleep(this.o.pollMs ?? 50);
    }
  }

  /** Brings the state in line with the chain; returns how many runs were found done that the state did not show. */
  async reconcile(state: CommissionState): Promise<number> {
    await this.untilPoolMined();
    this.onChain = await this.runsOnChain();
    const open = state.runs.filter((r) => r.state !== "done");
    const latestNonce = open.length > 0 ? await this.nonce("latest") : 0;
    for (const run of open.filter((r) => r.state === "sending")) {
      const receipt = await this.receipt(run.txHash!);
      if (receipt?.status === "0x1") {
        this.markDone(run, receipt);
        this.found++;
      } else if (receipt) {
        // Mined and reverted (the error the last process stopped on): its nonce is spent and its codes are not on
        // chain, so it is sent again, not counted done (which would finish the batch without them).
        run.state = "planned";
      } else if (run.nonce! >= latestNonce) {
        // The nonce is still ours: the same transaction again, at most once on chain whatever the pool held.
        this.rebroadcast.add(run.index);
      } else {
        run.state = "planned";
      }
    }
    for (const run of open.filter((r) => r.state === "planned")) this.settleIfOnChain(run);
    saveState(this.o.stateFile, state);
    return this.found;
  }

  /**
   * Sends every run not done, in order as the plan yields them, keeping up to `inFlight` transactions sent and not
   * yet mined (nonces consecutive, each run recorded `sending` before it is broadcast); returns false when stopped
   * before the end (the runs already on the wire are waited for and recorded first).
   */
  async sendAll(state: CommissionState, plan: AsyncIterable<PlannedRun>): Promise<boolean> {
    const inFlight = Math.max(1, this.o.inFlight ?? 1);
    const window: Promise<void>[] = [];
    let nextNonce = 0;
    let stopped = false;
    try {
      for await (const planned of plan) {
        if (this.o.stopRequested()) {
          stopped = true;
          break;
        }
        const run = this.recordFor(state, planned);
        if (run.state === "done") continue;
        if (window.length >= inFlight) await window.shift();
        if (run.state === "planned") {
          const data = this.calldata(planned);
          const [gas, fees, pending] = await Promise.all([
            this.o.chain.rpc.call<string>("eth_estimateGas", [this.call(data)]).then((g) => gasWithMargin(BigInt(g))),
            this.o.chain.provider.getFeeData(),
            this.nonce("pending"),
          ]);
          Object.assign(run, {
            nonce: Math.max(pending, nextNonce),
            gasLimit: gas.toString(),
            maxFeePerGas: (fees.maxFeePerGas ?? fees.gasPrice ?? 0n).toString(),
            maxPriorityFeePerGas: (fees.maxPriorityFeePerGas ?? 0n).toString(),
          });
          const signed = await this.sign(run, run.nonce!, data);
          run.txHash = Transaction.from(signed).hash!;
          run.state = "sending";
          this.signedCodes += run.codes;
          saveState(this.o.stateFile, state); // before the wire: the next start knows what may be out there
          await this.broadcast(signed, run);
        } else if (this.rebroadcast.delete(run.index)) {
          await this.broadcast(await this.sign(run, run.nonce!, this.calldata(planned)), run);
          this.rebroadcastCodes += run.codes;
        }
        if (run.nonce !== undefined) nextNonce = Math.max(nextNonce, run.nonce + 1);
        const mined = this.whenMined(run, state);
        mined.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        window.push(mined);
      }
    } finally {
      await Promise.allSettled(window);
    }
    await Promise.all(window);
    return !stopped;
  }

  /** The state's record of a planned run (added when its window is first planned), checked against its content. */
  private recordFor(state: CommissionState, planned: PlannedRun): RunRecord {
    const recorded = state.runs[planned.index];
    if (recorded) {
      if (recorded.root !== planned.payload.root)
        throw new StateMismatchError(
          `run ${planned.index} is planned with root ${planned.payload.root}, the state file recorded ${recorded.root}`,
        );
      return recorded;
    }
    if (planned.index !== state.runs.length) throw new Error(`run ${planned.index} planned out of order`);
    const run = recordOf(planned);
    state.runs.push(run);
    if (this.settleIfOnChain(run)) saveState(this.o.stateFile, state);
    return run;
  }

  /** Marks a run done when the ledger holds its root already (a lost state file, or a resent run). */
  private settleIfOnChain(run: RunRecord): boolean {
    const found = this.onChain.get(run.root);
    if (!found) return false;
    Object.assign(run, { state: "done", runId: found.runId, txHash: found.txHash, block: found.block });
    this.found++;
    return true;
  }

  /** Waits for the run's receipt and records it done (a revert is an error: the plan was checked before). */
  private async whenMined(run: RunRecord, state: CommissionState): Promise<void> {
    const receipt = await this.waitReceipt(run.txHash!);
    if (receipt.status !== "0x1") throw new Error(`run ${run.index}: transaction ${run.txHash} reverted`);
    this.markDone(run, receipt);
    saveState(this.o.stateFile, state);
    this.o.onRunDone(run);
  }

  private calldata(run: PlannedRun): string {
    const { shape, codes, witness } = run.payload;
    return this.o.chain.iface.encodeFunctionData("commission", [
      this.o.batchId,
      shape.unitCount,
      shape.unitsPerCase,
      shape.casesPerPallet,
      codes,
      witness,
    ]);
  }

  private call(data: string) {
    return { from: this.o.wallet.address, to: this.o.chain.address, data };
  }

  private async sign(run: RunRecord, nonce: number, data: string): Promise<string> {
    return this.o.wallet.signTransaction({
      type: 2,
      chainId: this.o.chain.chainId,
      to: this.o.chain.address,
      data,
      nonce,
      gasLimit: BigInt(run.gasLimit!),
      maxFeePerGas: BigInt(run.maxFeePerGas!),
      maxPriorityFeePerGas: BigInt(run.maxPriorityFeePerGas!),
    });
  }

  private async broadcast(signed: string, run: RunRecord): Promise<void> {
    try {
      await this.o.chain.rpc.call<string>("eth_sendRawTransaction", [signed]);
    } catch (err) {
      // The node holds (or mined) it already: what the re-broadcast was for.
      if (err instanceof RpcError && /known|already|nonce too low/i.test(err.message)) return;
      throw new Error(`run ${run.index}: the node refused the transaction: ${(err as Error).message}`);
    }
  }

  private nonce(tag: "latest" | "pending"): Promise<number> {
    return this.o.chain.rpc
      .call<string>("eth_getTransactionCount", [this.o.wallet.address, tag])
      .then((n) => Number(n));
  }

  private receipt(hash: string): Promise<Receipt | null> {
    return this.o.chain.rpc.call<Receipt | null>("eth_getTransactionReceipt", [hash]);
  }

  private async waitReceipt(hash: string): Promise<Receipt> {
    for (;;) {
      const receipt = await this.receipt(hash);
      if (receipt) return receipt;
      await sleep(this.o.pollMs ?? 50);
    }
  }

  private markDone(run: RunRecord, receipt: Receipt): void {
    const log = receipt.logs.find((l) => l.topics[0] === this.commissioned.topicHash);
    const runId = log ? Number(this.o.chain.iface.parseLog(log)!.args.runId) : undefined;
    Object.assign(run, { state: "done", runId, block: Number(receipt.blockNumber), txHash: receipt.transactionHash });
  }
}
