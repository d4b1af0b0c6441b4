/**
 * The index's model of ledger state, shared by the event handlers that write it and the queries that read it.
 * Custody entries mirror the contract's (contracts/ledger/Custody.sol) bit for bit, and are resolved the same
 * way: a unit follows its case, a case its pallet, a pallet its manufacturer, unless it has an entry of its own.
 */
import { Level } from "../codes/refs";
import { RUN_FIELD, runKey } from "./keys";
import type { Value } from "./state";

export interface Reader {
  get(key: string, field: string): Value;
}

export const IN_TRANSIT = 1n << 63n;
export const OPENED = 1n << 62n;
export const DECOMMISSIONED = 1n << 61n;
export const LOOSE_UNITS = 1n << 60n;
export const VALUE_MASK = (1n << 40n) - 1n;
const CASE_FLAGS = OPENED | LOOSE_UNITS;

export interface RunMeta {
  runId: number;
  batchId: number;
  manufacturerId: number;
  unitCount: number;
  unitsPerCase: number;
  casesPerPallet: number;
  caseCount: number;
  palletCount: number;
  root: string;
  block: number;
  time: number;
  tx: string;
}

export function readRun(reader: Reader, runId: number): RunMeta | null {
  const raw = reader.get(runKey(runId), RUN_FIELD.meta);
  return raw === null ? null : (JSON.parse(raw) as RunMeta);
}

export function itemCount(run: RunMeta, level: Level): number {
  return level === Level.Unit ? run.unitCount : level === Level.Case ? run.caseCount : run.palletCount;
}

/** Units in case `caseIndex` as commissioned (the run's last case may be partial). */
export function caseUnits(run: RunMeta, caseIndex: number): number {
  return Math.min(run.unitCount, (caseIndex + 1) * run.unitsPerCase) - caseIndex * run.unitsPerCase;
}

/** Units on pallet `palletIndex` as commissioned (the run's last pallet may be partial). */
export function palletUnits(run: RunMeta, palletIndex: number): number {
  const firstCase = palletIndex * run.casesPerPallet;
  const endCase = Math.min(run.caseCount, firstCase + run.casesPerPallet);
  return Math.min(run.unitCount, endCase * run.unitsPerCase) - firstCase * run.unitsPerCase;
}

export function ownEntry(reader: Reader, runId: number, level: Level, index: number): bigint {
  const raw = reader.get(runKey(runId), RUN_FIELD.custody(level, index));
  return raw === null ? 0n : BigInt(raw);
}

/** The containers an item sits in, innermost first (positional aggregation, see Commissioning.sol). */
export function containersOf(run: RunMeta, level: Level, index: number): { level: Level; index: number }[] {
  const out: { level: Level; index: number }[] = [];
  let caseIndex = -1;
  if (level === Level.Unit && run.unitsPerCase > 0)
    out.push({ level: Level.Case, index: (caseIndex = Math.floor(index / run.unitsPerCase)) });
  if (level === Level.Case) caseIndex = index;
  if (caseIndex >= 0 && run.casesPerPallet > 0)
    out.push({ level: Level.Pallet, index: Math.floor(caseIndex / run.casesPerPallet) });
  return out;
}

/** The entry that decides where an item is: its own, else its container's (Custody._effectiveEntry). */
export function effectiveEntry(reader: Reader, run: RunMeta, level: Level, index: number): bigint {
  if (level === Level.Unit) {
    if (run.unitsPerCase === 0) {
      const own = ownEntry(reader, run.runId, Level.Unit, index);
      return own !== 0n ? own : BigInt(run.manufacturerId);
    }
    const caseIndex = Math.floor(index / run.unitsPerCase);
    const caseOwn = ownEntry(reader, run.runId, Level.Case, caseIndex);
    if ((caseOwn & LOOSE_UNITS) !== 0n) {
      const own = ownEntry(reader, run.runId, Level.Unit, index);
      if (own !== 0n) return own;
    }
    if (caseOwn !== 0n) return caseOwn & ~CASE_FLAGS;
    return containerEntry(reader, run, Level.Case, caseIndex);
  }
  return containerEntry(reader, run, level, index);
}

