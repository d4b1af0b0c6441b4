import { expect } from "chai";
import { CodeClaims } from "../backend/index/codes";
import type { LedgerEvent } from "../backend/index/events";
import { codeSlot } from "../backend/index/keys";
import { refBytes } from "../backend/index/model";
import { Level } from "../backend/codes/refs";
import { IndexStore } from "../backend/index/store";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis, startRedisCluster } from "../scripts/lib/redis-server";

/** A commissioning of `codes` (12-byte hashes, 1 unit a case, 1 case a pallet: every code a unit but the last two). */
interface FakeRun {
  runId: number;
  codes: Buffer[];
}

const BITS = 8;
const hash = (n: number): Buffer => {
  const b = Buffer.alloc(12);
  b.writeUInt32BE((n * 2654435761) >>> 0, 0); // spread over the buckets
  b.writeUInt32BE(n, 8);
  return b;
};

function batchOf(runs: readonly FakeRun[], bits = BITS): CodeClaims {
  const events = runs.map((run, i) => ({ name: "UnitsCommissioned", args: run, block: 1, logIndex: i }) as never);
  return new CodeClaims(events as LedgerEvent[], bits, (ev) => {
    const run = ev.args as unknown as FakeRun;
    const unitCount = run.codes.length - 2;
    const codes = `0x${Buffer.concat(run.codes).toString("hex")}`;
    return { runId: run.runId, unitCount, unitsPerCase: 1, casesPerPallet: unitCount, codes };
  });
}

/** The old path: load every claimed field, resolve in event order, write the claims (as a commit does). */
async function claimByLoading(store: IndexStore, runs: readonly FakeRun[]): Promise<CodeClaims> {
  const claims = batchOf(runs);
  const loaded = await store.loadValues(claims.fieldsToLoad());
  claims.resolve((key) => loaded.get(key)!);
  await store.commit({ writes: [], claims: claims.writes, checkpoint: null });
  return claims;
}

async function claimOnServer(store: IndexStore, runs: readonly FakeRun[]): Promise<CodeClaims> {
  const claims = batchOf(runs);
  claims.resolveClaimed(await store.claimAbsent(claims.packedClaims(), claims.claimWidth));
  return claims;
}

/** Conflicts by event index, as plain data. */
const conflictsOf = (claims: CodeClaims) => [...claims.conflicts.values()].map((list) => list.map((c) => ({ ...c })));

async function lookup(redis: RedisClient): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (let top = 0; top < 1 << BITS; top++) {
    const key = `c:${top.toString(36)}`;
    // Not hgetallBuffer: it keys its object by each field read as UTF-8, so fields of bytes past 0x7f collide.
    const fields = await redis.hkeysBuffer(key);
    if (fields.length === 0) continue;
    const values = await redis.hmgetBuffer(key, ...fields);
    out[key] = Object.fromEntries(fields.map((f, i) => [f.toString("hex"), values[i]!.toString("hex")]));
  }
  return out;
}

// Run 2 re-commissions some of run 1's codes, run 3 repeats a code within itself, and run 4's codes are new.
const first: FakeRun[] = [{ runId: 1, codes: Array.from({ length: 300 }, (_, i) => hash(i)) }];
const second: FakeRun[] = [
  { runId: 2, codes: Array.from({ length: 200 }, (_, i) => hash(i * 3)) },
  { runId: 3, codes: [hash(1000), hash(1001), hash(1000), hash(1002), hash(5)] },
  { runId: 4, codes: Array.from({ length: 400 }, (_, i) => hash(2000 + i)) },
];

describe("Code claims gathered for the server", function () {
  it("groups claims by bucket in key order, in batch order within a bucket, at any bucket width", function () {
    // Three runs and a repeated code, so that buckets hold codes of several events and a bucket a field twice.
    const runs: FakeRun[] = [
      { runId: 1, codes: Array.from({ length: 3000 }, (_, i) => hash(i)) },
      { runId: 2, codes: [...Array.from({ length: 2000 }, (_, i) => hash(5000 + i)), hash(7)] },
    ];
    for (const bits of [8, 12, 13, 16, 20, 24]) {
      const claims = batchOf(runs, bits);
      // The expectation, by a plain stable sort of every code with its ref by bucket.
      const all = runs.flatMap((run) => {
        const units = run.codes.length - 2;
        return run.codes.map((code, i) => ({
          ...codeSlot(code, bits),
          top: code.readUInt32BE(0) >>> (32 - bits),
          ref: i < units ? refBytes(run.runId, Level.Unit, i) : refBytes(run.runId, Level.Case, i - units),
        }));
      });
      all.sort((a, b) => a.top - b.top);
      const expected = new Map<string, string>();
      for (const { key, field, ref } of all) expected.set(key, (expected.get(key) ?? "") + field + ref);
      const packed = [...claims.packedClaims()].map(([key, buf]) => [key, buf.toString("latin1")]);
      expect(packed, `${bits} bits`).to.deep.equal([...expected]);
    }
  });
});

