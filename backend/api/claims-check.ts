/**
 * The claim check: may an insurer pay for these packs? A read of the index (nothing changes on chain) that says,
 * per line, why not — and, when a code was already dispensed or settled elsewhere, which of the patterns the
 * healthcare-security administration reads in repeated codes it looks like (NHSA notice of 2 Nov 2024): the same
 * institution again (swapping, billing without dispensing), another institution long after (a resold pack),
 * another institution soon after (a copied code). Every refused line raises an alert. Shared by the JSON claim
 * check and the NHSA 3505 sale record.
 */
import { toUtf8Bytes } from "ethers";
import { keccak256 as keccak256Fast } from "js-sha3";
import type { AlertStore } from "../alerts";
import type { AlertActor } from "../alerts/model";
import { codeHash, CodeFormatError, parseCode, type ParsedCode } from "../codes/parse";
import { type ItemRef, Level } from "../codes/refs";
import type { ParticipantRecord } from "../index/events";
import type { CodeLookup, IndexReader, PackState } from "../index/query";
import type { Logger } from "../log";
import { DAY_SECONDS, iso } from "../util/time";
import { raiseCrossRegion } from "../supply/flows";
import type { ClaimSettings } from "./claims-config";

/** Line reasons, most serious first: an alert for a refused line is raised under its first reason. */
export const CLAIM_REASONS = [
  "DUPLICATE_CODE",
  "ALREADY_SETTLED",
  "DISPENSED_BY_OTHER_PHARMACY",
  "SPLIT_QUANTITY_EXCEEDED",
  "RECALLED",
  "DECOMMISSIONED",
  "EXPIRED_AT_DISPENSE",
  "LOT_MISMATCH",
  "EXPIRY_MISMATCH",
  "NOT_DISPENSED",
  "NOT_A_UNIT",
  "UNKNOWN_CODE",
  "REPEATED_IN_CLAIM",
  "INVALID_CODE",
] as const;
export type ClaimReason = (typeof CLAIM_REASONS)[number];

export const REPEAT_PATTERNS = ["SAME_INSTITUTION", "RESOLD_PACK", "COPIED_CODE"] as const;
export type RepeatPatternName = (typeof REPEAT_PATTERNS)[number];

export interface OrgRef {
  id: number;
  name: string;
  region: string;
}

/** An earlier dispensing or settlement of the code. */
export interface EarlierUse {
  event: "dispensed" | "settled";
  at: string;
  pharmacy: OrgRef | null;
  insurer?: OrgRef | null;
  claimRef?: string;
  claimId?: string;
  /** The earlier settlement is this very claim (a re-check of a claim already paid). */
  sameClaim?: boolean;
}

export interface RepeatPattern {
  pattern: RepeatPatternName;
  /** From the earlier dispensing or settlement to this check. */
  secondsBetween: number;
  regions: { earlier: string | null; now: string | null };
  earlier: EarlierUse;
}

export interface LineReason {
  reason: ClaimReason;
  detail: string;
  pattern?: RepeatPattern;
  /** Split packs: doses asked for, dispensed, settled so far (per claim) and still payable. */
  quantities?: {
    requested: number;
    dispensed: number;
    settled: number;
    available: number;
    packQuantity: number;
    settledByClaim: Record<string, number>;
  };
}

export interface PackSummary {
  level: "unit" | "case" | "pallet";
  product: { code: string; name: string; packQuantity: number } | null;
  lot: string | null;
  expiresOn: string | null;
  manufacturer: OrgRef | null;
  recalled: boolean;
  decommissioned: boolean;
  dispensed: { pharmacy: OrgRef | null; at: string; split: { dispensed: number; packQuantity: number } | null } | null;
  settled: { insurer: OrgRef | null; at: string; claimRef: string | null; dosesSettled: number | null } | null;
}

export interface LineResult {
  line: number;
  code: string;
  ok: boolean;
  reasons: LineReason[];
  quantity?: number;
  pack: PackSummary | null;
  alertId?: string;
}

export interface ClaimCheckResult {
  decision: "APPROVE" | "REJECT";
  claimRef: string;
  claimId: string | null;
  pharmacy: OrgRef;
  checkedAt: string;
  lines: LineResult[];
}

