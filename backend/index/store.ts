import type { Logger } from "../log";
import { isCluster, scanAllKeys, type RedisClient } from "../store/redis";
import { type ClaimConflict, REF_BYTES } from "./codes";
import { META, META_PREFIX } from "./keys";
import type { FieldWrite, Value } from "./state";

/**
 * What an index was built for and how its fields are laid out. An index built for another shape is rebuilt, never
 * continued: its fields would be read and undone under the wrong layout (a changed ring retention moves every
 * day's slot, so an undo would miss the slot it wrote) without any error.
 */
export interface IndexShape {
  ledger: string;
  chainId: number;
  codeBucketBits: number;
  /** {@link INDEX_LAYOUT} when the index was built; absent in indexes built before it was recorded. */
  layout?: number;
  supplyDailyRetentionDays?: number;
  supplyHourlyRetentionHours?: number;
}

/** The last block whose events the index reflects, and what the index was built for. */
export interface Checkpoint extends IndexShape {
  number: number;
  hash: string;
}

/** What is needed to take one batch back out of the index: prior values and the checkpoint before it. */
export interface UndoRecord {
  fromBlock: number;
  toBlock: number;
  toHash: string;
  previous: Checkpoint | null;
  undo: FieldWrite[];
}

/** One atomic step of the index: field writes, the checkpoint after them, and undo bookkeeping. */
export interface Commit {
  writes: FieldWrite[];
  /** Code lookups claimed in bulk (see codes.ts): per bucket key, fields and their refs. */
  claims?: ReadonlyMap<string, { fields: string[]; refs: string[] }>;
  checkpoint: Checkpoint | null;
  addUndo?: UndoRecord;
  dropUndo?: number[];
}

/**
 * Claims buckets' codes in order: per key `KEYS[k]`, `ARGV[k + 1]` packs its claims (field then ref, `ARGV[1]`
 * bytes each). Each bucket's current values are read in one HMGET and the absent ones set in one HSET (a call
 * per code cost Redis more than the writes themselves). Returns, flat, the bucket, the claim's index in it and the
 * holder of every claim whose field another ref holds (a field holding the same ref is this claim applied before
 * a crash).
 *
 * A field claimed twice in one call is held by its first claim. Keeping a table of the fields claimed so far cost
 * Redis a fifth of the script for a case that almost never happens, so the HSET's count of new fields tells
 * instead: fewer than were sent means a field came twice, and that bucket is then decided again from the values
 * read before (first claim wins) and written again, in the same script (atomic), before the next bucket.
 */
const CLAIM_ABSENT_LUA = `
local width = tonumber(ARGV[1])
local fieldEnd = width - ${REF_BYTES}
local CHUNK = 1000
local sub, call = string.sub, redis.call
local out, o = {}, 0
local function hset(key, set, s)
  local added = 0
  for first = 1, s, 2 * CHUNK do
    added = added + call('HSET', key, unpack(set, first, math.min(first + 2 * CHUNK - 1, s)))
  end
  return added
end
for k = 1, #KEYS do
  local key, packed = KEYS[k], ARGV[k + 1]
  local fields, refs, n = {}, {}, 0
  for at = 1, #packed, width do
    n = n + 1
    fields[n] = sub(packed, at, at + fieldEnd - 1)
    refs[n] = sub(packed, at + fieldEnd, at + width - 1)
  end
  local held, set, s, bucketOut = {}, {}, 0, o
  for first = 1, n, CHUNK do
    local current = call('HMGET', key, unpack(fields, first, math.min(first + CHUNK - 1, n)))
    for i = first, math.min(first + CHUNK - 1, n) do
      local holder = current[i - first + 1]
      if not holder then
        set[s + 1], set[s + 2], s = fields[i], refs[i], s + 2
      else
        held[i] = holder
        if holder ~= refs[i] then
          out[o + 1], out[o + 2], out[o + 3], o = k - 1, i - 1, holder, o + 3
        end
      end
    end
  end
  if hset(key, set, s) < s / 2 then
    -- A field came twice: decide the bucket again in order from the values read before, the first claim winning.
    local claimed = {}
    set, s, o = {}, 0, bucketOut
    for i = 1, n do
      local field, ref = fields[i], refs[i]
      local holder = claimed[field] or held[i]
      if not holder then
        claimed[field] = ref
        set[s + 1], set[s + 2], s = field, ref, s + 2
      elseif holder ~= ref then
        out[o + 1], out[o + 2], out[o + 3], o = k - 1, i - 1, holder, o + 3
      end
    end
    for j = o + 1, #out do out[j] = nil end
    hset(key, set, s)
  end
end
return out`;

