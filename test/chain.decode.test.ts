import { expect } from "chai";
import { type EventFragment, type ParamType, ZeroHash } from "ethers";
import { type BlockHeader, LedgerChain, type RawLog } from "../backend/chain/client";

/** A LedgerChain with no node behind it: decode() only needs the block headers, seeded here. */
function offlineChain(): LedgerChain {
  const Chain = LedgerChain as unknown as new (...args: unknown[]) => LedgerChain;
  const chain = new Chain(null, null, "0x0000000000000000000000000000000000000001", 31337);
  const header: BlockHeader = { number: 1, hash: ZeroHash, parentHash: ZeroHash, timestamp: 5 };
  (chain as unknown as { headers: Map<number, BlockHeader> }).headers.set(1, header);
  return chain;
}

/** A value of every ABI type the ledger's events carry. */
function sample(param: ParamType): unknown {
  if (param.baseType === "array") return [sample(param.arrayChildren!)];
  if (param.baseType === "tuple") return param.components!.map(sample);
  if (param.type === "address") return "0x00000000000000000000000000000000000000aa";
  if (param.type === "bool") return true;
  if (param.type === "string") return "x";
  if (param.type === "bytes") return "0x0102";
  if (param.type.startsWith("bytes")) return "0x" + "ab".repeat(Number(param.type.slice(5)));
  return 3n; // uint / int
}

const asLog = (topics: string[], data: string, logIndex = 0): RawLog => ({
  blockNumber: "0x1",
  blockHash: ZeroHash,
  transactionHash: ZeroHash,
  logIndex: "0x" + logIndex.toString(16),
  topics,
  data,
});

describe("Ledger logs decoded by topic", function () {
  const chain = offlineChain();
  const events: EventFragment[] = [];
  chain.iface.forEachEvent((event) => events.push(event));
  const encoded = events.map((event) => chain.iface.encodeEventLog(event, event.inputs.map(sample)));

  it("names every event and decodes its args as parseLog does", async function () {
    const decoded = await chain.decode(encoded.map(({ topics, data }, i) => asLog(topics, data, i)));
    expect(decoded.map((ev) => ev.name)).to.deep.equal(events.map((event) => event.name));
    encoded.forEach(({ topics, data }, i) => {
      if (events[i]!.name === "UnitsCommissioned") return; // read off its layout (tested with the indexer)
      expect(decoded[i]!.args, events[i]!.name).to.deep.equal(chain.iface.parseLog({ topics, data })!.args.toObject());
    });
  });

  it("finds an event whose topic is spelled in capitals, as parseLog did", async function () {
    const upper = (hex: string) => "0x" + hex.slice(2).toUpperCase();
    const logs = encoded.map(({ topics, data }, i) => asLog(topics.map(upper), data, i));
    const decoded = await chain.decode(logs);
    expect(decoded.map((ev) => ev.name)).to.deep.equal(
      logs.map((log) => chain.iface.parseLog({ topics: log.topics, data: log.data })!.name),
    );
  });

  it("names a log of no ledger event Unknown, with no args", async function () {
    const [unknown, bare] = await chain.decode([asLog(["0x" + "12".repeat(32)], "0x"), asLog([], "0x", 1)]);
    expect(unknown).to.include({ name: "Unknown", block: 1, logIndex: 0, time: 5 });
    expect(unknown!.args).to.deep.equal({});
    expect(bare).to.include({ name: "Unknown", logIndex: 1 });
  });
});
