/**
 * Reads of the index, as the scan and claim APIs need them: a code's full story in a few round trips.
 */
import { Level, type ItemRef } from "../codes/refs";
import type { RedisClient } from "../store/redis";
import type { BatchRecord, ClaimRecord, ParticipantRecord, ProductRecord, ShipmentRecord } from "./events";
import {
  accountKey,
  ACTIVITY_KEPT,
  activityKey,
  batchKey,
  claimKey,
  codeSlot,
  CONFLICTS_KEY,
  countersKey,
  GLOBAL_KEY,
  participantKey,
  productKey,
  RUN_FIELD,
  runKey,
  shipmentKey,
} from "./keys";
import {
  containersOf,
  type Custody,
  decodeTrail,
  describeEntry,
  type DispensingRecord,
  effectiveEntry,
  itemCount,
  type Reader,
  refFromBytes,
  type RunMeta,
  type SettlementRecord,
  type TrailEntry,
} from "./model";
import type { Value } from "./state";

export interface CodeLookup {
  ref: ItemRef;
  /** Every ref the code was commissioned as, when more than one: a duplicate code, likely counterfeit. */
  conflicts: ItemRef[];
}

export interface TrailStep extends TrailEntry {
  /** Which packaging level moved: the item itself, or the case or pallet it was in. */
  via: Level;
}

export interface ItemView {
  ref: ItemRef;
  run: RunMeta;
  batch: BatchRecord | null;
  product: ProductRecord | null;
  manufacturer: ParticipantRecord | null;
  custody: Custody;
  holder: ParticipantRecord | null;
  trail: TrailStep[];
  dispensing: DispensingRecord | null;
  settlement: SettlementRecord | null;
}

const json = <T>(raw: string | null): T | null => (raw === null ? null : (JSON.parse(raw) as T));
const hexToRef = (hex: string): ItemRef => refFromBytes(Buffer.from(hex, "hex").toString("latin1"));

export class IndexReader {
  constructor(
    readonly redis: RedisClient,
    readonly codeBucketBits: number,
  ) {}

  async lookupCode(code: Buffer): Promise<CodeLookup | null> {
    const slot = codeSlot(code, this.codeBucketBits);
    const [ref, conflicts] = await Promise.all([
      this.redis.hgetBuffer(slot.key, Buffer.from(slot.field, "latin1")),
      this.redis.hget(CONFLICTS_KEY, code.toString("hex")),
    ]);
    if (!ref) return null;
    return { ref: refFromBytes(ref.toString("latin1")), conflicts: (json<string[]>(conflicts) ?? []).map(hexToRef) };
  }

  async run(runId: number): Promise<RunMeta | null> {
    return json<RunMeta>(await this.redis.hget(runKey(runId), RUN_FIELD.meta));
  }

  /** Everything the index knows about one unit, case or pallet; null when it was never commissioned. */
  async item(ref: ItemRef): Promise<ItemView | null> {
    const run = await this.run(ref.runId);
    if (!run || ref.index >= itemCount(run, ref.level)) return null;
    const chain = [{ level: ref.level, index: ref.index }, ...containersOf(run, ref.level, ref.index)];
    const fields = chain.flatMap((c) => [RUN_FIELD.custody(c.level, c.index), RUN_FIELD.trail(c.level, c.index)]);
    if (ref.level === Level.Unit) fields.push(RUN_FIELD.dispensing(ref.index), RUN_FIELD.settlement(ref.index));
    const values = await this.redis.hmgetBuffer(runKey(ref.runId), ...fields);
    const byField = new Map<string, Value>(fields.map((f, i) => [f, values[i]?.toString("latin1") ?? null]));
    const reader: Reader = { get: (_key, field) => byField.get(field) ?? null };
    const entry = effectiveEntry(reader, run, ref.level, ref.index);
    const transit = describeEntry(entry, () => 0);
    const shipment = transit.inTransitShipment ? await this.shipment(transit.inTransitShipment) : null;
    const custody = describeEntry(entry, () => shipment?.fromId ?? 0);
    const batch = await this.batch(run.batchId);
    const [product, manufacturer, holder] = await Promise.all([
      batch ? this.product(batch.productId) : null,
      this.participant(run.manufacturerId),
      this.participant(custody.holderId),
    ]);
    // A container's moves are the item's only until the item (or a container between them) moved on its own
    // or was opened: a loose unit does not travel with its case any more, nor an opened case with its pallet.
    const trail: TrailStep[] = [];
    let leftAt = Infinity;
    for (const c of chain) {
      const own = decodeTrail(byField.get(RUN_FIELD.trail(c.level, c.index)) ?? null);
      for (const t of own) if (t.block < leftAt) trail.push({ ...t, via: c.level });
      if (own.length > 0) leftAt = Math.min(leftAt, own[0]!.block);
    }
    trail.sort((a, b) => a.block - b.block || a.kind - b.kind);
    const text = (field: string) => {
      const raw = byField.get(field);
      return raw == null ? null : Buffer.from(raw, "latin1").toString("utf8");
    };
    return {
      ref,
      run,
      batch,
      product,
      manufacturer,
      custody,
      holder,
      trail,
      dispensing: ref.level === Level.Unit ? json<DispensingRecord>(text(RUN_FIELD.dispensing(ref.index))) : null,
      settlement: ref.level === Level.Unit ? json<SettlementRecord>(text(RUN_FIELD.settlement(ref.index))) : null,
    };
  }

  participant(id: number): Promise<ParticipantRecord | null> {
    return this.record<ParticipantRecord>(participantKey(id), id);
  }

  async participantByAccount(account: string): Promise<ParticipantRecord | null> {
    const id = await this.redis.hget(accountKey(account), account.toLowerCase());
    return id === null ? null : this.participant(Number(id));
  }

  product(id: number): Promise<ProductRecord | null> {
    return this.record<ProductRecord>(productKey(id), id);
  }

  batch(id: number): Promise<BatchRecord | null> {
    return this.record<BatchRecord>(batchKey(id), id);
  }

  shipment(id: number): Promise<ShipmentRecord | null> {
    return this.record<ShipmentRecord>(shipmentKey(id), id);
  }

  async claim(claimId: string): Promise<ClaimRecord | null> {
    return json<ClaimRecord>(await this.redis.hget(claimKey(claimId), claimId));
  }

  /** Dashboard counters of a participant ("p") or batch ("b"). */
  async counters(kind: "p" | "b", id: number): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(countersKey(kind, id));
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  /** Most recent activity of a participant or batch, newest first. */
  async activity(kind: "p" | "b", id: number): Promise<Record<string, unknown>[]> {
    const raw = await this.redis.hgetall(activityKey(kind, id));
    const n = Number(raw.n ?? 0);
    const out: Record<string, unknown>[] = [];
    for (let i = n - 1; i >= Math.max(0, n - ACTIVITY_KEPT); i--) {
      const entry = raw[String(i % ACTIVITY_KEPT)];
      if (entry) out.push(JSON.parse(entry) as Record<string, unknown>);
    }
    return out;
  }

  async totals(): Promise<Record<string, string>> {
    return this.redis.hgetall(GLOBAL_KEY);
  }

  private async record<T>(key: string, id: number): Promise<T | null> {
    if (!id) return null;
    return json<T>(await this.redis.hget(key, String(id)));
  }
}