interface ClaimCommands {
  /** Any number of keys (a single Redis): the key count, the keys, the width, then each key's packed claims. */
  claimAbsentCodesBuffer(keyCount: number, ...keysThenArgs: (string | number | Buffer)[]): Promise<(number | Buffer)[]>;
  /** One key (a cluster, where ioredis routes by the declared key): the key, the width, its packed claims. */
  claimAbsentBucketBuffer(key: string, width: number, packed: Buffer): Promise<(number | Buffer)[]>;
}

/**
 * Claims a single Redis takes in one script call: a few milliseconds of its time, so that other clients' commands
 * are not held up, and a fiftieth of the calls (and ioredis encodings) of one call per bucket.
 */
const CLAIMS_PER_CALL = 4096;

const LOAD_CHUNK = 2000;
const WRITE_CHUNK = 2000;

/**
 * The index's storage operations on a single Redis or a Redis Cluster.
 *
 * A commit is exactly-once in effect. On a single Redis its writes, its checkpoint and its undo record go in one
 * MULTI/EXEC. On a cluster a transaction cannot span slots, so the commit is first saved whole as a journal in
 * the indexer's own slot, then its writes are applied (absolute values, never increments, so applying them twice
 * changes nothing), and the checkpoint, undo record and journal removal land together in that slot. After a crash
 * {@link recover} re-applies a journal left behind.
 */
export class IndexStore {
  constructor(
    readonly redis: RedisClient,
    private readonly log?: Logger,
  ) {
    if (!("claimAbsentCodes" in redis)) {
      redis.defineCommand("claimAbsentCodes", { lua: CLAIM_ABSENT_LUA });
      redis.defineCommand("claimAbsentBucket", { numberOfKeys: 1, lua: CLAIM_ABSENT_LUA });
    }
  }

  get clustered(): boolean {
    return isCluster(this.redis);
  }

  async checkpoint(): Promise<Checkpoint | null> {
    const raw = await this.redis.get(META.checkpoint);
    return raw ? (JSON.parse(raw) as Checkpoint) : null;
  }

  /** Loads fields into `into(key, fields, values)`; values are latin1 byte strings or null. */
  async load(
    missing: Map<string, string[]>,
    into: (key: string, fields: string[], values: Value[]) => void,
  ): Promise<void> {
    const loaded = await this.loadValues(missing);
    for (const [key, fields] of missing) into(key, fields, loaded.get(key)!);
  }

  /** The values of the fields asked for, per key and in the same order. */
  async loadValues(fieldsByKey: ReadonlyMap<string, string[]>): Promise<Map<string, Value[]>> {
    const out = new Map<string, Value[]>();
    const calls: Promise<void>[] = [];
    for (const [key, fields] of fieldsByKey) {
      const values = new Array<Value>(fields.length);
      out.set(key, values);
      for (let i = 0; i < fields.length; i += LOAD_CHUNK) {
        const chunk = fields.slice(i, i + LOAD_CHUNK);
        calls.push(
          this.redis.hmgetBuffer(key, ...toBuffers(chunk)).then((replies) => {
            replies.forEach((v, j) => (values[i + j] = v === null ? null : v.toString("latin1")));
          }),
        );
      }
    }
    await Promise.all(calls);
    return out;
  }

  /**
   * Claims codes on the server, in order within each bucket. Not part of a commit: only for batches that keep no
   * undo records, where a claim applied twice is harmless. `width` is each packed claim's size (field then 9-byte
   * ref). On a single Redis one script call takes many buckets; on a cluster each bucket is one key, one call on
   * its node (a script's keys must share a slot). Returns the conflicts of the buckets that have some.
   */
  async claimAbsent(packed: ReadonlyMap<string, Buffer>, width: number): Promise<Map<string, ClaimConflict[]>> {
    const redis = this.redis as unknown as ClaimCommands;
    const claimsPerCall = this.clustered ? 1 : CLAIMS_PER_CALL;
    const calls: { keys: string[]; reply: Promise<(number | Buffer)[]> }[] = [];
    let keys: string[] = [];
    let claims = 0;
    const send = () => {
      const reply = this.clustered
        ? redis.claimAbsentBucketBuffer(keys[0]!, width, packed.get(keys[0]!)!)
        : redis.claimAbsentCodesBuffer(keys.length, ...keys, width, ...keys.map((key) => packed.get(key)!));
      calls.push({ keys, reply });
      keys = [];
      claims = 0;
    };
    for (const [key, claimsOfKey] of packed) {
      keys.push(key);
      claims += claimsOfKey.length / width;
      if (claims >= claimsPerCall) send();
    }
    if (keys.length > 0) send();
    const out = new Map<string, ClaimConflict[]>();
    for (const { keys: called, reply } of calls) {
      const flat = await reply;
      for (let i = 0; i < flat.length; i += 3) {
        const key = called[flat[i] as number]!;
        let conflicts = out.get(key);
        if (!conflicts) out.set(key, (conflicts = []));
        conflicts.push({ index: flat[i + 1] as number, holder: (flat[i + 2] as Buffer).toString("latin1") });
      }
    }
    return out;
  }

