/**
 * Code lookups claimed in bulk. A back-fill commissions hundreds of thousands of codes a batch; routing each
 * through the batch state's per-field maps cost more than everything else together, and so did a JavaScript
 * string and a map entry per code (a fifth of a back-fill went to collecting them). Codes only ever get claimed
 * (set where absent), so a batch's codes are gathered straight into one Buffer of packed claims (field, then
 * ref), grouped by lookup bucket and in event order within one, with typed arrays saying which code each claim is.
 *
 * During a back-fill (no undo records) Redis makes the claims itself (`store.claimAbsent`): one packed argument
 * per bucket, only absent fields set, only the conflicts sent back. Near the head the claims' current values are
 * loaded with one HMGET per bucket and resolved here, so that the commit can write them with their undo. Either
 * way a code already held by another ref, in Redis or earlier in the same batch, is a conflict for its event's
 * handler to record. The two ways find the same conflicts: Redis applies the claims in the same order, so a code
 * claimed earlier in the batch is the holder of a later claim, and a batch applied again after a crash finds its
 * own claims (same ref: no conflict) and the same conflicts.
 */
import { caseCount } from "../codes/run";
import { Level } from "../codes/refs";
import type { LedgerEvent } from "./events";
import { bucketKey } from "./keys";
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

/** What a commissioning event claims (see events.ts, commissionedRun). */
export interface CommissionedRun {
  runId: number;
  unitCount: number;
  unitsPerCase: number;
  casesPerPallet: number;
  /** 0x-hex of the run's 12-byte code hashes: units, then cases, then pallets. */
  codes: string;
}

/** A code's ref: run id (4 bytes), level (1), index in the level (4). */
export const REF_BYTES = 9;
const HASH_BYTES = 12;
/** Claims in a batch at most (their places are kept in 32-bit arrays). */
const MAX_CLAIMS = 2 ** 32 - 1;

export class CodeClaims {
  private readonly events: LedgerEvent[] = [];
  /** Per gathered event, the place in the batch of its first code. */
  private readonly firstSeq: number[] = [];
  /** Every gathered code hash, 12 bytes each, in batch order (a code's place in it is its `seq`). */
  private readonly hashes: Buffer;
  /** Every claim packed as field then ref, `claimWidth` bytes each: grouped by bucket, in batch order in one. */
  private readonly packed: Buffer;
  /** Per packed claim, the `seq` of its code. */
  private readonly claimSeq: Uint32Array;
  /** Non-empty buckets in key order, and where each one's claims start (claim indexes, then one past the last). */
  private readonly bucketKeys: string[] = [];
  private readonly bucketStarts: number[] = [];
  private readonly bucketIndex = new Map<string, number>();
  private readonly fieldBytes: number;
  /** Per bucket, the fields this batch writes and their refs (aligned); set by {@link resolve}. */
  readonly writes = new Map<string, { fields: string[]; refs: string[] }>();
  readonly conflicts = new Map<LedgerEvent, CodeConflict[]>();
  readonly codeCount: number;
  /** Bytes of one packed claim: the field (the code hash less the bytes its bucket implies, as in codeSlot), the ref. */
  readonly claimWidth: number;

  /** Gathers the codes of a batch's commissioning events (`commissioned` filters and reads them). */
  constructor(events: readonly LedgerEvent[], bits: number, commissioned: (ev: LedgerEvent) => CommissionedRun | null) {
    const dropBytes = bits >> 3;
    this.fieldBytes = HASH_BYTES - dropBytes;
    const width = (this.claimWidth = this.fieldBytes + REF_BYTES);
    const runs: CommissionedRun[] = [];
    let total = 0;
    for (const event of events) {
      const run = commissioned(event);
      if (!run) continue;
      this.events.push(event);
      this.firstSeq.push(total);
      runs.push(run);
      total += (run.codes.length - 2) / 2 / HASH_BYTES;
    }
    if (total > MAX_CLAIMS) throw new Error(`a batch of ${total} codes is more than can be claimed at once`);
    this.codeCount = total;

    const hashes = (this.hashes = Buffer.allocUnsafe(total * HASH_BYTES));
    const eventOf = new Uint32Array(total);
    const bucketOf = new Uint32Array(total);
    for (let e = 0; e < runs.length; e++) {
      const first = this.firstSeq[e]!;
      const end = e + 1 < runs.length ? this.firstSeq[e + 1]! : total;
      hashes.write(runs[e]!.codes.slice(2), first * HASH_BYTES, "hex");
      eventOf.fill(e, first, end);
      for (let seq = first; seq < end; seq++) bucketOf[seq] = readUint32(hashes, seq * HASH_BYTES) >>> (32 - bits);
    }
    // By bucket, and within a bucket in batch order: the order the claims are made in.
    const claimSeq = (this.claimSeq = orderByBucket(bucketOf, bits));

    const cases = runs.map((run) => caseCount(run));
    const packed = (this.packed = Buffer.allocUnsafe(total * width));
    let lastTop = -1;
    for (let k = 0, at = 0; k < total; k++, at += width) {
      const seq = claimSeq[k]!;
      const top = bucketOf[seq]!;
      if (top !== lastTop) {
        lastTop = top;
        const key = bucketKey(bits, top);
        this.bucketIndex.set(key, this.bucketKeys.push(key) - 1);
        this.bucketStarts.push(k);
      }
      // Byte by byte: Buffer.copy's call costs more than 12 bytes' moves.
      for (let from = seq * HASH_BYTES + dropBytes, to = at; to < at + this.fieldBytes;) packed[to++] = hashes[from++]!;
      // Positional, as in itemAt(): units, then cases, then pallets.
      const e = eventOf[seq]!;
      const { runId, unitCount } = runs[e]!;
      const position = seq - this.firstSeq[e]!;
      const refAt = at + this.fieldBytes;
      if (position < unitCount) writeRef(packed, refAt, runId, Level.Unit, position);
      else if (position < unitCount + cases[e]!) writeRef(packed, refAt, runId, Level.Case, position - unitCount);
      else writeRef(packed, refAt, runId, Level.Pallet, position - unitCount - cases[e]!);
    }
    this.bucketStarts.push(total);
  }

