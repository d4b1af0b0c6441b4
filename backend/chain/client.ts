import { JsonRpcProvider, Network, type Log } from "ethers";
import { DrugLedger__factory } from "../../typechain-types";
import type { DrugLedgerInterface, UnitsCommissionedEvent } from "../../typechain-types/contracts/DrugLedger";
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
  private readonly commissionedTopic = this.iface.getEvent("UnitsCommissioned").topicHash;

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
      const fast = log.topics[0] === this.commissionedTopic ? decodeCommissioned(log) : null;
      const parsed = fast ? null : this.iface.parseLog({ topics: [...log.topics], data: log.data });
      return {
        name: fast ? "UnitsCommissioned" : (parsed?.name ?? "Unknown"),
        args: fast ?? ((parsed?.args.toObject() ?? {}) as Record<string, unknown>),
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

/**
 * UnitsCommissioned carries up to 65,535 codes (786 KB); the generic ABI decoder copies them byte by byte, so
 * this event is read straight off its layout: three indexed ids, then unitCount, unitsPerCase, casesPerPallet,
 * root, and the offset, length and bytes of `codes`.
 */
function decodeCommissioned(log: Log): UnitsCommissionedEvent.OutputObject & Record<string, unknown> {
  const word = (i: number) => log.data.slice(2 + i * 64, 2 + (i + 1) * 64);
  const codesAt = Number(BigInt("0x" + word(4))) / 32;
  const length = Number(BigInt("0x" + word(codesAt)));
  const start = 2 + (codesAt + 1) * 64;
  return {
    runId: BigInt(log.topics[1]!),
    batchId: BigInt(log.topics[2]!),
    manufacturerId: BigInt(log.topics[3]!),
    unitCount: BigInt("0x" + word(0)),
    unitsPerCase: BigInt("0x" + word(1)),
    casesPerPallet: BigInt("0x" + word(2)),
    root: "0x" + word(3),
    codes: "0x" + log.data.slice(start, start + length * 2),
  };
}

/** The chain changed under a read (a reorg in progress): re-read rather than index a mix of branches. */
export class ChainMovedError extends Error {}
