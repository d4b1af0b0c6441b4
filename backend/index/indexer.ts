import { ChainMovedError, type BlockHeader, type LedgerChain, type RawLog } from "../chain/client";
import { DEFAULT_SUPPLY_DAILY_RETENTION_DAYS, DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS } from "../config/defaults";
import type { Logger } from "../log";
import { type ClaimConflict, CodeClaims } from "./codes";
import { applyEvent, commissionedRun, type LedgerEvent } from "./events";
import { INDEX_LAYOUT } from "./keys";
import type { Checkpoint, IndexShape, IndexStore } from "./store";
import { BatchState, Miss } from "./state";

export interface IndexerOptions {
  chain: LedgerChain;
  store: IndexStore;
  log: Logger;
  startBlock: number;
  confirmations: number;
  reorgDepth: number;
  maxRangeBlocks: number;
  batchMaxCodes: number;
  pollIntervalMs: number;
  codeBucketBits: number;
  /** Hourly dispensing buckets kept (SUPPLY_HOURLY_RETENTION_HOURS); an index built with another is refused. */
  supplyHourlyRetentionHours?: number;
  /** Days kept in the daily rings (SUPPLY_DAILY_RETENTION_DAYS); an index built with another is refused. */
  supplyDailyRetentionDays?: number;
}

export interface IndexerStatus {
  state: "starting" | "backfilling" | "following" | "retrying" | "stopped" | "failed";
  headBlock: number;
  headTime: number;
  indexedBlock: number;
  indexedTime: number;
  lagBlocks: number;
  lagSeconds: number;
  eventsPerSecond: number;
  codesPerSecond: number;
  eventsIndexed: number;
  codesIndexed: number;
  reorgsHandled: number;
  retries: number;
  lastError?: string;
  updatedAt: number;
}

/** An inconsistency the indexer cannot repair by itself: it stops and asks for `npm run index:rebuild`. */
export class IndexFatalError extends Error {}

/** What differs between the shape an index was built with and the one this indexer would build, in words. */
export function shapeDifferences(built: IndexShape, wanted: Required<IndexShape>): string[] {
  const differences: string[] = [];
  for (const name of Object.keys(wanted) as (keyof IndexShape)[]) {
    if (built[name] !== wanted[name]) differences.push(`${name} ${built[name] ?? "not recorded"}, not ${wanted[name]}`);
  }
  return differences;
}

interface Batch {
  from: number;
  to: BlockHeader;
  events: LedgerEvent[];
  keepUndo: boolean;
}

/** A back-fill batch whose code claims were gathered and sent to Redis; `found` are the conflicts. */
interface ClaimingBatch {
  batch: Batch;
  claims: CodeClaims;
  found: Promise<Map<string, ClaimConflict[]>>;
}

const CODE_BYTES = 12;
const TARGET_RESPONSE_BYTES = 4_000_000;
/** Blocks near the head indexed per step (one undo record). */
const FOLLOW_BLOCKS = 32;
const RATE_WINDOW_MS = 10_000;

/**
 * Follows the ledger into the Redis index: back-fills history in large adaptive eth_getLogs ranges, then follows
 * the head block by block, keeping undo records for the last `reorgDepth` blocks so that a reorg rolls back to
 * the common ancestor and re-applies the new branch. Every error short of an {@link IndexFatalError} is retried
 * with backoff from the checkpoint in Redis, which is the only progress that counts.
 */
export class Indexer {
  private checkpoint: Checkpoint | null = null;
  private undoBlocks: number[] = [];
  private span: number;
  private pendingCommit: Promise<void> | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private readonly rates: { at: number; events: number; codes: number }[] = [];
  readonly status: IndexerStatus = {
    state: "starting",
    headBlock: 0,
    headTime: 0,
    indexedBlock: -1,
    indexedTime: 0,
    lagBlocks: 0,
    lagSeconds: 0,
    eventsPerSecond: 0,
    codesPerSecond: 0,
    eventsIndexed: 0,
    codesIndexed: 0,
    reorgsHandled: 0,
    retries: 0,
    updatedAt: 0,
  };

