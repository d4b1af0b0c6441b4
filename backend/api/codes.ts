/**
 * Scan-to-verify: GET /v1/codes/{code}, POST /v1/codes/verify (a carton at goods receipt) and the patient's
 * public check GET /v1/public/codes/{code}. Every UNKNOWN or ALERT answer raises an alert (backend/alerts).
 */
import type { Request, Router } from "express";
import { z } from "zod";
import type { AlertActor } from "../alerts";
import { caseSwapped, codeHash, CodeFormatError, parseCode, type ParsedCode } from "../codes/parse";
import type { ItemRef } from "../codes/refs";
import type { CodeLookup, ItemView } from "../index/query";
import type { ApiContext, Caller } from "./context";
import { ApiError, echo, toApiError } from "./errors";
import { productSchema } from "./records";
import { ApiRouter, problemSchema } from "./openapi";
import { ALERT_KINDS, alertsOf, batchView, describeFor, DISPOSITIONS, gatherFacts, productView } from "./scan";

// ---- reading what the scanner sent ----

export interface ScanParse {
  parsed?: ParsedCode;
  /** Why the code cannot be read (length, characters, check digit, AI), and its stable reason code. */
  error?: string;
  reason?: string;
  /** What points to a mis-scan rather than a counterfeit (e.g. LENGTH_19_EXPECTED_20), from the parser. */
  hints: string[];
}

/** The one place the service reads a code (backend/codes/parse.ts, with its scanner hints). */
export function parseScan(raw: string): ScanParse {
  try {
    const parsed = parseCode(raw);
    return { parsed, hints: parsed.hints.map((h) => h.code) };
  } catch (err) {
    if (err instanceof CodeFormatError) {
      return { error: err.message, reason: err.reason, hints: err.hints.map((h) => h.code) };
    }
    throw err;
  }
}

// ---- answer schemas ----

const orgSchema = z
  .object({ id: z.number().int(), name: z.string(), role: z.string(), region: z.string() })
  .openapi("Org");
const batchSchema = z
  .object({
    id: z.number().int(),
    lot: z.string(),
    manufacturedOn: z.string(),
    expiry: z.string().openapi({ description: "YYYY-MM-DD" }),
    recalled: z.boolean(),
  })
  .openapi("Batch");
const trailStepSchema = z
  .object({
    event: z.enum(["shipped", "received", "returned", "decommissioned", "opened"]),
    via: z.enum(["unit", "case", "pallet"]),
    at: z.string(),
    block: z.number().int(),
    shipmentId: z.number().int().optional(),
    from: orgSchema.nullable().optional(),
    to: orgSchema.nullable().optional(),
    by: orgSchema.nullable().optional(),
    reason: z.string().optional(),
  })
  .openapi("CustodyStep");
const dispositionSchema = z.enum(DISPOSITIONS);
const countsSchema = z.record(dispositionSchema, z.number().int());

export const scanResultSchema = z
  .object({
    code: z.string().openapi({ description: "What was scanned (trimmed; long input shortened)" }),
    scheme: z.enum(["cn20", "gs1", "other"]),
    normalised: z.string(),
    known: z.boolean(),
    verdict: z.enum(["OK", "ALERT", "UNKNOWN"]),
    status: dispositionSchema.openapi({ description: "GS1 CBV disposition where one fits" }),
    statusReason: z.string().optional(),
    alerts: z.array(z.enum(ALERT_KINDS)),
    hints: z.array(z.string()),
    level: z.enum(["unit", "case", "pallet"]).nullable(),
    product: productSchema.nullable(),
    batch: batchSchema.nullable(),
    manufacturer: orgSchema.nullable(),
    holder: orgSchema.nullable().openapi({ description: "null when the caller may not see custody" }),
    inTransit: z
      .object({ shipmentId: z.number().int(), from: orgSchema.nullable(), to: orgSchema.nullable() })
      .nullable(),
    custody: z.array(trailStepSchema).nullable(),
    dispensing: z
      .object({
        at: z.string(),
        block: z.number().int(),
        pharmacy: orgSchema.nullable(),
        prescriptionHash: z.string().nullable(),
        split: z.object({ dispensed: z.number().int(), packQuantity: z.number().int() }).nullable(),
      })
      .nullable(),
    settlement: z
      .object({
        at: z.string(),
        block: z.number().int(),
        insurer: orgSchema.nullable(),
        claimId: z.string().nullable(),
        split: z.object({ settled: z.number().int(), byClaim: z.record(z.number().int()).optional() }).nullable(),
      })
      .nullable(),
    contents: z.object({ units: z.number().int(), byStatus: countsSchema }).nullable(),
    duplicates: z.number().int().openapi({ description: "Other runs the code was commissioned in (copies)" }),
    alertIds: z.array(z.string()),
  })
  .openapi("ScanResult");