export interface ClaimLineInput {
  code: string;
  /** Doses of a split pack (拆零); whole packs need none. */
  quantity?: number;
  /** What the sale record says about the pack (NHSA 3505 manu_lotnum, expy_end as YYYY-MM-DD). */
  expect?: { lot?: string; expiry?: string };
}

/** A claim line's code as read, and its lookup if it could be read; by the code as sent. */
export type CodeReads = Map<string, { code: ParsedCode; found: Promise<CodeLookup | null> } | { error: string }>;

/**
 * Reads the codes and starts all their lookups at once (one round trip). A route calls it as the request
 * arrives (RouteOptions.prefetch), so the lookups travel with the checkpoint read and the rate limit's count.
 */
export function readCodes(reader: IndexReader, codeHashDomain: string, codes: readonly string[]): CodeReads {
  const reads: CodeReads = new Map();
  const readable: { raw: string; code: ParsedCode }[] = [];
  for (const raw of codes) {
    if (reads.has(raw)) continue;
    try {
      const code = parseCode(raw);
      readable.push({ raw, code });
      reads.set(raw, { error: "" }); // replaced below, once every lookup has started
    } catch (err) {
      if (!(err instanceof CodeFormatError)) throw err;
      reads.set(raw, { error: err.message });
    }
  }
  // All lookups at once: the claim's conflicts in one HMGET (IndexReader.lookupCodes).
  const found = reader.lookupCodes(readable.map((r) => codeHash(r.code.normalised, codeHashDomain)));
  readable.forEach(({ raw, code }, i) => {
    found[i]!.catch(() => undefined); // awaited by the line's check, or never (the request was refused)
    reads.set(raw, { code, found: found[i]! });
  });
  return reads;
}

export interface ClaimCheckInput {
  claimRef: string;
  pharmacy: ParticipantRecord;
  /** The insurer whose claim this is, when known (the caller is an insurer): a re-check of its own claim. */
  insurerId: number | null;
  lines: ClaimLineInput[];
  caller: AlertActor;
  /** The lines' codes, read ahead with {@link readCodes}; any code missing from it is read here. */
  reads?: CodeReads;
}

export interface ClaimCheckDeps {
  reader: IndexReader;
  alerts: AlertStore;
  settings: ClaimSettings;
  codeHashDomain: string;
  log?: Logger;
  now?: () => number;
}

/**
 * The ledger's claim reference is a bytes32 hash (no personal data on chain): a 0x-prefixed 32-byte hex string is
 * taken as it is, any other reference is hashed (keccak256 of its UTF-8), as an insurer's system does before settling.
 */
export function claimRefBytes32(claimRef: string): string {
  // js-sha3 rather than ethers' keccak256 (over @noble/hashes): the same digest, a fraction of the CPU.
  return /^0x[0-9a-fA-F]{64}$/.test(claimRef) ? claimRef.toLowerCase() : `0x${keccak256Fast(utf8Of(claimRef))}`;
}

/**
 * A claim reference's UTF-8 as ethers' toUtf8Bytes makes it. Node's encoder is native and allocates one buffer, and
 * both agree on every string without surrogates; with surrogates they differ (ethers throws on a lone high one and
 * encodes a lone low one, Node writes U+FFFD), so those keep ethers' encoding.
 */
const utf8Of = (text: string): Uint8Array =>
  /[\uD800-\uDFFF]/.test(text) ? toUtf8Bytes(text) : Buffer.from(text, "utf8");

/**
 * Settlement.claimIdOf: keccak256(abi.encode(insurerId, claimRef)). Both are static types, so the encoding is two
 * 32-byte words (the uint32 right-aligned, then the bytes32), laid out here: ethers' AbiCoder cost more than the
 * rest of a claim check's line work.
 */
export function claimIdOf(insurerId: number, claimRef: string): string {
  if (!Number.isInteger(insurerId) || insurerId < 0 || insurerId > 0xffffffff)
    throw new RangeError(`insurer id ${insurerId} is not a uint32`);
  const encoded = Buffer.alloc(64);
  encoded.writeUInt32BE(insurerId, 28);
  encoded.write(claimRefBytes32(claimRef).slice(2), 32, "hex");
  return `0x${keccak256Fast(encoded)}`;
}

