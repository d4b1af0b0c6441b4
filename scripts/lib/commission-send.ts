/**
 * Sends a plan's runs one transaction each, several in flight, recording every step in the state file, and reconciles what an
 * earlier, interrupted process may have sent before sending anything again:
 * - a run `sending` whose transaction has a receipt is done;
 * - a run `sending` whose nonce the account has not used yet is re-signed with the same nonce and fees (the same
 *   transaction, byte for byte: deterministic signatures) and re-broadcast; the nonce makes a second copy
 *   impossible;
 * - a run `sending` whose nonce was used by another transaction, and any run `planned`, is looked up among the
 *   batch's UnitsCommissioned events by its Merkle root: found, it is done; not found, it is (re)sent.
 */
import { Transaction, Wallet } from "ethers";
import type { PlannedRun } from "../../backend/chain/commission-plan";
import type { LedgerChain } from "../../backend/chain/client";
import { gasWithMargin } from "../../backend/chain/submit";
import { RpcError } from "../../backend/chain/rpc";
import { saveState, type CommissionState, type RunRecord } from "./commission-state";

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
  /** The runs as planned now (their content; the state file holds only their roots). */
  plan: readonly PlannedRun[];
  stateFile: string;
  /** Earliest block a run of this batch can be in (the ledger's deployment). */
  fromBlock: number;
  /** Blocks per eth_getLogs call. */
  maxRangeBlocks: number;
  onRunDone(run: RunRecord): void;
  /** Checked between runs: true stops cleanly after the run in flight is recorded. */
  stopRequested(): boolean;
  pollMs?: number;
  /** Transactions sent and not yet mined at once (default 1: one run at a time). */
  inFlight?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class CommissionSender {
  private readonly commissioned;

  constructor(private readonly o: SendOptions) {
    this.commissioned = o.chain.iface.getEvent("UnitsCommissioned");
  }

  /** The batch's runs on the ledger, by Merkle root. */
  async runsOnChain(): Promise<Map<string, { runId: number; txHash: string; block: number }>> {
    const { chain, batchId } = this.o;
    const found = new Map<string, { runId: number; txHash: string; block: number }>();
    const head = (await chain.head()).number;
    const batchTopic = "0x" + batchId.toString(16).padStart(64, "0");
    for (let from = this.o.fromBlock; from <= head; from += this.o.maxRangeBlocks) {
      const to = Math.min(head, from + this.o.maxRangeBlocks - 1);
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
    }
    return found;
  }

  /** Brings the state in line with the chain; returns how many runs were found done that the state did not show. */
  async reconcile(state: CommissionState): Promise<number> {
    const open = state.runs.filter((r) => r.state !== "done");
    if (open.length === 0) return 0;
    let settled = 0;
    const latestNonce = await this.nonce("latest");
    for (const run of open.filter((r) => r.state === "sending")) {
      const receipt = await this.receipt(run.txHash!);
      if (receipt) {
        this.markDone(run, receipt);
        settled++;
      } else if (run.nonce! >= latestNonce) {
        // The nonce is still ours: the same transaction again, at most once on chain whatever the pool held.
        await this.broadcast(await this.sign(run, run.nonce!), run);
      } else {
        run.state = "planned";
      }
    }
    const onChain = await this.runsOnChain();
    for (const run of open.filter((r) => r.state === "planned")) {
      const found = onChain.get(run.root);
      if (!found) continue;
      Object.assign(run, { state: "done", runId: found.runId, txHash: found.txHash, block: found.block });
      settled++;
    }
    saveState(this.o.stateFile, state);
    return settled;
  }

  /**
   * Sends every run not done, in order, keeping up to `inFlight` transactions sent and not yet mined (nonces
   * consecutive, each run recorded `sending` before it is broadcast); returns false when stopped before the end
   * (the runs already on the wire are waited for and recorded first).
   */
  async sendAll(state: CommissionState): Promise<boolean> {
    const inFlight = Math.max(1, this.o.inFlight ?? 1);
    const window: Promise<void>[] = [];
    let nextNonce = 0;
    let stopped = false;
    for (const run of state.runs) {
      if (this.o.stopRequested()) {
        stopped = true;
        break;
      }
      if (run.state === "done") continue;
      if (window.length >= inFlight) await window.shift();
      if (run.state === "planned") {
        const planned = this.o.plan[run.index]!;
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
        saveState(this.o.stateFile, state); // before the wire: the next start knows what may be out there
        await this.broadcast(signed, run);
      }
      if (run.nonce !== undefined) nextNonce = Math.max(nextNonce, run.nonce + 1);
      const mined = this.whenMined(run, state);
      mined.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      window.push(mined);
    }
    await Promise.all(window);
    return !stopped;
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

  private async sign(run: RunRecord, nonce: number, data?: string): Promise<string> {
    return this.o.wallet.signTransaction({
      type: 2,
      chainId: this.o.chain.chainId,
      to: this.o.chain.address,
      data: data ?? this.calldata(this.o.plan[run.index]!),
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