  constructor(private readonly o: IndexerOptions) {
    this.span = Math.min(8, o.maxRangeBlocks);
  }

  /** The shape of the index this indexer builds, recorded in every checkpoint. */
  shape(): Required<IndexShape> {
    return {
      ledger: this.o.chain.address,
      chainId: this.o.chain.chainId,
      codeBucketBits: this.o.codeBucketBits,
      layout: INDEX_LAYOUT,
      supplyDailyRetentionDays: this.o.supplyDailyRetentionDays ?? DEFAULT_SUPPLY_DAILY_RETENTION_DAYS,
      supplyHourlyRetentionHours: this.o.supplyHourlyRetentionHours ?? DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS,
    };
  }

  /** Runs until {@link stop}: catches up, then polls for new blocks. */
  async run(): Promise<void> {
    let attempt = 0;
    let initialised = false;
    while (!this.stopped) {
      try {
        if (!initialised) {
          await this.init();
          initialised = true;
        }
        const progressed = await this.step();
        attempt = 0;
        if (!progressed) await this.sleep(this.o.pollIntervalMs);
      } catch (err) {
        if (err instanceof IndexFatalError) {
          this.status.state = "failed";
          this.status.lastError = err.message;
          this.o.log.error({ err: err.message }, "indexer stopped: the index needs a rebuild");
          throw err;
        }
        attempt++;
        initialised = false; // re-read the checkpoint: a commit may or may not have landed
        this.pendingCommit?.catch(() => undefined);
        this.pendingCommit = null;
        this.status.state = "retrying";
        this.status.retries++;
        this.status.lastError = err instanceof Error ? err.message : String(err);
        const delay = Math.min(250 * 2 ** Math.min(attempt - 1, 6), 10_000);
        this.o.log.warn({ err: this.status.lastError, attempt, retryInMs: delay }, "indexer step failed; retrying");
        await this.sleep(delay);
      }
    }
    await this.settled().catch((err: Error) => this.o.log.warn({ err: err.message }, "last commit failed"));
    this.status.state = "stopped";
    await this.publishStatus().catch(() => undefined);
  }