export type ScanResult = z.infer<typeof scanResultSchema>;

export const SALES = ["no sale", "one sale", "sold more than once"] as const;

export const publicResultSchema = z
  .object({
    code: z.string(),
    genuine: z.boolean().openapi({ description: "Commissioned by the product's maker, and not a copy" }),
    product: z
      .object({
        name: z.string(),
        approvalNumber: z.string(),
        packageSpec: z.string(),
        manufacturer: z.string().nullable(),
      })
      .nullable(),
    batch: z.object({ lot: z.string(), expiry: z.string() }).nullable(),
    expired: z.boolean(),
    recalled: z.boolean(),
    sales: z.enum(SALES).openapi({ description: "As the NHSA app says it: no sale, one sale, sold more than once" }),
    hints: z.array(z.string()),
  })
  .strict()
  .openapi("PublicCheck");

const verifyBodySchema = z
  .object({ codes: z.array(z.string()).min(1).max(1000).openapi({ description: "Up to 1,000 codes, as scanned" }) })
  .strict();
const verifyResultSchema = z.union([scanResultSchema, z.object({ code: z.string(), error: problemSchema })]);
export const verifyResponseSchema = z.object({ results: z.array(verifyResultSchema) }).openapi("VerifyResults");

const codeParams = z.object({
  code: z.string().openapi({ description: "The code as scanned, percent-encoded (GS separator as %1D)" }),
});

// ---- resolving a code ----

interface Resolved {
  parsed: ParsedCode;
  hints: string[];
  ref: ItemRef | null;
  duplicates: ItemRef[];
  view: ItemView | null;
}

/** A scanned code read and its lookup started as the request arrives (see RouteOptions.prefetch). */
export interface PrefetchedScan {
  raw: string;
  scan: ScanParse;
  found: Promise<CodeLookup | null> | null;
}

/** Reads `req.params.code` and starts its lookup; undefined when there is no such parameter. */
export function prefetchScan(ctx: ApiContext, req: Request): PrefetchedScan | undefined {
  const raw: unknown = req.params.code;
  if (typeof raw !== "string") return undefined;
  try {
    const scan = parseScan(raw);
    const found = scan.parsed ? lookupCode(ctx, scan.parsed) : null;
    found?.catch(() => undefined); // the handler awaits it, or never runs (refused)
    return { raw, scan, found };
  } catch {
    return undefined; // the handler reads the code again and answers
  }
}

async function resolve(ctx: ApiContext, raw: string, prefetched?: PrefetchedScan): Promise<Resolved> {
  const early = prefetched?.raw === raw ? prefetched : undefined;
  const scan = early?.scan ?? parseScan(raw);
  if (!scan.parsed)
    throw new ApiError(400, "invalid-code", "Code cannot be read", scan.error!, {
      field: "code",
      code: echo(raw),
      reason: scan.reason,
      hints: scan.hints,
    });
  const parsed = scan.parsed;
  const { ref, duplicates } = await lookup(ctx, parsed, early?.found ?? undefined);
  const view = ref ? await ctx.reader.item(ref) : null;
  const hints = view ? [] : [...scan.hints, ...(await caseSwapHint(ctx, parsed))];
  return { parsed, hints, ref, duplicates, view };
}

const lookupCode = (ctx: ApiContext, parsed: ParsedCode): Promise<CodeLookup | null> =>
  ctx.reader.lookupCode(codeHash(parsed.normalised, ctx.config.CODE_HASH_DOMAIN));

async function lookup(ctx: ApiContext, parsed: ParsedCode, found = lookupCode(ctx, parsed)) {
  return ctx.reader.resolveCode(parsed, await found);
}

/** CAPS LOCK on a keyboard-wedge scanner swaps the case of letters: say so when the swapped code is known. */
async function caseSwapHint(ctx: ApiContext, parsed: ParsedCode): Promise<string[]> {
  const swapped = caseSwapped(parsed);
  if (!swapped) return [];
  const { ref } = await lookup(ctx, swapped);
  return ref ? ["CASE_SWAPPED_CODE_KNOWN"] : [];
}

