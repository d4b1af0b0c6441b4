import { type EventFragment, JsonRpcProvider, Network } from "ethers";
import { DrugLedger__factory } from "../../typechain-types";
import type { DrugLedgerInterface, UnitsCommissionedEvent } from "../../typechain-types/contracts/DrugLedger";
import type { LedgerEvent } from "../index/events";
import { JsonRpcClient } from "./rpc";

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

/** A log as eth_getLogs returns it. */
export interface RawLog {
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  logIndex: string;
  topics: string[];
  data: string;
}

const toHeader = (raw: RawBlock): BlockHeader => ({
  number: Number(raw.number),
  hash: raw.hash,
  parentHash: raw.parentHash,
  timestamp: Number(raw.timestamp),
});
const blockTag = (n: number | "latest") => (n === "latest" ? n : "0x" + n.toString(16));

/** The ledger as the indexer sees it over JSON-RPC: block headers, the ledger's logs, decoded events. */
export class LedgerChain {
  readonly iface: DrugLedgerInterface = DrugLedger__factory.createInterface();
  private readonly headers = new Map<number, BlockHeader>();
  private readonly commissionedTopic = this.iface.getEvent("UnitsCommissioned").topicHash;
  /**
   * The ledger's events by topic, hashed once: `parseLog` finds a log's event by hashing every event's signature
   * until one matches (a keccak each, not cached), a tenth of a back-fill's JavaScript time.
   */
  private readonly eventsByTopic = new Map<string, EventFragment>();

  private constructor(
    /** The node over plain JSON-RPC (the write pipeline sends and simulates through it). */
    readonly rpc: JsonRpcClient,
    /** An ethers provider on the same node, for contract view calls (index:verify). */
    readonly provider: JsonRpcProvider,
    readonly address: string,
    readonly chainId: number,
  ) {
    // An anonymous event has no topic of its own (parseLog never names one either).
    this.iface.forEachEvent((event) => {
      if (!event.anonymous) this.eventsByTopic.set(event.topicHash, event);
    });
  }

  /** Connects once the node answers (the caller retries); the network is then fixed, never re-detected. */
  static async connect(rpcUrl: string, address: string): Promise<LedgerChain> {
    const rpc = new JsonRpcClient(rpcUrl);
    const chainId = Number(await rpc.call<string>("eth_chainId", []));
    const network = Network.from(chainId);
    const provider = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network });
    return new LedgerChain(rpc, provider, address.toLowerCase(), chainId);
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
    const [header] = await this.blocksOrNull([number]);
    return header ?? null;
  }

  /** Headers of several blocks in one request (null past the head), cached by number. */
  async blocksOrNull(numbers: readonly (number | "latest")[]): Promise<(BlockHeader | null)[]> {
    const raws = await this.rpc.batch<RawBlock | null>(
      numbers.map((n) => ({ method: "eth_getBlockByNumber", params: [blockTag(n), false] })),
    );
    return raws.map((raw, i) => {
      if (!raw) return null;
      const header = toHeader(raw);
      if (numbers[i] !== "latest") this.headers.set(header.number, header);
      return header;
    });
  }

  forgetHeaders(): void {
    this.headers.clear();
  }

  /** Drops cached headers below `number` (indexed for good), so the cache stays small. */
  forgetHeadersBelow(number: number): void {
    for (const n of this.headers.keys()) if (n < number) this.headers.delete(n);
  }

  async logsInRange(fromBlock: number, toBlock: number): Promise<RawLog[]> {
    return this.rpc.call<RawLog[]>("eth_getLogs", [
      { address: this.address, fromBlock: blockTag(fromBlock), toBlock: blockTag(toBlock) },
    ]);
  }

  /** Decodes logs in chain order, stamping each with its block's time. */
  async decode(logs: readonly RawLog[]): Promise<LedgerEvent[]> {
    const numbers = [...new Set(logs.map((l) => Number(l.blockNumber)))];
    const missing = numbers.filter((n) => !this.headers.has(n));
    for (let i = 0; i < missing.length; i += 100) {
      const fetched = await this.blocksOrNull(missing.slice(i, i + 100));
      const gone = fetched.findIndex((h) => h === null);
      if (gone >= 0) throw new ChainMovedError(`block ${missing[i + gone]} is gone`);
    }
    return logs.map((log) => {
      const blockNumber = Number(log.blockNumber);
      const header = this.headers.get(blockNumber)!;
      if (header.hash !== log.blockHash) {
        throw new ChainMovedError(`log of block ${blockNumber} is from ${log.blockHash}, header says ${header.hash}`);
      }
      return {
        ...this.decodeLog(log),
        block: blockNumber,
        blockHash: log.blockHash,
        logIndex: Number(log.logIndex),
        time: header.timestamp,
        tx: log.transactionHash,
      };
    });
  }

  private decodeLog(log: RawLog): Pick<LedgerEvent, "name" | "args"> {
    const topic = log.topics[0];
    if (topic === this.commissionedTopic) return { name: "UnitsCommissioned", args: decodeCommissioned(log) };
    // Nodes spell hex in lower case; parseLog took any case, so a miss is looked up again in lower case.
    const event =
      topic === undefined ? undefined : (this.eventsByTopic.get(topic) ?? this.eventsByTopic.get(topic.toLowerCase()));
    if (!event) return { name: "Unknown", args: {} };
    return { name: event.name, args: this.iface.decodeEventLog(event, log.data, log.topics).toObject() };
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
function decodeCommissioned(log: RawLog): UnitsCommissionedEvent.OutputObject & Record<string, unknown> {
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