  /** Indexes everything up to the current confirmed head, then returns (no retries: errors propagate). */
  async syncOnce(): Promise<IndexerStatus> {
    await this.init();
    while (await this.step());
    await this.settled();
    return this.status;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private async init(): Promise<void> {
    const { store, chain } = this.o;
    await store.recover();
    this.checkpoint = await store.checkpoint();
    this.undoBlocks = await store.undoRecords();
    chain.forgetHeaders();
    const cp = this.checkpoint;
    if (cp) {
      const differences = shapeDifferences(cp, this.shape());
      if (differences.length > 0) {
        throw new IndexFatalError(
          `the index was built otherwise (${differences.join("; ")}): run npm run index:rebuild`,
        );
      }
    }
    this.status.indexedBlock = cp?.number ?? this.o.startBlock - 1;
  }

  /** One unit of progress; false when there is nothing to do yet. */
  private async step(): Promise<boolean> {
    await this.settled();
    const { chain } = this.o;
    const head = await chain.head();
    this.noteHead(head);
    const cp = this.checkpoint;
    if (cp) {
      const current = await chain.blockOrNull(cp.number);
      if (!current || current.hash !== cp.hash) {
        await this.rollback();
        return true;
      }
    }
    const target = head.number - this.o.confirmations;
    const next = cp ? cp.number + 1 : this.o.startBlock;
    if (next > target) {
      this.status.state = "following";
      await this.publishStatus();
      return false;
    }
    const finalLimit = head.number - this.o.reorgDepth;
    if (next <= finalLimit) {
      this.status.state = "backfilling";
      await this.backfill(next, Math.min(target, finalLimit));
    } else {
      this.status.state = "following";
      await this.follow(next, target);
    }
    await this.publishStatus();
    return true;
  }

  /**
   * Back-fills [from, to] (all below the reorg window: no undo) in adaptive ranges, as a pipeline: the next range
   * downloads while this one is applied, and a batch's code claims are gathered while Redis makes the previous
   * batch's. Claims reach Redis in batch order (a batch's are sent once the previous batch's have all been made),
   * so a code in two batches is always held by the earlier one, as when applied one by one.
   */
  private async backfill(from: number, to: number): Promise<void> {
    let fetching: Promise<{ from: number; to: number; logs: RawLog[] }> | null = this.fetchRange(from, to);
    let claiming: ClaimingBatch | null = null;
    while (fetching && !this.stopped) {
      const range: { from: number; to: number; logs: RawLog[] } = await fetching;
      fetching = range.to < to ? this.fetchRange(range.to + 1, to) : null;
      for (const batch of await this.splitByCodes(range.from, range.to, range.logs)) {
        const claims = new CodeClaims(batch.events, this.o.codeBucketBits, commissionedRun);
        if (claiming) await this.applyBatch(claiming.batch, claiming);
        const found = this.o.store.claimAbsent(claims.packedClaims(), claims.claimWidth);
        // Awaited by the next applyBatch; a failure before then must not go unhandled (the retry starts over).
        found.catch(() => undefined);
        claiming = { batch, claims, found };
      }
    }
    if (claiming && !this.stopped) await this.applyBatch(claiming.batch, claiming);
    await fetching?.catch(() => undefined);
  }

  /** eth_getLogs over as many blocks as the node allows: halves the span on an error, grows it on small results. */
  private async fetchRange(from: number, limit: number): Promise<{ from: number; to: number; logs: RawLog[] }> {
    for (;;) {
      const to = Math.min(limit, from + this.span - 1);
      try {
        const logs = await this.o.chain.logsInRange(from, to);
        // Aim at responses of a few MB: big enough to amortise the round trip, small enough that fetching the
        // next range overlaps applying this one.
        const bytes = logs.reduce((sum, l) => sum + l.data.length / 2, 0);
        if (logs.length < 2500 && bytes < TARGET_RESPONSE_BYTES / 2) {
          this.span = Math.min(this.o.maxRangeBlocks, this.span * 2);
        } else if (logs.length > 10_000 || bytes > TARGET_RESPONSE_BYTES * 2) {
          this.span = Math.max(1, Math.floor(this.span / 2));
        }
        return { from, to, logs };
      } catch (err) {
        if (this.span === 1) throw err;
        this.span = Math.max(1, Math.floor(this.span / 2));
        this.o.log.debug({ from, span: this.span, err: (err as Error).message }, "eth_getLogs refused; narrowing");
      }
    }
  }

  /** Cuts a fetched range into batches of at most `batchMaxCodes` codes (whole blocks; at least one). */
  private async splitByCodes(from: number, to: number, logs: RawLog[]): Promise<Batch[]> {
    const events = await this.o.chain.decode(logs);
    const batches: Batch[] = [];
    let start = 0;
    let codes = 0;
    let batchFrom = from;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      const isLastOfBlock = i + 1 === events.length || events[i + 1]!.block !== ev.block;
      codes += codesIn(ev);
      if (isLastOfBlock && codes >= this.o.batchMaxCodes && i + 1 < events.length) {
        batches.push({
          from: batchFrom,
          to: await this.o.chain.block(ev.block),
          events: events.slice(start, i + 1),
          keepUndo: false,
        });
        batchFrom = ev.block + 1;
        start = i + 1;
        codes = 0;
      }
    }
    batches.push({ from: batchFrom, to: await this.o.chain.block(to), events: events.slice(start), keepUndo: false });
    return batches;
  }

