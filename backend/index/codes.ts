/**
 * Code lookups claimed in bulk. A back-fill commissions hundreds of thousands of codes a batch; routing each
 * through the batch state's per-field maps cost more than everything else together. Codes only ever get claimed
 * (set where absent), so a batch's codes are gathered per lookup bucket in plain arrays, their current values
 * loaded with one HMGET per bucket, and resolved in event order: a code already held by another ref, in Redis or
 * earlier in the same batch, is a conflict for its event's handler to record; the others are written.
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

  /** Gathers the codes of a batch's commissioning events (`commissioned` filters and reads them). */
  constructor(
    events: readonly LedgerEvent[],
    bits: number,
    commissioned: (
      ev: LedgerEvent,
    ) => { runId: number; unitCount: number; unitsPerCase: number; casesPerPallet: number; codes: string } | null,
  ) {
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
          const { event, codes } = this.events[bucket.events[i]!]!;
          const position = bucket.positions[i]!;
          let list = this.conflicts.get(event);
          if (!list) this.conflicts.set(event, (list = []));
          list.push({ position, code: codes.toString("hex", position * 12, position * 12 + 12), holder, ref });
        }
      }
      if (fields.length > 0) this.writes.set(key, { fields, refs });
    }
    this.buckets.clear();
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