for (const clustered of [false, true]) {
  describe(`Code claims on the server (${clustered ? "Redis Cluster" : "single Redis"})`, function () {
    this.timeout(60_000);
    let stops: (() => Promise<void>)[] = [];
    const fresh = async (): Promise<IndexStore> => {
      if (clustered) {
        const cluster = await startRedisCluster();
        const redis = connectRedis({ clusterNodes: cluster.nodes });
        stops.push(async () => (redis.disconnect(), await cluster.stop()));
        return new IndexStore(redis);
      }
      const server = await startRedis();
      const redis = connectRedis({ url: server.url });
      stops.push(async () => (redis.disconnect(), await server.stop()));
      return new IndexStore(redis);
    };
    afterEach(async () => {
      await Promise.all(stops.map((stop) => stop()));
      stops = [];
    });

    it("finds the same conflicts and leaves the same lookup as loading and resolving", async function () {
      const [loading, server] = await Promise.all([fresh(), fresh()]);
      await claimByLoading(loading, first);
      await claimOnServer(server, first);
      const expected = await claimByLoading(loading, second);
      const found = await claimOnServer(server, second);
      expect(conflictsOf(expected)).to.have.length(2);
      expect(conflictsOf(found)).to.deep.equal(conflictsOf(expected));
      expect(await lookup(server.redis)).to.deep.equal(await lookup(loading.redis));
    });

    it("packs each code's field and ref as codeSlot and refBytes spell them", async function () {
      const server = await fresh();
      await claimOnServer(server, first);
      const [run] = first;
      // A case a unit (see batchOf): the last two codes are the first two cases' (positions past the cases).
      const units = run!.codes.length - 2;
      const held = await Promise.all(
        run!.codes.map((code) => {
          const { key, field } = codeSlot(code, BITS);
          return server.redis.hgetBuffer(key, Buffer.from(field, "latin1"));
        }),
      );
      const expected = run!.codes.map((_, i) =>
        i < units ? refBytes(1, Level.Unit, i) : refBytes(1, Level.Case, i - units),
      );
      expect(held.map((ref) => ref?.toString("latin1"))).to.deep.equal(expected);
    });

    it("keeps the first claim of a code claimed two and three times in one call, across the script's chunks", async function () {
      // Every code in bucket 0 (top byte 0), so that one bucket holds more claims than one HMGET or HSET takes
      // (1,000 claims): the repeats land in other chunks than their first claims, in the same call.
      const inBucket0 = (n: number): Buffer => {
        const b = Buffer.alloc(12);
        b.writeUInt32BE(n, 8);
        return b;
      };
      const held: FakeRun[] = [{ runId: 1, codes: Array.from({ length: 50 }, (_, i) => inBucket0(100_000 + i)) }];
      const repeats: FakeRun[] = [
        {
          runId: 2,
          codes: [...Array.from({ length: 2500 }, (_, i) => inBucket0(i)), inBucket0(7), inBucket0(100_003)],
        },
        // Run 3: a code run 2 claimed first (twice over), a code Redis held before (twice), one new code twice.
        { runId: 3, codes: [inBucket0(7), inBucket0(100_010), inBucket0(9_000), inBucket0(100_010), inBucket0(9_000)] },
      ];
      const [loading, server] = await Promise.all([fresh(), fresh()]);
      await claimByLoading(loading, held);
      await claimOnServer(server, held);
      const expected = await claimByLoading(loading, repeats);
      const found = await claimOnServer(server, repeats);
      // Run 2: its repeat of 7 and run 1's 100,003; run 3: 7 (run 2's), 100,010 twice (run 1's), 9,000 once (its own).
      expect(conflictsOf(expected).map((list) => list.length)).to.deep.equal([2, 4]);
      expect(conflictsOf(found)).to.deep.equal(conflictsOf(expected));
      expect(await lookup(server.redis)).to.deep.equal(await lookup(loading.redis));
    });

    it("finds the same conflicts again when a batch cut short by a crash is applied again", async function () {
      const [loading, server] = await Promise.all([fresh(), fresh()]);
      await claimByLoading(loading, first);
      await claimOnServer(server, first);
      const expected = await claimByLoading(loading, second);
      // The crash: half the buckets' claims reached Redis, no checkpoint moved; the batch then runs again whole.
      const partial = batchOf(second).packedClaims();
      const half = new Map([...partial].filter((_, i) => i % 2 === 0));
      await server.claimAbsent(half, batchOf(second).claimWidth);
      const found = await claimOnServer(server, second);
      expect(conflictsOf(found)).to.deep.equal(conflictsOf(expected));
      expect(await lookup(server.redis)).to.deep.equal(await lookup(loading.redis));
    });
  });
}