function containerEntry(reader: Reader, run: RunMeta, level: Level, index: number): bigint {
  const own = ownEntry(reader, run.runId, level, index);
  if (own !== 0n) return own & ~CASE_FLAGS;
  if (level === Level.Case && run.casesPerPallet > 0) {
    const palletOwn = ownEntry(reader, run.runId, Level.Pallet, Math.floor(index / run.casesPerPallet));
    if (palletOwn !== 0n) return palletOwn;
  }
  return BigInt(run.manufacturerId);
}

export interface Custody {
  /** Participant holding the item, or its sender while it is in transit. */
  holderId: number;
  inTransitShipment: number;
  decommissioned: boolean;
}

/** Decodes an effective entry; the sender of an in-transit item comes from its shipment. */
export function describeEntry(entry: bigint, senderOf: (shipmentId: number) => number): Custody {
  const value = Number(entry & VALUE_MASK);
  const inTransit = (entry & IN_TRANSIT) !== 0n;
  return {
    holderId: inTransit ? senderOf(value) : value,
    inTransitShipment: inTransit ? value : 0,
    decommissioned: (entry & DECOMMISSIONED) !== 0n,
  };
}

/** Custody trail entries: what happened to an item, 16 bytes each, oldest first. */
export enum TrailKind {
  Shipped = 1,
  Received = 2,
  Returned = 3,
  Decommissioned = 4,
  /** A case opened where it was (a unit dispensed, shipped loose or decommissioned); `ref` is the holder. */
  Opened = 5,
}

export interface TrailEntry {
  kind: TrailKind;
  /** The shipment; for {@link TrailKind.Decommissioned} the reason (Custody.DecommissionReason). */
  ref: number;
  block: number;
  time: number;
}

const TRAIL_BYTES = 16;

export function encodeTrailEntry(entry: TrailEntry): string {
  const buf = Buffer.alloc(TRAIL_BYTES);
  buf.writeUInt8(entry.kind, 0);
  buf.writeUIntBE(entry.ref, 1, 5);
  buf.writeUIntBE(entry.block, 6, 5);
  buf.writeUIntBE(entry.time, 11, 5);
  return buf.toString("latin1");
}

/** A trail field, as a latin1 byte string or as the bytes Redis returned. */
export function decodeTrail(bytes: Value | Buffer): TrailEntry[] {
  if (bytes === null) return [];
  const buf = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
  const out: TrailEntry[] = [];
  for (let at = 0; at + TRAIL_BYTES <= buf.length; at += TRAIL_BYTES) {
    out.push({
      kind: buf.readUInt8(at) as TrailKind,
      ref: buf.readUIntBE(at + 1, 5),
      block: buf.readUIntBE(at + 6, 5),
      time: buf.readUIntBE(at + 11, 5),
    });
  }
  return out;
}

/** A unit's dispensing, as the index keeps it. */
export interface DispensingRecord {
  pharmacyId: number;
  prescriptionHash: string;
  block: number;
  time: number;
  tx: string;
  /** Split packs (拆零): doses dispensed so far and doses in the pack. */
  split?: { dispensed: number; packQuantity: number };
}

/** A unit's settlement: the claim that paid for it (whole packs) or the doses paid per claim (split packs). */
export interface SettlementRecord {
  insurerId: number;
  pharmacyId: number;
  block: number;
  time: number;
  tx: string;
  claimId?: string;
  claimRef?: string;
  split?: { settled: number; byClaim: Record<string, number> };
}

/** 9 bytes: run id, level, index, as the contracts pack refs. */
export function refBytes(runId: number, level: Level, index: number): string {
  return String.fromCharCode(
    runId >>> 24,
    (runId >>> 16) & 255,
    (runId >>> 8) & 255,
    runId & 255,
    level,
    index >>> 24,
    (index >>> 16) & 255,
    (index >>> 8) & 255,
    index & 255,
  );
}

export function refFromBytes(bytes: string): { runId: number; level: Level; index: number } {
  const buf = Buffer.from(bytes, "latin1");
  return { runId: buf.readUInt32BE(0), level: buf.readUInt8(4) as Level, index: buf.readUInt32BE(5) };
}