  /** Indexes blocks near the head, after checking that they extend what is indexed, as one undoable batch. */
  private async follow(next: number, target: number): Promise<void> {
    const { chain } = this.o;
    const numbers = Array.from({ length: Math.min(FOLLOW_BLOCKS, target - next + 1) }, (_, i) => next + i);
    const headers: BlockHeader[] = [];
    for (const header of await chain.blocksOrNull(numbers)) {
      if (!header) break;
      const parent = headers[headers.length - 1]?.hash ?? this.checkpoint?.hash;
      if (parent !== undefined && header.parentHash !== parent) {
        if (headers.length > 0)
          throw new ChainMovedError(`block ${header.number} does not extend block ${header.number - 1}`);
        await this.rollback();
        return;
      }
      headers.push(header);
    }
    const last = headers[headers.length - 1];
    if (!last) return;
    const events = await chain.decode(await chain.logsInRange(next, last.number));
    await this.applyBatch({ from: next, to: last, events, keepUndo: this.o.reorgDepth > 0 });
  }

  /** Applies a batch; a back-fill's batch comes with its claims already sent to Redis (`claiming`). */
  private async applyBatch(batch: Batch, claiming?: ClaimingBatch): Promise<void> {
    const { store } = this.o;
    const state = new BatchState();
    const started = performance.now();
    const claims = claiming?.claims ?? new CodeClaims(batch.events, this.o.codeBucketBits, commissionedRun);
    if (batch.keepUndo) {
      // Near the head the claims go in the commit, with what undoes them.
      const claimsLoaded = await store.loadValues(claims.fieldsToLoad());
      claims.resolve((key) => claimsLoaded.get(key)!);
    } else {
      claims.resolveClaimed(await (claiming?.found ?? store.claimAbsent(claims.packedClaims(), claims.claimWidth)));
    }
    const ctx = {
      codeConflicts: claims.conflicts,
      supplyHourlyRetentionHours: this.shape().supplyHourlyRetentionHours,
      supplyDailyRetentionDays: this.shape().supplyDailyRetentionDays,
    };
    let passes = 0;
    let loadMs = performance.now() - started;
    for (;;) {
      passes++;
      state.restart();
      let failure: unknown = null;
      for (const ev of batch.events) {
        try {
          applyEvent(ev, state, ctx);
        } catch (err) {
          // In a void pass (something was missing) errors come from values read as absent: not real.
          if (!(err instanceof Miss) && failure === null) failure = err;
        }
      }
      if (!state.hasMissing) {
        if (failure) {
          throw new IndexFatalError(
            `cannot apply blocks ${batch.from}..${batch.to.number}: ${(failure as Error).message}; the index disagrees with the chain`,
          );
        }
        break;
      }
      const loadStarted = performance.now();
      await store.load(state.takeMissing(), (key, fields, values) => state.addLoaded(key, fields, values));
      loadMs += performance.now() - loadStarted;
    }
    const { writes, undo } = state.changes(batch.keepUndo);
    if (batch.keepUndo) undo.push(...claims.fieldWrites().undo);
    const commitStarted = performance.now();
    const checkpoint: Checkpoint = { number: batch.to.number, hash: batch.to.hash, ...this.shape() };
    const horizon = this.status.headBlock - this.o.reorgDepth;
    const dropUndo = this.undoBlocks.filter((b) => b <= horizon);
    await this.settled();
    const committing = store.commit({
      writes,
      claims: claims.writes,
      checkpoint,
      addUndo: batch.keepUndo
        ? { fromBlock: batch.from, toBlock: batch.to.number, toHash: batch.to.hash, previous: this.checkpoint, undo }
        : undefined,
      dropUndo,
    });
    // On a single Redis the next batch may load while this commit is in flight: its reads queue behind the
    // transaction on the same connection. A failed commit fails the next await, and the retry starts over from
    // the checkpoint in Redis. A cluster commit is several steps, so there it is awaited here.
    if (store.clustered) await committing;
    else this.pendingCommit = committing;
    this.undoBlocks = this.undoBlocks.filter((b) => b > horizon);
    if (batch.keepUndo) this.undoBlocks.push(batch.to.number);
    this.checkpoint = checkpoint;
    this.o.chain.forgetHeadersBelow(batch.to.number);
    this.noteProgress(batch);
    // Health stays current through a long back-fill, not only between steps.
    await this.publishStatus();
    this.o.log.debug(
      {
        from: batch.from,
        to: batch.to.number,
        events: batch.events.length,
        writes: writes.length,
        codes: claims.codeCount,
        passes,
        loadMs: Math.round(loadMs),
        priorCommitWaitMs: Math.round(performance.now() - commitStarted),
        totalMs: Math.round(performance.now() - started),
      },
      "batch indexed",
    );
  }