const reporterOf = (caller: Caller): AlertActor => ({ ...caller });
const PUBLIC_REPORTER: AlertActor = { keyId: "public", name: "public check", participantId: null, role: "public" };

/** Raises one alert per problem (the store de-duplicates repeats of a code, reason and organisation). */
async function raiseAlerts(
  ctx: ApiContext,
  reporter: AlertActor,
  raw: string,
  r: Resolved,
  reasons: readonly string[],
  /** Made only when there is an alert to raise: most scans raise none. */
  snapshotOf: () => Record<string, unknown>,
): Promise<string[]> {
  if (reasons.length === 0) return [];
  const snapshot = snapshotOf();
  const v = r.view;
  const participants = [v?.custody.holderId, v?.dispensing?.pharmacyId, v?.settlement?.pharmacyId].filter(
    (p): p is number => typeof p === "number" && p > 0,
  );
  const alerts = await Promise.all(
    reasons.map((reason) =>
      ctx.alerts.raise({
        source: "scan",
        reason,
        code: {
          raw,
          normalised: r.parsed.normalised,
          ...(r.parsed.productCode ? { productCode: r.parsed.productCode } : {}),
        },
        hints: r.hints,
        reporter,
        participants,
        manufacturerId: v?.run.manufacturerId ?? null,
        snapshot,
      }),
    ),
  );
  return alerts.map((a) => a.id);
}

const UNKNOWN_PARTS = {
  level: null,
  status: "unknown",
  product: null,
  batch: null,
  manufacturer: null,
  holder: null,
  inTransit: null,
  custody: null,
  dispensing: null,
  settlement: null,
  contents: null,
} as const;

/** The scan of one code, for one caller; throws an invalid-code ApiError when the code cannot be read. */
export async function scanCode(
  ctx: ApiContext,
  caller: Caller,
  raw: string,
  route: string,
  prefetched?: PrefetchedScan,
): Promise<ScanResult> {
  const r = await resolve(ctx, raw, prefetched);
  const base = {
    code: echo(raw.trim()),
    scheme: r.parsed.scheme,
    normalised: r.parsed.normalised,
    known: r.view !== null,
  };
  let result: ScanResult;
  if (!r.view) {
    const alerts = r.duplicates.length > 0 ? (["DUPLICATE_CODE"] as const) : [];
    result = {
      ...base,
      verdict: "UNKNOWN",
      alerts: [...alerts],
      hints: r.hints,
      ...UNKNOWN_PARTS,
      duplicates: r.duplicates.length,
      alertIds: [],
    };
    result.alertIds = await raiseAlerts(ctx, reporterOf(caller), raw, r, ["UNKNOWN_CODE", ...alerts], () =>
      snapshotOf(result),
    );
  } else {
    const facts = await gatherFacts(ctx.reader, r.view, r.duplicates);
    const alerts = alertsOf(caller, facts);
    const d = await describeFor(ctx.reader, caller, facts);
    // Written out field by field: spreading the described parts into the answer was a hot spot of the scan.
    result = {
      code: base.code,
      scheme: base.scheme,
      normalised: base.normalised,
      known: base.known,
      verdict: alerts.length > 0 ? "ALERT" : "OK",
      alerts,
      hints: r.hints,
      level: d.level,
      status: d.status,
      statusReason: d.statusReason,
      product: d.product,
      batch: d.batch,
      manufacturer: d.manufacturer,
      holder: d.holder,
      inTransit: d.inTransit,
      custody: d.custody,
      dispensing: d.dispensing,
      settlement: d.settlement,
      contents: d.contents,
      duplicates: r.duplicates.length,
      alertIds: [],
    };
    result.alertIds = await raiseAlerts(ctx, reporterOf(caller), raw, r, alerts, () => ({
      ...snapshotOf(result),
      ref: r.ref,
    }));
  }
  ctx.metrics.verdicts.inc({ route, verdict: result.verdict });
  return result;
}

/** What an alert keeps of the answer: the code's history at that moment, without the caller's redactions. */
const SNAPSHOT_FIELDS = [
  "verdict",
  "status",
  "alerts",
  "hints",
  "level",
  "batch",
  "holder",
  "custody",
  "dispensing",
  "settlement",
  "contents",
  "duplicates",
] as const satisfies readonly (keyof ScanResult)[];