const orgRef = (p: ParticipantRecord | null): OrgRef | null =>
  p ? { id: p.id, name: p.name, region: p.region } : null;
const LEVEL_NAMES = { [Level.Unit]: "unit", [Level.Case]: "case", [Level.Pallet]: "pallet" } as const;

/** Checks a claim, line by line, reading every line's index state at once (pipelined), and raises alerts. */
export async function checkClaim(deps: ClaimCheckDeps, input: ClaimCheckInput): Promise<ClaimCheckResult> {
  const nowMs = (deps.now ?? Date.now)();
  const claimId = input.insurerId !== null ? claimIdOf(input.insurerId, input.claimRef) : null;
  const firstLineOf = new Map<string, number>();
  const missing = input.lines.map((l) => l.code).filter((code) => !input.reads?.has(code));
  const reads =
    missing.length > 0
      ? new Map([...(input.reads ?? []), ...readCodes(deps.reader, deps.codeHashDomain, missing)])
      : input.reads!;
  const parsed = input.lines.map((line, i) => {
    const read = reads.get(line.code)!;
    if ("error" in read) return { error: read.error };
    const first = firstLineOf.get(read.code.normalised);
    if (first === undefined) firstLineOf.set(read.code.normalised, i);
    return { code: read.code, found: read.found, repeatOf: first ?? null };
  });
  // Every line's code resolved, then every pack read at once: one HMGET per run (IndexReader.packStates), not per line.
  const resolved = await Promise.all(
    parsed.map((p) =>
      "error" in p || p.repeatOf !== null ? null : p.found.then((found) => resolveFound(deps.reader, p.code, found)),
    ),
  );
  const toRead = resolved.flatMap((r) => (r?.ref ? [r.ref] : []));
  const read = await deps.reader.packStates(toRead);
  const views = new Map(toRead.map((ref, k) => [ref, read[k]!]));
  const context: LineContext = { deps, input, claimId, nowMs, orgs: await orgsOf(deps.reader, input.pharmacy, read) };
  const lines = input.lines.map((line, i) => {
    const p = parsed[i]!;
    const base = { line: i, code: line.code, ...(line.quantity !== undefined ? { quantity: line.quantity } : {}) };
    if ("error" in p)
      return {
        ...base,
        ok: false,
        pack: null,
        reasons: [{ reason: "INVALID_CODE", detail: p.error! }],
      } as LineResult;
    if (p.repeatOf !== null)
      return {
        ...base,
        ok: false,
        pack: null,
        reasons: [{ reason: "REPEATED_IN_CLAIM", detail: `the same code as line ${p.repeatOf}` }],
      } as LineResult;
    const r = resolved[i]!;
    return checkLine(context, base, line, r, (r.ref && views.get(r.ref)) ?? null);
  });
  await Promise.all([
    raiseAlerts(
      context,
      lines,
      parsed.map((p) => ("code" in p ? p.code! : null)),
    ),
    raiseCrossRegionAlerts(context, lines),
  ]);
  return {
    decision: lines.every((l) => l.ok) ? "APPROVE" : "REJECT",
    claimRef: input.claimRef,
    claimId,
    pharmacy: orgRef(input.pharmacy)!,
    checkedAt: new Date(nowMs).toISOString(),
    lines,
  };
}

interface LineContext {
  deps: ClaimCheckDeps;
  input: ClaimCheckInput;
  claimId: string | null;
  nowMs: number;
  /** Every participant the lines name beside their packs' manufacturers (see {@link orgsOf}), by id. */
  orgs: Map<number, ParticipantRecord | null>;
}

/**
 * The pharmacies and insurers of the packs' dispensings and settlements, read at once before the lines are
 * checked, so that each line's check is plain work rather than a chain of awaits per participant.
 */
async function orgsOf(
  reader: IndexReader,
  pharmacy: ParticipantRecord,
  packs: readonly (PackState | null)[],
): Promise<Map<number, ParticipantRecord | null>> {
  const ids = new Set<number>();
  for (const pack of packs) {
    if (pack?.dispensing) ids.add(pack.dispensing.pharmacyId);
    if (pack?.settlement) ids.add(pack.settlement.pharmacyId).add(pack.settlement.insurerId);
  }
  ids.delete(pharmacy.id);
  const list = [...ids];
  const found = await Promise.all(list.map((id) => reader.participant(id)));
  const orgs = new Map<number, ParticipantRecord | null>([[pharmacy.id, pharmacy]]);
  list.forEach((id, k) => orgs.set(id, found[k]!));
  return orgs;
}