  async commit(commit: Commit): Promise<void> {
    if (this.clustered) {
      // The journal holds plain field writes: claims become some.
      const plain = { ...commit, writes: [...claimWrites(commit.claims), ...commit.writes], claims: undefined };
      await this.redis.set(META.journal, encodeCommit(plain));
      await this.applyJournaled(plain);
      return;
    }
    const tx = this.redis.multi();
    for (const [key, { fields, refs }] of commit.claims ?? []) {
      const pairs = new Array<string>(fields.length * 2);
      fields.forEach((f, i) => ((pairs[2 * i] = f), (pairs[2 * i + 1] = refs[i]!)));
      tx.call("hset", key, ...toBuffers(pairs));
    }
    for (const cmd of writeCommands(commit.writes)) tx.call(cmd[0], ...cmd.slice(1));
    this.addMetaCommands(tx, commit);
    const results = await tx.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw new Error(`index commit failed: ${failed?.[0]?.message ?? "transaction aborted"}`);
  }

  /** Finishes a commit a crash interrupted on a cluster (a single Redis never leaves one behind). */
  async recover(): Promise<boolean> {
    const journal = await this.redis.getBuffer(META.journal);
    if (!journal) return false;
    this.log?.warn({ bytes: journal.length }, "re-applying the journal of an interrupted commit");
    await this.applyJournaled(decodeCommit(journal));
    return true;
  }

  async undoRecords(): Promise<number[]> {
    const fields = await this.redis.hkeys(META.undo);
    return fields.map(Number).sort((a, b) => a - b);
  }

  async undoRecord(toBlock: number): Promise<UndoRecord | null> {
    const raw = await this.redis.hgetBuffer(META.undo, undoField(toBlock));
    return raw ? decodeUndo(raw) : null;
  }

  async setStatus(status: object): Promise<void> {
    await this.redis.set(META.status, JSON.stringify(status));
  }

  async status(): Promise<Record<string, unknown> | null> {
    const raw = await this.redis.get(META.status);
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
  }

  /** Deletes the whole index (everything under the index's key prefixes). */
  async wipe(): Promise<number> {
    const keys = (await scanAllKeys(this.redis)).filter(isIndexKey);
    for (let i = 0; i < keys.length; i += 500) {
      await Promise.all(keys.slice(i, i + 500).map((k) => this.redis.unlink(k)));
    }
    return keys.length;
  }

  private async applyJournaled(commit: Commit): Promise<void> {
    const commands = writeCommands(commit.writes);
    for (let i = 0; i < commands.length; i += WRITE_CHUNK) {
      await Promise.all(commands.slice(i, i + WRITE_CHUNK).map((cmd) => this.redis.call(cmd[0], ...cmd.slice(1))));
    }
    const tx = this.redis.multi();
    this.addMetaCommands(tx, commit);
    tx.del(META.journal);
    const results = await tx.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw new Error(`index commit failed: ${failed?.[0]?.message ?? "transaction aborted"}`);
  }

  private addMetaCommands(tx: ReturnType<RedisClient["multi"]>, commit: Commit): void {
    if (commit.checkpoint) tx.set(META.checkpoint, JSON.stringify(commit.checkpoint));
    else tx.del(META.checkpoint);
    if (commit.addUndo) tx.hset(META.undo, undoField(commit.addUndo.toBlock), encodeUndo(commit.addUndo));
    if (commit.dropUndo && commit.dropUndo.length > 0) tx.hdel(META.undo, ...commit.dropUndo.map(undoField));
  }
}