  /** Takes batches back out, newest first, until the checkpoint is on the chain again. */
  /** Waits for the commit in flight, if any; rethrows its failure. */
  private async settled(): Promise<void> {
    const pending = this.pendingCommit;
    this.pendingCommit = null;
    await pending;
  }

  private async rollback(): Promise<void> {
    await this.settled();
    const { chain, store, log } = this.o;
    chain.forgetHeaders();
    for (;;) {
      const cp = this.checkpoint;
      if (!cp) return;
      const current = await chain.blockOrNull(cp.number);
      if (current && current.hash === cp.hash) return;
      const last = this.undoBlocks[this.undoBlocks.length - 1];
      const record = last === cp.number ? await store.undoRecord(last) : null;
      if (!record) {
        throw new IndexFatalError(
          `block ${cp.number} (${cp.hash}) left the chain, deeper than the ${this.o.reorgDepth} blocks the index can undo`,
        );
      }
      await store.commit({ writes: record.undo, checkpoint: record.previous, dropUndo: [record.toBlock] });
      this.undoBlocks.pop();
      this.checkpoint = record.previous;
      this.status.indexedBlock = record.previous?.number ?? this.o.startBlock - 1;
      this.status.reorgsHandled++;
      log.warn(
        { from: record.fromBlock, to: record.toBlock, back_to: record.previous?.number ?? null },
        "reorg: rolled back blocks no longer on the chain",
      );
    }
  }

  private noteHead(head: BlockHeader): void {
    this.status.headBlock = head.number;
    this.status.headTime = head.timestamp;
  }

  private noteProgress(batch: Batch): void {
    const codes = batch.events.reduce((sum, ev) => sum + codesIn(ev), 0);
    const now = Date.now();
    this.rates.push({ at: now, events: batch.events.length, codes });
    while (this.rates.length > 0 && this.rates[0]!.at < now - RATE_WINDOW_MS) this.rates.shift();
    const elapsed = Math.max(1, now - (this.rates[0]?.at ?? now)) / 1000;
    const s = this.status;
    s.eventsIndexed += batch.events.length;
    s.codesIndexed += codes;
    s.eventsPerSecond = Math.round(this.rates.reduce((sum, r) => sum + r.events, 0) / Math.max(elapsed, 1));
    s.codesPerSecond = Math.round(this.rates.reduce((sum, r) => sum + r.codes, 0) / Math.max(elapsed, 1));
    s.indexedBlock = batch.to.number;
    s.indexedTime = batch.to.timestamp;
  }

  private async publishStatus(): Promise<void> {
    const s = this.status;
    s.lagBlocks = Math.max(0, s.headBlock - s.indexedBlock);
    s.lagSeconds = s.lagBlocks === 0 ? 0 : Math.max(0, s.headTime - s.indexedTime);
    s.updatedAt = Math.floor(Date.now() / 1000);
    await this.o.store.setStatus(s);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function codesIn(ev: LedgerEvent): number {
  if (ev.name !== "UnitsCommissioned") return 0;
  return ((ev.args.codes as string).length - 2) / 2 / CODE_BYTES;
}