const orgOf = (ctx: LineContext, id: number): ParticipantRecord | null => ctx.orgs.get(id) ?? null;

type LineBase = Pick<LineResult, "line" | "code" | "quantity">;

/** A line's result, written out field by field: an object spread per line was a hot spot of the claim check. */
function lineResult(base: LineBase, ok: boolean, reasons: LineReason[], pack: PackSummary | null): LineResult {
  return base.quantity === undefined
    ? { line: base.line, code: base.code, ok, reasons, pack }
    : { line: base.line, code: base.code, quantity: base.quantity, ok, reasons, pack };
}

/** One line's reasons, from its code as resolved (copies are other refs) and its pack as read (null: none). */
function checkLine(
  ctx: LineContext,
  base: LineBase,
  line: ClaimLineInput,
  resolved: { ref: ItemRef | null; duplicates: ItemRef[] },
  view: PackState | null,
): LineResult {
  const reasons: LineReason[] = [];
  if (resolved.duplicates.length > 0)
    reasons.push({
      reason: "DUPLICATE_CODE",
      detail: `the code was commissioned ${resolved.duplicates.length + (resolved.ref ? 1 : 0)} times: a copy is circulating`,
    });
  if (!view) {
    reasons.push({ reason: "UNKNOWN_CODE", detail: "no pack of this product carries the code" });
    return lineResult(base, false, sortReasons(reasons), null);
  }
  const pack = summarise(ctx, view);
  if (view.ref.level !== Level.Unit) {
    reasons.push({ reason: "NOT_A_UNIT", detail: `a ${pack.level} code: a claim lists the packs sold` });
    return lineResult(base, false, sortReasons(reasons), pack);
  }
  reasons.push(...useReasons(ctx, view, line));
  if (view.batch?.recalled) reasons.push({ reason: "RECALLED", detail: `batch ${view.batch.lot} is recalled` });
  if (view.custody.decommissioned) reasons.push({ reason: "DECOMMISSIONED", detail: "the pack was decommissioned" });
  if (view.batch && view.dispensing && view.dispensing.time > view.batch.expiresOn)
    reasons.push({ reason: "EXPIRED_AT_DISPENSE", detail: `dispensed after its expiry ${pack.expiresOn}` });
  reasons.push(...recordMismatches(view, line));
  return lineResult(base, reasons.length === 0, sortReasons(reasons), pack);
}

/** Whether the pack was dispensed here and is not paid for yet (split packs: enough doses left). */
function useReasons(ctx: LineContext, view: PackState, line: ClaimLineInput): LineReason[] {
  const { dispensing, settlement } = view;
  const pharmacyId = ctx.input.pharmacy.id;
  if (!dispensing) return [{ reason: "NOT_DISPENSED", detail: "the ledger has no dispensing of this pack" }];
  const out: LineReason[] = [];
  if (dispensing.pharmacyId !== pharmacyId) {
    const earlier: EarlierUse = {
      event: "dispensed",
      at: iso(dispensing.time),
      pharmacy: orgRef(orgOf(ctx, dispensing.pharmacyId)),
    };
    out.push({
      reason: "DISPENSED_BY_OTHER_PHARMACY",
      detail: `dispensed by ${earlier.pharmacy?.name ?? `participant ${dispensing.pharmacyId}`}`,
      pattern: repeatPattern(ctx, earlier, dispensing.time),
    });
  }
  if (dispensing.split) {
    const settled = settlement?.split?.settled ?? 0;
    const available = dispensing.split.dispensed - settled;
    const requested = line.quantity ?? available;
    if (requested > available || available <= 0)
      out.push({
        reason: "SPLIT_QUANTITY_EXCEEDED",
        detail: `${requested} doses asked for, ${available} of ${dispensing.split.dispensed} dispensed are unpaid`,
        quantities: {
          requested,
          dispensed: dispensing.split.dispensed,
          settled,
          available,
          packQuantity: dispensing.split.packQuantity,
          settledByClaim: settlement?.split?.byClaim ?? {},
        },
      });
    return out;
  }
  if (settlement) {
    const earlier: EarlierUse = {
      event: "settled",
      at: iso(settlement.time),
      pharmacy: orgRef(orgOf(ctx, settlement.pharmacyId)),
      insurer: orgRef(orgOf(ctx, settlement.insurerId)),
      ...(settlement.claimRef ? { claimRef: settlement.claimRef } : {}),
      ...(settlement.claimId ? { claimId: settlement.claimId } : {}),
      ...(settlement.claimId && settlement.claimId === ctx.claimId ? { sameClaim: true } : {}),
    };
    out.push({
      reason: "ALREADY_SETTLED",
      detail: `settled by ${earlier.insurer?.name ?? "an insurer"} under claim ${settlement.claimRef ?? settlement.claimId ?? "?"}${earlier.sameClaim ? " (this claim)" : ""}`,
      pattern: repeatPattern(ctx, earlier, settlement.time),
    });
  }
  return out;
}

