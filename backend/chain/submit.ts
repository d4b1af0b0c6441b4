/**
 * Sending the ledger's transactions for the organisations whose keys this deployment holds: simulation with the
 * contract's custom error decoded from the revert data, nonces managed per signer so that concurrent requests
 * (of one process or of many) never collide or leave gaps, every signed transaction recorded in Redis before it
 * is broadcast (so that a restart finds it), and a transaction that is not mined in time replaced with the same
 * nonce and a higher fee rather than forgotten.
 */
import { randomUUID } from "node:crypto";
import { Transaction, type Interface, type Wallet } from "ethers";
import type { Logger } from "../log";
import type { RedisClient } from "../store/redis";
import type { LedgerChain } from "./client";
import { RpcError } from "./rpc";
import type { Signers } from "./signers";

/** EIP-7825 (Osaka): no transaction may use more than 2^24 gas. */
const TX_GAS_CAP = 2n ** 24n;

/** An estimate with a margin, never past EIP-7825's cap of 2^24 gas, which the node would refuse. */
export function gasWithMargin(estimate: bigint): bigint {
  const withMargin = (estimate * 120n) / 100n + 10_000n;
  return withMargin < TX_GAS_CAP ? withMargin : TX_GAS_CAP;
}

// ---- revert data ----

export interface DecodedError {
  /** The custom error's name, e.g. UnitAlreadySettled (or Error / Panic for a string or panic revert). */
  name: string;
  /** Its arguments by name, as strings (numbers in decimal, addresses and bytes in hex). */
  args: Record<string, string>;
}

/** The contract refused: in simulation (nothing was sent) or on chain (a mined transaction reverted). */
export class LedgerRefusal extends Error {
  constructor(
    readonly error: DecodedError,
    /** The mined transaction that reverted; undefined when the refusal came from simulation. */
    readonly txHash?: string,
  ) {
    super(`ledger refused: ${error.name}`);
    this.name = "LedgerRefusal";
  }
}

/** The revert data a node attached to an error (Hardhat and geth put it in `data`, sometimes one level down). */
export function revertDataOf(err: unknown): string | null {
  const data = err instanceof RpcError ? err.data : (err as { data?: unknown } | null)?.data;
  if (typeof data === "string" && /^0x[0-9a-fA-F]*$/.test(data)) return data;
  if (data && typeof data === "object" && "data" in data) return revertDataOf(data);
  return null;
}

export function decodeRevert(iface: Interface, data: string): DecodedError {
  if (data === "0x") return { name: "Reverted", args: {} };
  try {
    const parsed = iface.parseError(data);
    if (parsed) {
      const args: Record<string, string> = {};
      parsed.fragment.inputs.forEach((input, i) => (args[input.name || String(i)] = String(parsed.args[i])));
      return { name: parsed.name, args };
    }
  } catch {
    // not one of the ledger's errors
  }
  return { name: "UnknownError", args: { data } };
}

// ---- transactions ----

export interface TxReceipt {
  transactionHash: string;
  blockNumber: number;
  gasUsed: number;
  status: 0 | 1;
  logs: { address: string; topics: string[]; data: string; logIndex: string }[];
}

interface RawReceipt {
  transactionHash: string;
  blockNumber: string;
  gasUsed: string;
  status: string;
  logs: { address: string; topics: string[]; data: string; logIndex: string }[];
}

/** What Redis keeps of a transaction the service signed (`svc:tx:<hash>`): enough to watch, re-send or replace it. */
export interface TxRecord {
  org: string;
  nonce: number;
  data: string;
  /** Every signed version (a replacement adds one), newest last, with its raw bytes for re-broadcasting. */
  versions: { hash: string; raw: string; maxFeePerGas: string; maxPriorityFeePerGas: string; sentAt?: number }[];
  signedAt: number;
}

/** Where a recorded transaction stands on the node. */
export type TxState =
  | { state: "mined"; receipt: TxReceipt }
  | { state: "pending" }
  /** Its nonce was used by another transaction: none of its versions can ever be mined. */
  | { state: "dropped" };

export interface SubmitSettings {
  /** A transaction not mined after this long is replaced (same nonce, higher fee). */
  TX_REPLACE_AFTER_MS: number;
  /** How long records of sent transactions (and nonce state) are kept. */
  TX_RECORD_TTL_SECONDS: number;
}

