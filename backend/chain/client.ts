import { JsonRpcProvider, Network, type Log } from "ethers";
import { DrugLedger__factory } from "../../typechain-types";
import type { DrugLedgerInterface } from "../../typechain-types/contracts/DrugLedger";
import type { LedgerEvent } from "../index/events";

export interface BlockHeader {
  number: number;
  hash: string;
  parentHash: string;
  timestamp: number;
}

interface RawBlock {
  number: string;
  hash: string;
  parentHash: string;
  timestamp: string;
}

/** The ledger as the indexer sees it over JSON-RPC: block headers, the ledger's logs, decoded events. */
export class LedgerChain {
  readonly iface: DrugLedgerInterface = DrugLedger__factory.createInterface();
  private readonly headers = new Map<number, BlockHeader>();

  private constructor(
    readonly provider: JsonRpcProvider,
    readonly address: string,
    readonly chainId: number,
  ) {}

  /** Connects once the node answers (the caller retries); the network is then fixed, never re-detected. */
  static async connect(rpcUrl: string, address: string): Promise<LedgerChain> {
    const probe = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true, batchMaxCount: 1 });
    try {
      const chainId = Number(await probe.send("eth_chainId", []));
      const provider = new JsonRpcProvider(rpcUrl, Network.from(chainId), {
        staticNetwork: Network.from(chainId),
        batchMaxCount: 100,
      });
      return new LedgerChain(provider, address.toLowerCase(), chainId);
    } finally {
      probe.destroy();
    }
  }

  async head(): Promise<BlockHeader> {
    const header = await this.blockOrNull("latest");
    if (!header) throw new Error("node returned no latest block");
    return header;
  }

  /** A block's header (cached by number: callers drop the cache on a reorg). */
  async block(number: number): Promise<BlockHeader> {
    const cached = this.headers.get(number);
    if (cached) return cached;
    const header = await this.blockOrNull(number);
    if (!header) throw new Error(`node has no block ${number}`);
    return header;
  }

  /** The header at `number` as the node sees it now, bypassing the cache; null when beyond the head. */
  async blockOrNull(number: number | "latest"): Promise<BlockHeader | null> {
    const tag = number === "latest" ? "latest" : "0x" + number.toString(16);
    const raw = (await this.provider.send("eth_getBlockByNumber", [tag, false])) as RawBlock | null;
    if (!raw) return null;
    const header = {
      number: Number(raw.number),
      hash: raw.hash,
      parentHash: raw.parentHash,
      timestamp: Number(raw.timestamp),
    };
    if (number !== "latest") this.headers.set(header.number, header);
    return header;
  }

  forgetHeaders(): void {
    this.headers.clear();
  }

  async logsInRange(fromBlock: number, toBlock: number): Promise<Log[]> {
    return this.provider.getLogs({ address: this.address, fromBlock, toBlock });
  }

  async logsOfBlock(blockHash: string): Promise<Log[]> {
    return this.provider.getLogs({ address: this.address, blockHash });
  }

  /** Decodes logs in chain order, stamping each with its block's time. */
  async decode(logs: readonly Log[]): Promise<LedgerEvent[]> {
    const numbers = [...new Set(logs.map((l) => l.blockNumber))];
    const headers = await Promise.all(numbers.map((n) => this.block(n)));
    const byNumber = new Map(headers.map((h) => [h.number, h]));
    return logs.map((log) => {
      const header = byNumber.get(log.blockNumber)!;
      if (header.hash !== log.blockHash) {
        throw new ChainMovedError(
          `log of block ${log.blockNumber} is from ${log.blockHash}, header says ${header.hash}`,
        );
      }
      const parsed = this.iface.parseLog({ topics: [...log.topics], data: log.data });
      return {
        name: parsed?.name ?? "Unknown",
        args: (parsed?.args.toObject() ?? {}) as Record<string, unknown>,
        block: log.blockNumber,
        blockHash: log.blockHash,
        logIndex: log.index,
        time: header.timestamp,
        tx: log.transactionHash,
      };
    });
  }

  destroy(): void {
    this.provider.destroy();
  }
}

/** The chain changed under a read (a reorg in progress): re-read rather than index a mix of branches. */
export class ChainMovedError extends Error {}