function snapshotOf(result: ScanResult): Record<string, unknown> {
  const snapshot: Record<string, unknown> = Object.fromEntries(SNAPSHOT_FIELDS.map((f) => [f, result[f]]));
  snapshot.productId = result.product?.id;
  return snapshot;
}

/** The patient's view: genuine or not, product, expiry, recall and a sale count — nothing commercial. */
export async function publicCheck(
  ctx: ApiContext,
  raw: string,
  prefetched?: PrefetchedScan,
): Promise<z.infer<typeof publicResultSchema>> {
  const r = await resolve(ctx, raw, prefetched);
  const view = r.view;
  const copies = await Promise.all(r.duplicates.map((ref) => ctx.reader.item(ref)));
  const sales = [view, ...copies].filter((v) => v?.dispensing).length;
  const nowSeconds = Math.floor(Date.now() / 1000);
  const product = productView(view?.product ?? null);
  const batch = batchView(view?.batch ?? null);
  const genuine = view !== null && r.duplicates.length === 0;
  const reasons = [...(view ? [] : ["UNKNOWN_CODE"]), ...(r.duplicates.length > 0 ? ["DUPLICATE_CODE"] : [])];
  await raiseAlerts(ctx, PUBLIC_REPORTER, raw, r, reasons, () => ({
    genuine,
    sales,
    duplicates: r.duplicates.length,
  }));
  ctx.metrics.verdicts.inc({ route: "/v1/public/codes/{code}", verdict: !view ? "UNKNOWN" : genuine ? "OK" : "ALERT" });
  return {
    code: echo(raw.trim()),
    genuine,
    product: product
      ? {
          name: product.name,
          approvalNumber: product.approvalNumber,
          packageSpec: product.packageSpec,
          manufacturer: view?.manufacturer?.name ?? null,
        }
      : null,
    batch: batch ? { lot: batch.lot, expiry: batch.expiry } : null,
    expired: !!view?.batch && view.batch.expiresOn < nowSeconds,
    recalled: !!view?.batch?.recalled,
    sales: SALES[Math.min(sales, 2)]!,
    hints: r.hints,
  };
}

// ---- routes ----

export function codesRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  const everyone = ["regulator", "manufacturer", "distributor", "pharmacy", "insurer"] as const;
  api.route(
    {
      method: "get",
      path: "/v1/codes/{code}",
      summary: "Scan a code: verdict, status, alerts, hints and the pack's story",
      description:
        "An unknown code is a 200 with verdict UNKNOWN (a suspected counterfeit). A case or pallet code answers " +
        "with its contents' counts by status. Pharmacies see custody only of what they hold or held.",
      tags: ["codes"],
      access: everyone,
      request: { params: codeParams },
      responses: { 200: { description: "The scan", schema: scanResultSchema } },
    },
    ({ params, caller, prefetched }) => scanCode(ctx, caller!, params.code, "/v1/codes/{code}", prefetched),
    { prefetch: (req: Request) => prefetchScan(ctx, req) },
  );
  api.route(
    {
      method: "post",
      path: "/v1/codes/verify",
      summary: "Verify up to 1,000 codes at once (a carton at goods receipt)",
      description: "One result per code, in input order; a code that cannot be read is a result with its error.",
      tags: ["codes"],
      access: everyone,
      request: { body: verifyBodySchema },
      responses: { 200: { description: "One result per code", schema: verifyResponseSchema } },
    },
    async ({ body, caller }) => {
      const results = await Promise.all(
        body.codes.map(async (code) => {
          try {
            return await scanCode(ctx, caller!, code, "/v1/codes/verify");
          } catch (err) {
            const error = toApiError(err);
            if (error.type !== "invalid-code") throw err;
            return { code: echo(code.trim()), error: error.problem() };
          }
        }),
      );
      return { results };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/public/codes/{code}",
      summary: "The patient's check: genuine or not, product, expiry, recall, sale count",
      description: "No API key; rate-limited per client address; no commercial data.",
      tags: ["public"],
      access: "public",
      request: { params: codeParams },
      responses: { 200: { description: "The check", schema: publicResultSchema } },
    },
    ({ params, prefetched }) => publicCheck(ctx, params.code, prefetched),
    { prefetch: (req: Request) => prefetchScan(ctx, req) },
  );
  return api.router;
}