const txKey = (hash: string): string => `svc:tx:${hash.toLowerCase()}`;
/** The first hash of every recorded transaction not known to be mined, scored by when it was signed. */
export const PENDING_TXS = "svc:tx:pending";
const nonceKeys = (account: string) => ({
  lock: `svc:{nonce:${account}}:lock`,
  next: `svc:{nonce:${account}}:next`,
  /** Held while one process replaces the transaction of `nonce`, so that two never replace it at once. */
  replace: (nonce: number) => `svc:{nonce:${account}}:replace:${nonce}`,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Replacement fee bump: geth and Besu require at least 10% on both fee fields. */
const BUMP_PERCENT = 125n;
const RELEASE_LOCK = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW_LOCK = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
const LOCK_MS = 15_000;
/** Times a fresh transaction is signed again after finding its nonce used by another sender. */
const MAX_NONCE_ATTEMPTS = 5;
const RECEIPT_POLL_MS = 50;
/** How often a waiting request re-reads its record, to see a replacement another process made. */
const RECORD_REFRESH_MS = 1_000;
/** Transactions one sweep looks at (the oldest first); the next sweep takes the rest. */
const SWEEP_BATCH = 200;

/** A fresh transaction's nonce is used: mined by another transaction, or held by one in the pool. */
const isNonceTaken = (err: unknown): boolean =>
  /nonce too low|replacement transaction underpriced|replacement fee too low/i.test((err as Error).message);
const isAlreadyKnown = (err: unknown): boolean =>
  /already known|known transaction|nonce too low|replacement transaction underpriced|already imported/i.test(
    (err as Error).message,
  );

export class Submitter {
  /** One queue per signer in this process, so that only one of its requests at a time contends for the lock. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly chain: LedgerChain,
    private readonly redis: RedisClient,
    readonly signers: Signers,
    private readonly settings: SubmitSettings,
    private readonly log: Logger,
  ) {}

  get iface(): Interface {
    return this.chain.iface as unknown as Interface;
  }

  /** eth_call of each call from `from`: null where it would succeed, the decoded refusal where it would revert. */
  async simulate(from: string, datas: readonly string[]): Promise<(DecodedError | null)[]> {
    const replies = await this.chain.rpc.batchSettled(
      datas.map((data) => ({ method: "eth_call", params: [{ from, to: this.chain.address, data }, "latest"] })),
    );
    return replies.map((r) => {
      if (!("error" in r)) return null;
      const data = revertDataOf(r.error);
      if (data === null) throw r.error; // the node failed, not the contract
      return decodeRevert(this.iface, data);
    });
  }

  /** Gas for `data` from `from` with a margin (at most the per-transaction cap); a revert is a {@link LedgerRefusal}. */
  async estimate(from: string, data: string): Promise<bigint> {
    try {
      const gas = await this.chain.rpc.call<string>("eth_estimateGas", [{ from, to: this.chain.address, data }]);
      return gasWithMargin(BigInt(gas));
    } catch (err) {
      const revert = revertDataOf(err);
      if (revert !== null) throw new LedgerRefusal(decodeRevert(this.iface, revert));
      throw err;
    }
  }

  /**
   * Signs `data` for `org` with the next nonce, records it (and tells `onSigned`, which records it for the
   * request) BEFORE broadcasting, broadcasts, and returns the hash. The nonce lock is held only until the node has
   * the transaction, so that many transactions of one signer are in flight at once, in nonce order.
   */
  async send(org: string, data: string, gas: bigint, onSigned: (hash: string) => Promise<void>): Promise<string> {
    const account = org.toLowerCase();
    const wallet = this.signers.get(account);
    if (!wallet) throw new Error(`no key for ${account}`);
    const previous = this.queues.get(account) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(() => this.sendLocked(wallet, account, data, gas, onSigned));
    this.queues.set(account, mine);
    try {
      return await mine;
    } finally {
      if (this.queues.get(account) === mine) this.queues.delete(account);
    }
  }

  private async sendLocked(
    wallet: Wallet,
    account: string,
    data: string,
    gas: bigint,
    onSigned: (hash: string) => Promise<void>,
  ): Promise<string> {
    const keys = nonceKeys(account);
    const lock = await this.lock(keys.lock);
    try {
      for (let attempt = 1; ; attempt++) {
        const [stored, pending] = await Promise.all([
          this.redis.get(keys.next),
          this.chain.rpc.call<string>("eth_getTransactionCount", [account, "pending"]),
        ]);
        const nonce = Math.max(Number(stored ?? 0), Number(BigInt(pending)));
        const fees = await this.fees();
        const version = await this.sign(wallet, nonce, data, gas, fees);
        const record: TxRecord = { org: account, nonce, data, versions: [version], signedAt: Date.now() };
        await this.redis.set(txKey(version.hash), JSON.stringify(record), "EX", this.settings.TX_RECORD_TTL_SECONDS);
        await this.redis.zadd(PENDING_TXS, record.signedAt, version.hash.toLowerCase());
        await onSigned(version.hash);
        const taken = await this.broadcastNew(version.raw, version.hash);
        await this.redis.set(keys.next, String(nonce + 1), "EX", this.settings.TX_RECORD_TTL_SECONDS);
        if (!taken) return version.hash;
        // Another sender of this account (an operator's script with the same key, or a process whose lock
        // lapsed) used the nonce: this version can never be mined, so it is forgotten and the call signed anew.
        this.log.warn({ tx: version.hash, org: account, nonce, attempt }, "nonce taken by another sender: re-signing");
        await this.forgetPending(record);
        await this.redis.del(txKey(version.hash));
        if (attempt >= MAX_NONCE_ATTEMPTS) throw new Error(`nonce of ${account} taken ${attempt} times in a row`);
      }
    } finally {
      await lock.release();
    }
  }

  /**
   * Takes the lock `key`, kept alive while held (a hold longer than LOCK_MS, on a slow node, must not let another
   * process take the same nonce), until release().
   */
  private async lock(key: string): Promise<{ release(): Promise<void> }> {
    const token = randomUUID();
    for (let attempt = 0; ; attempt++) {
      if ((await this.redis.set(key, token, "PX", LOCK_MS, "NX")) === "OK") break;
      await sleep(Math.min(5 + attempt * 2, 50));
    }
    const renew = setInterval(
      () => void this.redis.eval(RENEW_LOCK, 1, key, token, String(LOCK_MS)).catch(() => undefined),
      LOCK_MS / 3,
    );
    renew.unref();
    return {
      release: async () => {
        clearInterval(renew);
        await this.redis.eval(RELEASE_LOCK, 1, key, token).catch(() => undefined);
      },
    };
  }

  private async fees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const [block, tip] = await this.chain.rpc.batchSettled<{ baseFeePerGas?: string } | string>([
      { method: "eth_getBlockByNumber", params: ["latest", false] },
      { method: "eth_maxPriorityFeePerGas", params: [] },
    ]);
    const baseFee = "result" in block! ? BigInt((block.result as { baseFeePerGas?: string }).baseFeePerGas ?? 0) : 0n;
    const priority = "result" in tip! ? BigInt(tip.result as string) : 0n;
    return { maxFeePerGas: baseFee * 2n + priority, maxPriorityFeePerGas: priority };
  }

  private async sign(
    wallet: Wallet,
    nonce: number,
    data: string,
    gas: bigint,
    fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint },
  ): Promise<TxRecord["versions"][number]> {
    const raw = await wallet.signTransaction({
      type: 2,
      chainId: this.chain.chainId,
      nonce,
      to: this.chain.address,
      data,
      gasLimit: gas,
      ...fees,
    });
    return {
      hash: Transaction.from(raw).hash!,
      raw,
      maxFeePerGas: fees.maxFeePerGas.toString(),
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
      sentAt: Date.now(),
    };
  }

  /**
   * Hands a signed transaction to the node. A node that already has it (a re-broadcast) is fine; Hardhat's
   * automine answers a transaction that reverted with an error but mines it, which the receipt then tells.
   */
  private async broadcast(raw: string, hash: string): Promise<void> {
    try {
      await this.chain.rpc.call<string>("eth_sendRawTransaction", [raw]);
    } catch (err) {
      if (isAlreadyKnown(err)) return;
      await this.unlessMined(err, hash);
    }
  }

  /**
   * Hands a freshly signed transaction to the node; true when its nonce turned out to be used by another
   * transaction (mined, or pending with fees this one does not outbid), which means it can never be mined.
   */
  private async broadcastNew(raw: string, hash: string): Promise<boolean> {
    try {
      await this.chain.rpc.call<string>("eth_sendRawTransaction", [raw]);
      return false;
    } catch (err) {
      if (isNonceTaken(err)) return !(await this.receiptOf([hash])); // a retried send of ours may have been mined
      if (isAlreadyKnown(err)) return false;
      await this.unlessMined(err, hash);
      return false;
    }
  }

  /** Rethrows a refused send unless the refusal was a revert and the transaction was mined anyway (automine). */
  private async unlessMined(err: unknown, hash: string): Promise<void> {
    if (revertDataOf(err) !== null || /revert/i.test((err as Error).message)) {
      if (await this.receiptOf([hash])) return;
    }
    throw err;
  }

  /** The receipt of whichever version of a transaction was mined, or null. */
  async receiptOf(hashes: readonly string[]): Promise<TxReceipt | null> {
    const replies = await this.chain.rpc.batchSettled<RawReceipt | null>(
      hashes.map((h) => ({ method: "eth_getTransactionReceipt", params: [h] })),
    );
    for (const r of replies) {
      if ("result" in r && r.result)
        return {
          transactionHash: r.result.transactionHash,
          blockNumber: Number(r.result.blockNumber),
          gasUsed: Number(r.result.gasUsed),
          status: Number(r.result.status) === 1 ? 1 : 0,
          logs: r.result.logs,
        };
    }
    return null;
  }

  async record(hash: string): Promise<TxRecord | null> {
    const raw = await this.redis.get(txKey(hash));
    return raw ? (JSON.parse(raw) as TxRecord) : null;
  }

  /**
   * Waits until a version of the transaction `hash` names is mined, re-broadcasting it if the node lost it (a
   * restart of the node or of this service) and replacing it with a higher fee when it sits unmined past
   * TX_REPLACE_AFTER_MS. Gives up waiting (not the transaction) at `deadline`, returning null.
   */
  async waitMined(hash: string, deadline: number): Promise<TxReceipt | null> {
    let record = await this.record(hash);
    let hashes = record ? record.versions.map((v) => v.hash) : [hash];
    let readAt = Date.now();
    let checkedKnown = false;
    for (;;) {
      const receipt = await this.receiptOf(hashes);
      if (receipt) {
        if (record) await this.forgetPending(record);
        return receipt;
      }
      if (record && !checkedKnown) {
        checkedKnown = true;
        await this.rebroadcastIfLost(record);
      }
      if (record && (this.isStale(record) || Date.now() - readAt > RECORD_REFRESH_MS)) {
        record = (this.isStale(record) ? await this.replaceIfStale(record) : await this.record(hash)) ?? record;
        hashes = record.versions.map((v) => v.hash);
        readAt = Date.now();
      }
      if (Date.now() >= deadline) return null;
      await sleep(RECEIPT_POLL_MS);
    }
  }

  /** Mined, still pending, or dropped (its nonce taken by another transaction). */
  async stateOf(record: TxRecord): Promise<TxState> {
    const hashes = record.versions.map((v) => v.hash);
    const receipt = await this.receiptOf(hashes);
    if (receipt) return { state: "mined", receipt };
    if ((await this.minedCount(record.org)) <= record.nonce) return { state: "pending" };
    // The nonce is used: by one of these (mined between the two reads) or by something else.
    const late = await this.receiptOf(hashes);
    return late ? { state: "mined", receipt: late } : { state: "dropped" };
  }

  /**
   * One pass over the recorded transactions not known to be mined (the oldest SWEEP_BATCH): a mined or dropped
   * one leaves the list, one the node lost is sent again, one stuck past TX_REPLACE_AFTER_MS is replaced. Run at
   * start and then periodically, so that a transaction whose request died with its process is still seen through.
   */
  async sweep(): Promise<{ mined: number; pending: number; dropped: number }> {
    const firsts = await this.redis.zrange(PENDING_TXS, 0, SWEEP_BATCH - 1);
    const counts = { mined: 0, pending: 0, dropped: 0 };
    await Promise.all(
      firsts.map(async (first) => {
        const record = await this.record(first);
        if (!record) return void (await this.redis.zrem(PENDING_TXS, first)); // expired
        const found = await this.stateOf(record);
        counts[found.state]++;
        if (found.state !== "pending") {
          if (found.state === "dropped")
            this.log.error(
              { tx: first, org: record.org, nonce: record.nonce },
              "a recorded transaction's nonce was used by another transaction: it will never be mined",
            );
          return this.forgetPending(record);
        }
        await this.rebroadcastIfLost(record);
        if (this.isStale(record)) await this.replaceIfStale(record);
      }),
    );
    return counts;
  }

  private async forgetPending(record: TxRecord): Promise<void> {
    await this.redis.zrem(PENDING_TXS, record.versions[0]!.hash.toLowerCase());
  }

  /** The newest version has waited past TX_REPLACE_AFTER_MS. */
  private isStale(record: TxRecord): boolean {
    const newest = record.versions[record.versions.length - 1]!;
    return Date.now() - (newest.sentAt ?? record.signedAt) > this.settings.TX_REPLACE_AFTER_MS;
  }

  /** A transaction the node forgot (none of its versions pending nor mined) is sent again as it was. */
  private async rebroadcastIfLost(record: TxRecord): Promise<void> {
    const found = await this.chain.rpc.batchSettled<unknown>(
      record.versions.map((v) => ({ method: "eth_getTransactionByHash", params: [v.hash] })),
    );
    if (found.some((r) => "result" in r && r.result)) return;
    const newest = record.versions[record.versions.length - 1]!;
    this.log.warn({ tx: newest.hash, org: record.org, nonce: record.nonce }, "re-broadcasting a lost transaction");
    await this.broadcast(newest.raw, newest.hash).catch((err: Error) =>
      this.log.warn({ tx: newest.hash, err: err.message }, "re-broadcast refused"),
    );
  }

  /**
   * Replaces the transaction if, read afresh under its replacement lock, it is still unmined and stale (a request
   * and the sweep, or two processes, never replace one nonce at once, so no version is lost from the record).
   * Returns the record as it is now.
   */
  private async replaceIfStale(seen: TxRecord): Promise<TxRecord> {
    const lockKey = nonceKeys(seen.org).replace(seen.nonce);
    const token = randomUUID();
    if ((await this.redis.set(lockKey, token, "PX", LOCK_MS, "NX")) !== "OK") return seen;
    try {
      const record = (await this.record(seen.versions[0]!.hash)) ?? seen;
      if (!this.isStale(record) || (await this.receiptOf(record.versions.map((v) => v.hash)))) return record;
      return await this.replace(record);
    } finally {
      await this.redis.eval(RELEASE_LOCK, 1, lockKey, token).catch(() => undefined);
    }
  }

  /** Same nonce, same call, fees raised by a quarter: the node keeps one of them and mines it. */
  private async replace(record: TxRecord): Promise<TxRecord> {
    const wallet = this.signers.get(record.org);
    if (!wallet) return record;
    const last = record.versions[record.versions.length - 1]!;
    const current = await this.fees();
    const bump = (was: string, now: bigint) => {
      const raised = (BigInt(was) * BUMP_PERCENT) / 100n + 1n;
      return raised > now ? raised : now;
    };
    const fees = {
      maxFeePerGas: bump(last.maxFeePerGas, current.maxFeePerGas),
      maxPriorityFeePerGas: bump(last.maxPriorityFeePerGas, current.maxPriorityFeePerGas),
    };
    const gas = Transaction.from(last.raw).gasLimit;
    const version = await this.sign(wallet, record.nonce, record.data, gas, fees);
    const updated: TxRecord = { ...record, versions: [...record.versions, version] };
    // Every version's record names all of them, so that a request holding any hash finds the one that is mined.
    for (const v of updated.versions)
      await this.redis.set(txKey(v.hash), JSON.stringify(updated), "EX", this.settings.TX_RECORD_TTL_SECONDS);
    this.log.warn(
      { tx: last.hash, replacement: version.hash, nonce: record.nonce },
      "replacing an unmined transaction",
    );
    await this.broadcast(version.raw, version.hash).catch((err: Error) =>
      this.log.warn({ tx: version.hash, err: err.message }, "replacement refused"),
    );
    return updated;
  }

  /** The refusal behind a mined transaction that reverted: the same call replayed on the state after it. */
  async refusalOf(org: string, data: string, txHash: string): Promise<LedgerRefusal> {
    const [decoded] = await this.simulate(org, [data]);
    return new LedgerRefusal(decoded ?? { name: "Reverted", args: {} }, txHash);
  }

  /** How many transactions `account` has had mined (its nonce), for operators and tests. */
  async minedCount(account: string): Promise<number> {
    return Number(BigInt(await this.chain.rpc.call<string>("eth_getTransactionCount", [account, "latest"])));
  }
}
