/**
 * The back-fill's ceilings, measured on the same chain and the same eth_getLogs ranges the indexer used, so that
 * bench:index can say how close the back-fill is to what its parts cost alone (a ratio that holds on any machine):
 * (a) downloading the ranges with no decoding, (b) downloading and decoding them, (c) writing the same code→ref
 * entries into a fresh Redis with pipelined HSETs in the index's layout (bucket key, binary field, 9-byte ref).
 */
import { LedgerChain } from "../../backend/chain/client";
import { CodeClaims } from "../../backend/index/codes";
import { commissionedRun, type LedgerEvent } from "../../backend/index/events";
import type { Logger } from "../../backend/log";
import { connectRedis } from "../../backend/store/redis";
import { startRedis } from "./redis-server";

export type BlockRange = readonly [from: number, to: number];

export interface Ceilings {
  rawFetchSeconds: number;
  fetchDecodeSeconds: number;
  redisWriteSeconds: number;
}

/** Wraps `chain.logsInRange` so that every range asked for is recorded in `into` (bench wiring only). */
export function recordRanges(chain: LedgerChain, into: BlockRange[]): void {
  const fetch = chain.logsInRange.bind(chain);
  chain.logsInRange = (from, to) => {
    into.push([from, to]);
    return fetch(from, to);
  };
}

const seconds = (startedMs: number): number => Number(((performance.now() - startedMs) / 1000).toFixed(2));

/** (a): the bodies of the same eth_getLogs requests, read to the end and not parsed. */
async function rawFetch(nodeUrl: string, address: string, ranges: readonly BlockRange[]): Promise<number> {
  let bytes = 0;
  for (const [from, to] of ranges) {
    const params = [{ address, fromBlock: `0x${from.toString(16)}`, toBlock: `0x${to.toString(16)}` }];
    const response = await fetch(nodeUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getLogs", params }),
    });
    bytes += (await response.arrayBuffer()).byteLength;
  }
  return bytes;
}

/** (b): the same ranges through the indexer's own client: JSON-RPC, block times, ABI decoding. */
async function fetchDecode(chain: LedgerChain, ranges: readonly BlockRange[]): Promise<LedgerEvent[]> {
  const events: LedgerEvent[] = [];
  for (const [from, to] of ranges) events.push(...(await chain.decode(await chain.logsInRange(from, to))));
  return events;
}

/** (c): one pipelined HSET per bucket (binary fields and values), into a redis-server of its own. */
async function writeClaims(events: readonly LedgerEvent[], bits: number, log: Logger): Promise<number> {
  const claims = new CodeClaims(events, bits, commissionedRun);
  claims.resolve(() => []);
  // The arguments are built before the clock starts: this is the ceiling of Redis and the client's protocol.
  const commands = [...claims.writes].map(([key, { fields, refs }]) => {
    const args: Buffer[] = [Buffer.from(key, "latin1")];
    fields.forEach((field, i) => args.push(Buffer.from(field, "latin1"), Buffer.from(refs[i]!, "latin1")));
    return args;
  });
  const server = await startRedis();
  const redis = connectRedis({ url: server.url }, log);
  try {
    const started = performance.now();
    const pipeline = redis.pipeline();
    for (const args of commands) pipeline.call("hset", ...args);
    const failed = (await pipeline.exec())?.find(([err]) => err);
    if (failed) throw failed[0]!;
    return seconds(started);
  } finally {
    redis.disconnect();
    await server.stop();
  }
}

export async function measureCeilings(
  nodeUrl: string,
  address: string,
  ranges: readonly BlockRange[],
  codeBucketBits: number,
  log: Logger,
): Promise<Ceilings & { rawFetchBytes: number }> {
  let started = performance.now();
  const rawFetchBytes = await rawFetch(nodeUrl, address.toLowerCase(), ranges);
  const rawFetchSeconds = seconds(started);
  const chain = await LedgerChain.connect(nodeUrl, address);
  try {
    started = performance.now();
    const events = await fetchDecode(chain, ranges);
    const fetchDecodeSeconds = seconds(started);
    const redisWriteSeconds = await writeClaims(events, codeBucketBits, log);
    return { rawFetchSeconds, fetchDecodeSeconds, redisWriteSeconds, rawFetchBytes };
  } finally {
    chain.destroy();
  }
}