/** Which of the NHSA's repeated-code patterns an earlier use at `earlierSeconds` makes of this claim. */
function repeatPattern(ctx: LineContext, earlier: EarlierUse, earlierSeconds: number): RepeatPattern {
  const secondsBetween = Math.max(0, Math.round(ctx.nowMs / 1000 - earlierSeconds));
  const window = ctx.deps.settings.CLAIM_COPIED_CODE_WINDOW_HOURS * 3600;
  const pattern: RepeatPatternName =
    earlier.pharmacy?.id === ctx.input.pharmacy.id
      ? "SAME_INSTITUTION"
      : secondsBetween > window
        ? "RESOLD_PACK"
        : "COPIED_CODE";
  return {
    pattern,
    secondsBetween,
    regions: { earlier: earlier.pharmacy?.region ?? null, now: ctx.input.pharmacy.region },
    earlier,
  };
}

/**
 * A sale record's lot and expiry against the batch's. The ledger keeps expiry as an instant and records print a
 * local date, so a day either side matches.
 */
function recordMismatches(view: PackState, line: ClaimLineInput): LineReason[] {
  const out: LineReason[] = [];
  const batch = view.batch;
  if (!batch || !line.expect) return out;
  if (line.expect.lot !== undefined && line.expect.lot.trim() !== batch.lot)
    out.push({
      reason: "LOT_MISMATCH",
      detail: `the record says lot ${line.expect.lot}, the pack is of lot ${batch.lot}`,
    });
  if (line.expect.expiry !== undefined) {
    const stated = Date.parse(`${line.expect.expiry}T00:00:00Z`) / 1000;
    if (!Number.isFinite(stated) || Math.abs(stated - batch.expiresOn) > 2 * DAY_SECONDS)
      out.push({
        reason: "EXPIRY_MISMATCH",
        detail: `the record says expiry ${line.expect.expiry}, the batch expires ${iso(batch.expiresOn).slice(0, 10)}`,
      });
  }
  return out;
}

function summarise(ctx: LineContext, view: PackState): PackSummary {
  const { dispensing, settlement } = view;
  const dispensedBy = dispensing ? orgOf(ctx, dispensing.pharmacyId) : null;
  const insurer = settlement ? orgOf(ctx, settlement.insurerId) : null;
  return {
    level: LEVEL_NAMES[view.ref.level],
    product: view.product
      ? { code: view.product.productCode, name: view.product.name, packQuantity: view.product.packQuantity }
      : null,
    lot: view.batch?.lot ?? null,
    expiresOn: view.batch ? iso(view.batch.expiresOn) : null,
    manufacturer: orgRef(view.manufacturer),
    recalled: view.batch?.recalled ?? false,
    decommissioned: view.custody.decommissioned,
    dispensed: dispensing
      ? { pharmacy: orgRef(dispensedBy), at: iso(dispensing.time), split: dispensing.split ?? null }
      : null,
    settled: settlement
      ? {
          insurer: orgRef(insurer),
          at: iso(settlement.time),
          claimRef: settlement.claimRef ?? null,
          dosesSettled: settlement.split?.settled ?? null,
        }
      : null,
  };
}

const sortReasons = (reasons: LineReason[]): LineReason[] =>
  reasons.sort((a, b) => CLAIM_REASONS.indexOf(a.reason) - CLAIM_REASONS.indexOf(b.reason));