const INDEX_KEY = /^(c:|r\{|p:|pr:|b:|s:|pa:|cl:|n:|a:|su:|sbh?:|x$|g$|pf$|prc$|ro$|\{ix\}:)/;
export const isIndexKey = (key: string): boolean => INDEX_KEY.test(key);
export const isMetaKey = (key: string): boolean => key.startsWith(META_PREFIX);

const undoField = (toBlock: number): string => String(toBlock).padStart(12, "0");

type Command = [string, ...(string | Buffer)[]];

function claimWrites(claims: Commit["claims"]): FieldWrite[] {
  const out: FieldWrite[] = [];
  for (const [key, { fields, refs }] of claims ?? [])
    fields.forEach((field, i) => out.push({ key, field, value: refs[i]! }));
  return out;
}

/** Byte strings as Buffers: one encoding for the lot, then views (far less garbage than one Buffer each). */
function toBuffers(strings: readonly string[]): Buffer[] {
  const all = Buffer.from(strings.join(""), "latin1");
  const out = new Array<Buffer>(strings.length);
  let at = 0;
  for (let i = 0; i < strings.length; i++) {
    const len = strings[i]!.length;
    out[i] = all.subarray(at, at + len);
    at += len;
  }
  return out;
}

/** Groups field writes into one HSET and one HDEL per key. */
function writeCommands(writes: readonly FieldWrite[]): Command[] {
  const byKey = new Map<string, { set: string[]; del: string[] }>();
  for (const w of writes) {
    let entry = byKey.get(w.key);
    if (!entry) byKey.set(w.key, (entry = { set: [], del: [] }));
    if (w.value === null) entry.del.push(w.field);
    else entry.set.push(w.field, w.value);
  }
  const commands: Command[] = [];
  for (const [key, { set, del }] of byKey) {
    if (set.length > 0) commands.push(["hset", key, ...toBuffers(set)]);
    if (del.length > 0) commands.push(["hdel", key, ...toBuffers(del)]);
  }
  return commands;
}

// Binary framing of field writes: u16 key length, key, u32 field length, field, i32 value length (-1: absent), value.
function encodeWrites(writes: readonly FieldWrite[]): Buffer {
  let size = 4;
  for (const w of writes) size += 10 + w.key.length + w.field.length + (w.value?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt32BE(writes.length, 0);
  for (const w of writes) {
    at = out.writeUInt16BE(w.key.length, at);
    at += out.write(w.key, at, "latin1");
    at = out.writeUInt32BE(w.field.length, at);
    at += out.write(w.field, at, "latin1");
    at = out.writeInt32BE(w.value === null ? -1 : w.value.length, at);
    if (w.value !== null) at += out.write(w.value, at, "latin1");
  }
  return out;
}

function decodeWrites(buf: Buffer, start: number): FieldWrite[] {
  const count = buf.readUInt32BE(start);
  let at = start + 4;
  const writes: FieldWrite[] = [];
  for (let i = 0; i < count; i++) {
    const keyLen = buf.readUInt16BE(at);
    const key = buf.toString("latin1", at + 2, at + 2 + keyLen);
    at += 2 + keyLen;
    const fieldLen = buf.readUInt32BE(at);
    const field = buf.toString("latin1", at + 4, at + 4 + fieldLen);
    at += 4 + fieldLen;
    const valueLen = buf.readInt32BE(at);
    at += 4;
    const value = valueLen < 0 ? null : buf.toString("latin1", at, at + valueLen);
    at += Math.max(valueLen, 0);
    writes.push({ key, field, value });
  }
  return writes;
}

/** A JSON header (u32 length first) followed by framed writes. */
function withHeader(header: object, writes: readonly FieldWrite[]): Buffer {
  const head = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(head.length, 0);
  return Buffer.concat([len, head, encodeWrites(writes)]);
}

function splitHeader<T>(buf: Buffer): { header: T; writesAt: number } {
  const len = buf.readUInt32BE(0);
  return { header: JSON.parse(buf.toString("utf8", 4, 4 + len)) as T, writesAt: 4 + len };
}

function encodeUndo(record: UndoRecord): Buffer {
  const { undo, ...header } = record;
  return withHeader(header, undo);
}

function decodeUndo(buf: Buffer): UndoRecord {
  const { header, writesAt } = splitHeader<Omit<UndoRecord, "undo">>(buf);
  return { ...header, undo: decodeWrites(buf, writesAt) };
}

function encodeCommit(commit: Commit): Buffer {
  const { writes, addUndo, ...header } = commit;
  const undo = addUndo ? encodeUndo(addUndo).toString("base64") : undefined;
  return withHeader({ ...header, undo }, writes);
}

function decodeCommit(buf: Buffer): Commit {
  const { header, writesAt } = splitHeader<Omit<Commit, "writes" | "addUndo"> & { undo?: string }>(buf);
  const { undo, ...rest } = header;
  return {
    ...rest,
    writes: decodeWrites(buf, writesAt),
    addUndo: undo ? decodeUndo(Buffer.from(undo, "base64")) : undefined,
  };
}