  /** Per bucket, its claims packed for the server-side claim: field then ref, `claimWidth` bytes each, in order. */
  packedClaims(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (let b = 0; b < this.bucketKeys.length; b++)
      out.set(
        this.bucketKeys[b]!,
        this.packed.subarray(this.bucketStarts[b]! * this.claimWidth, this.bucketStarts[b + 1]! * this.claimWidth),
      );
    return out;
  }

  /** Records the conflicts the server-side claim found: per bucket, each claim's index and the holder's ref. */
  resolveClaimed(found: ReadonlyMap<string, readonly ClaimConflict[]>): void {
    for (const [key, conflicts] of found) {
      const start = this.bucketStarts[this.bucketIndex.get(key)!]!;
      for (const { index, holder } of conflicts) this.addConflict(start + index, holder);
    }
  }

  /** What must be read near the head: every gathered field, per bucket (latin1 byte strings). */
  fieldsToLoad(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (let b = 0; b < this.bucketKeys.length; b++) {
      const fields: string[] = [];
      for (let k = this.bucketStarts[b]!; k < this.bucketStarts[b + 1]!; k++) fields.push(this.fieldOf(k));
      out.set(this.bucketKeys[b]!, fields);
    }
    return out;
  }

  /** Takes the loaded values (aligned with {@link fieldsToLoad}) and decides, in order, what is claimed. */
  resolve(loaded: (key: string) => Value[]): void {
    for (let b = 0; b < this.bucketKeys.length; b++) {
      const key = this.bucketKeys[b]!;
      const prior = loaded(key);
      const fields: string[] = [];
      const refs: string[] = [];
      for (let k = this.bucketStarts[b]!, i = 0; k < this.bucketStarts[b + 1]!; k++, i++) {
        const field = this.fieldOf(k);
        const ref = this.refOf(k);
        // A bucket gets a few codes a batch: a linear look at this batch's earlier claims is cheapest.
        const earlier = fields.indexOf(field);
        const holder = earlier >= 0 ? refs[earlier]! : (prior[i] ?? null);
        if (holder === null) {
          fields.push(field);
          refs.push(ref);
        } else if (holder !== ref) {
          this.addConflict(k, holder);
        }
      }
      if (fields.length > 0) this.writes.set(key, { fields, refs });
    }
  }

  /** The claims {@link resolve} decided on as field writes, and what undoes them (for undo records). */
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

  private fieldOf(claim: number): string {
    const at = claim * this.claimWidth;
    return this.packed.toString("latin1", at, at + this.fieldBytes);
  }

  private refOf(claim: number): string {
    const at = claim * this.claimWidth + this.fieldBytes;
    return this.packed.toString("latin1", at, at + REF_BYTES);
  }

  private addConflict(claim: number, holder: string): void {
    const seq = this.claimSeq[claim]!;
    // The event whose codes hold `seq`: the last one starting at or before it.
    let e = 0;
    while (e + 1 < this.firstSeq.length && this.firstSeq[e + 1]! <= seq) e++;
    const event = this.events[e]!;
    let list = this.conflicts.get(event);
    if (!list) this.conflicts.set(event, (list = []));
    list.push({
      position: seq - this.firstSeq[e]!,
      code: this.hashes.toString("hex", seq * HASH_BYTES, (seq + 1) * HASH_BYTES),
      holder,
      ref: this.refOf(claim),
    });
  }
}

/**
 * The places 0..n-1 ordered by their bucket (`bucketOf`, below 2^bits), and in place order within a bucket: a
 * stable radix sort in passes of at most 12 bits (a comparison sort of a million codes cost a tenth of a second).
 */
function orderByBucket(bucketOf: Uint32Array, bits: number): Uint32Array {
  const n = bucketOf.length;
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let next = new Uint32Array(n);
  const passBits = Math.ceil(bits / Math.ceil(bits / 12));
  for (let shift = 0; shift < bits; shift += passBits) {
    const mask = (1 << Math.min(passBits, bits - shift)) - 1;
    const starts = new Uint32Array(mask + 2);
    for (let i = 0; i < n; i++) starts[((bucketOf[i]! >>> shift) & mask) + 1]!++;
    for (let d = 1; d <= mask + 1; d++) starts[d]! += starts[d - 1]!;
    for (let i = 0; i < n; i++) {
      const place = order[i]!;
      next[starts[(bucketOf[place]! >>> shift) & mask]!++] = place;
    }
    [order, next] = [next, order];
  }
  return order;
}

/** Writes a ref as refBytes (model.ts) spells it, straight into a Buffer. */
function writeRef(out: Buffer, at: number, runId: number, level: Level, index: number): void {
  writeUint32(out, at, runId);
  out[at + 4] = level;
  writeUint32(out, at + 5, index);
}

// By hand: Buffer's readUInt32BE and writeUInt32BE check their arguments, a visible cost a million times over.
function writeUint32(out: Buffer, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

const readUint32 = (buf: Buffer, at: number): number =>
  ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