/** One alert per refused line, under its most serious reason; a re-check of this very claim raises none. */
async function raiseAlerts(ctx: LineContext, lines: LineResult[], codes: (ParsedCode | null)[]): Promise<void> {
  await Promise.all(
    lines.map(async (line, i) => {
      if (line.ok) return;
      const earlierUses = line.reasons.map((r) => r.pattern?.earlier).filter((e): e is EarlierUse => !!e);
      if (line.reasons.length === 1 && earlierUses[0]?.sameClaim) return;
      const code = codes[i];
      try {
        const alert = await ctx.deps.alerts.raise({
          source: "claim",
          reason: line.reasons[0]!.reason,
          code: {
            raw: line.code,
            normalised: code?.normalised ?? null,
            ...(code?.productCode ? { productCode: code.productCode } : {}),
          },
          reporter: ctx.input.caller,
          // The pharmacies concerned see it; an earlier claim's insurer does not learn of another insurer's check.
          participants: [ctx.input.pharmacy.id, ...earlierUses.map((e) => e.pharmacy?.id ?? 0)],
          manufacturerId: line.pack?.manufacturer?.id ?? null,
          snapshot: { claimRef: ctx.input.claimRef, line: line.line, reasons: line.reasons, pack: line.pack },
          at: ctx.nowMs,
        });
        line.alertId = alert.id;
      } catch (err) {
        // The answer stands without its alert; the failure is logged for the operator.
        ctx.deps.log?.error({ err: (err as Error).message, code: line.code }, "claim check could not raise an alert");
      }
    }),
  );
}

/** Packs settled already by a pharmacy of another region, billed again soon after: a flow signal too. */
async function raiseCrossRegionAlerts(ctx: LineContext, lines: LineResult[]): Promise<void> {
  const copied = lines.flatMap((line) => {
    const pattern = line.reasons.find((r) => r.reason === "ALREADY_SETTLED")?.pattern;
    if (pattern?.pattern !== "COPIED_CODE") return [];
    const { earlier } = pattern;
    return [
      {
        code: line.code,
        pharmacy: { id: ctx.input.pharmacy.id, region: ctx.input.pharmacy.region },
        earlier: {
          pharmacyId: earlier.pharmacy?.id ?? null,
          region: pattern.regions.earlier,
          at: earlier.at,
          ...(earlier.claimRef ? { claimRef: earlier.claimRef } : {}),
        },
        secondsBetween: pattern.secondsBetween,
      },
    ];
  });
  if (copied.length === 0) return;
  try {
    await raiseCrossRegion(ctx.deps.alerts, copied);
  } catch (err) {
    ctx.deps.log?.error({ err: (err as Error).message }, "claim check could not raise a cross-region alert");
  }
}

/**
 * The product rule (ledger-hardening issue): a code resolves only to a run of the product it names (a Chinese
 * code in digits 1-7, a GS1 code in its GTIN), the first mined of them; every other ref of the code is a copy.
 * Case and pallet codes name no product, so the first ref stands. (IndexReader.resolveCode replaces this when the
 * core API lands it.)
 */
export async function resolveCode(
  reader: IndexReader,
  code: ParsedCode,
  hash: Buffer,
): Promise<{ ref: ItemRef | null; duplicates: ItemRef[] }> {
  return resolveFound(reader, code, await reader.lookupCode(hash));
}

/** {@link resolveCode} of a lookup already read. */
async function resolveFound(
  reader: IndexReader,
  code: ParsedCode,
  found: CodeLookup | null,
): Promise<{ ref: ItemRef | null; duplicates: ItemRef[] }> {
  if (!found) return { ref: null, duplicates: [] };
  const refs = found.conflicts.length > 0 ? found.conflicts : [found.ref];
  if (!code.productCode) return { ref: refs[0]!, duplicates: refs.slice(1) };
  const products = await Promise.all(
    refs.map(async (ref) => {
      const run = await reader.run(ref.runId);
      const batch = run ? await reader.batch(run.batchId) : null;
      return batch ? reader.product(batch.productId) : null;
    }),
  );
  const at = products.findIndex((p) => p?.productCode === code.productCode);
  return { ref: at === -1 ? null : refs[at]!, duplicates: refs.filter((_, i) => i !== at) };
}
