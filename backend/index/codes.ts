/**
 * Code lookups claimed in bulk. A back-fill commissions hundreds of thousands of codes a batch; routing each
 * through the batch state's per-field maps cost more than everything else together. Codes only ever get claimed
 * (set where absent), so a batch's codes are gathered per lookup bucket in plain arrays, their current values
 * loaded with one HMGET per bucket, and resolved in event order: a code already held by another ref, in Redis or
 * earlier in the same batch, is a conflict for its event's handler to record; the others are written.
 *
 * During a back-fill (no undo records) the claims can instead be made by Redis itself (`store.claimAbsent`): one
 * packed argument per bucket, only absent fields set, only the conflicts sent back. The conflicts are the same as
 * the load-and-resolve path's: Redis applies the claims in the same order, so a code claimed earlier in the batch
 * is the holder of a later claim, and a batch applied again after a crash finds its own claims (same ref: no
 * conflict) and the same conflicts.
 */
import { caseCount } from "../codes/run";
import { Level } from "../codes/refs";
import type { LedgerEvent } from "./events";
import { codeSlot } from "./keys";
import { refBytes } from "./model";
import type { FieldWrite, Value } from "./state";

export interface CodeConflict {
  /** The code's position in its run (units, then cases, then pallets). */
  position: number;
  /** Hex of the 12-byte code hash. */
  code: string;
  /** The ref that holds the lookup (latin1 bytes). */
  holder: string;
  /** The ref this event commissioned the code as (latin1 bytes). */
  ref: string;
}

/** A claim the server refused: its index in the bucket's packed claims, and the ref holding the code. */
export interface ClaimConflict {
  index: number;
  holder: string;
}

/** Parallel arrays, not an object per code: a batch holds hundreds of thousands. */
interface Bucket {
  fields: string[];
  refs: string[];
  /** Index of the code's event in the batch, and the code's position in its run. */
  events: number[];
  positions: number[];
}

export class CodeClaims {
  private readonly buckets = new Map<string, Bucket>();
  private readonly events: { event: LedgerEvent; codes: Buffer }[] = [];
  /** Per bucket, the fields this batch writes and their refs (aligned). */
  readonly writes = new Map<string, { fields: string[]; refs: string[] }>();
  readonly conflicts = new Map<LedgerEvent, CodeConflict[]>();
  codeCount = 0;
  /** Bytes of one packed claim: the field (the code hash less the bytes its bucket implies, as in codeSlot), the ref. */
  readonly claimWidth: number;

  /** Gathers the codes of a batch's commissioning events (`commissioned` filters and reads them). */
  constructor(
    events: readonly LedgerEvent[],
    bits: number,
    commissioned: (
      ev: LedgerEvent,
    ) => { runId: number; unitCount: number; unitsPerCase: number; casesPerPallet: number; codes: string } | null,
  ) {
    this.claimWidth = 12 - (bits >> 3) + 9;
    for (const event of events) {
      const run = commissioned(event);
      if (!run) continue;
      const codes = Buffer.from(run.codes.slice(2), "hex");
      const eventIndex = this.events.push({ event, codes }) - 1;
      const cases = caseCount(run);
      for (let position = 0, at = 0; at < codes.length; position++, at += 12) {
        const { key, field } = codeSlot(codes, bits, at);
        let bucket = this.buckets.get(key);
        if (!bucket) this.buckets.set(key, (bucket = { fields: [], refs: [], events: [], positions: [] }));
        bucket.fields.push(field);
        // Positional, as in itemAt(): units, then cases, then pallets.
        bucket.refs.push(
          position < run.unitCount
            ? refBytes(run.runId, Level.Unit, position)
            : position < run.unitCount + cases
              ? refBytes(run.runId, Level.Case, position - run.unitCount)
              : refBytes(run.runId, Level.Pallet, position - run.unitCount - cases),
        );
        bucket.events.push(eventIndex);
        bucket.positions.push(position);
      }
      this.codeCount += codes.length / 12;
    }
  }

  /** What must be read: every gathered field, per bucket. */
  fieldsToLoad(): Map<string, string[]> {
    return new Map([...this.buckets].map(([key, b]) => [key, b.fields]));
  }

  /** Per bucket, its claims packed for the server-side claim: field then ref, `claimWidth` bytes each, in order. */
  packedClaims(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const [key, { fields, refs }] of this.buckets) {
      const parts = new Array<string>(fields.length * 2);
      for (let i = 0; i < fields.length; i++) ((parts[2 * i] = fields[i]!), (parts[2 * i + 1] = refs[i]!));
      out.set(key, Buffer.from(parts.join(""), "latin1"));
    }
    return out;
  }

  /** Records the conflicts the server-side claim found: per bucket, each claim's index and the holder's ref. */
  resolveClaimed(found: ReadonlyMap<string, readonly ClaimConflict[]>): void {
    for (const [key, conflicts] of found) {
      const bucket = this.buckets.get(key)!;
      for (const { index, holder } of conflicts) this.addConflict(bucket, index, holder);
    }
    this.buckets.clear();
  }

  /** Takes the loaded values and decides, in event order, which codes are claimed and which conflict. */
  resolve(loaded: (key: string) => Value[]): void {
    for (const [key, bucket] of this.buckets) {
      const prior = loaded(key);
      const fields: string[] = [];
      const refs: string[] = [];
      for (let i = 0; i < bucket.fields.length; i++) {
        const field = bucket.fields[i]!;
        const ref = bucket.refs[i]!;
        // A bucket gets a few codes a batch: a linear look at this batch's earlier claims is cheapest.
        const earlier = fields.indexOf(field);
        const holder = earlier >= 0 ? refs[earlier]! : (prior[i] ?? null);
        if (holder === null) {
          fields.push(field);
          refs.push(ref);
        } else if (holder !== ref) {
          this.addConflict(bucket, i, holder);
        }
      }
      if (fields.length > 0) this.writes.set(key, { fields, refs });
    }
    this.buckets.clear();
  }

  private addConflict(bucket: Bucket, i: number, holder: string): void {
    const { event, codes } = this.events[bucket.events[i]!]!;
    const position = bucket.positions[i]!;
    let list = this.conflicts.get(event);
    if (!list) this.conflicts.set(event, (list = []));
    list.push({
      position,
      code: codes.toString("hex", position * 12, position * 12 + 12),
      holder,
      ref: bucket.refs[i]!,
    });
  }

  /** The claims as field writes, and what undoes them (for undo records and the cluster journal). */
  fieldWrites(): { writes: FieldWrite[]; undo: FieldWrite[] } {
    const writes: FieldWrite[] = [];
    const undo: FieldWrite[] = [];
    for (const [key, { fields, refs }] of this.writes) {
      fields.forEach((field, i) => {
        writes.push({ key, field, value: refs[i]! });
        undo.push({ key, field, value: null });
      });
    }
    return { writes, undo };
  }
}
