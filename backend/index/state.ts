/**
 * The state one batch of events works on: fields loaded from Redis, with the batch's own writes on top.
 *
 * Event handlers are plain synchronous code. When a handler touches a field that is not loaded yet, the field is
 * recorded as missing and reads as absent, so the pass goes on and discovers what else is missing; a pass that
 * missed anything is void: the executor loads everything missing in one round trip and runs the batch again from
 * its start. A few passes suffice, as deep as the chain of reads that depend on earlier reads (a unit's run, then
 * its case). A handler that cannot go on without a value throws {@link MISS}.
 *
 * Every field the batch writes has been loaded first, so its prior value is known: that is the undo record.
 */
export type Value = string | null; // latin1 byte string; null = absent

export class Miss extends Error {}
/** Thrown to abandon an event in a void pass; one instance, since building a stack trace per throw is costly. */
export const MISS = new Miss("field not loaded");

export interface FieldWrite {
  key: string;
  field: string;
  value: Value;
}

export class BatchState {
  private readonly base = new Map<string, Map<string, Value>>();
  private dirty = new Map<string, Map<string, Value>>();
  private missing = new Map<string, Set<string>>();
  private missingCount = 0;

  /** Value of a field; a field not loaded yet is recorded as missing and reads as absent. */
  get(key: string, field: string): Value {
    const written = this.dirty.get(key)?.get(field);
    if (written !== undefined) return written;
    const loaded = this.base.get(key)?.get(field);
    if (loaded !== undefined) return loaded;
    this.recordMissing(key, field);
    return null;
  }

  set(key: string, field: string, value: Value): void {
    // Writing needs the prior value (for undo), so a field written blind is loaded for the next pass.
    if (this.base.get(key)?.get(field) === undefined) this.recordMissing(key, field);
    let fields = this.dirty.get(key);
    if (!fields) this.dirty.set(key, (fields = new Map()));
    fields.set(field, value);
  }

  /** Declares fields a handler is about to use; false if any of them is not loaded yet. */
  need(key: string, fields: Iterable<string>): boolean {
    const loaded = this.base.get(key);
    let complete = true;
    for (const f of fields) {
      if (loaded?.get(f) === undefined) {
        this.recordMissing(key, f);
        complete = false;
      }
    }
    return complete;
  }

  get hasMissing(): boolean {
    return this.missingCount > 0;
  }

  /** Hands over what is missing and forgets it. */
  takeMissing(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [key, fields] of this.missing) out.set(key, [...fields]);
    this.missing = new Map();
    this.missingCount = 0;
    return out;
  }

  addLoaded(key: string, fields: readonly string[], values: readonly Value[]): void {
    let map = this.base.get(key);
    if (!map) this.base.set(key, (map = new Map()));
    for (let i = 0; i < fields.length; i++) map.set(fields[i]!, values[i] ?? null);
  }

  /** Starts the batch over: its writes are dropped, loaded fields are kept. */
  restart(): void {
    this.dirty = new Map();
  }

  /** The batch's writes that change something, with the prior value of each when undo is wanted. */
  changes(withUndo = true): { writes: FieldWrite[]; undo: FieldWrite[] } {
    const writes: FieldWrite[] = [];
    const undo: FieldWrite[] = [];
    for (const [key, fields] of this.dirty) {
      const base = this.base.get(key)!;
      for (const [field, value] of fields) {
        const prior = base.get(field)!;
        if (prior === value) continue;
        writes.push({ key, field, value });
        if (withUndo) undo.push({ key, field, value: prior });
      }
    }
    return { writes, undo };
  }

  private recordMissing(key: string, field: string): void {
    let set = this.missing.get(key);
    if (!set) this.missing.set(key, (set = new Set()));
    if (!set.has(field)) {
      set.add(field);
      this.missingCount++;
    }
  }
}

/** UTF-8 text ⇄ the latin1 byte strings the state holds. */
export const toBytes = (text: string): string => Buffer.from(text, "utf8").toString("latin1");
export const fromBytes = (bytes: string): string => Buffer.from(bytes, "latin1").toString("utf8");
