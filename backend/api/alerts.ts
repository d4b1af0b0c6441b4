/**
 * Alert routes: list (a regulator all, a manufacturer those about its products, any other organisation its own),
 * read, move through the investigation, add notes. Visibility is the alert store's: an alert another
 * organisation cannot see is "not found", never "forbidden", so ids reveal nothing.
 */
import type { Router } from "express";
import { z } from "zod";
import { ALERT_CLASSES, ALERT_SOURCES, ALERT_STATUSES, AlertError, type AlertScope, CLOSE_REASONS } from "../alerts";
import { ID_PATTERN } from "../alerts/keys";
import { CodeFormatError, parseCode } from "../codes/parse";
import type { ApiContext, Caller } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";

const actorSchema = z.object({
  keyId: z.string(),
  name: z.string().optional(),
  account: z.string().nullable().optional(),
  participantId: z.number().int().nullable(),
  role: z.string(),
});

const historyEntrySchema = z.object({
  at: z.string().datetime(),
  by: actorSchema.omit({ account: true }),
  action: z.enum(["raised", "transition", "note"]),
  from: z.enum(ALERT_STATUSES).optional(),
  to: z.enum(ALERT_STATUSES).optional(),
  reason: z.enum(CLOSE_REASONS).optional(),
  note: z.string().optional(),
});

export const alertSchema = z
  .object({
    id: z.string().regex(ID_PATTERN),
    status: z.enum(ALERT_STATUSES),
    source: z.enum(ALERT_SOURCES),
    reason: z.string().openapi({ example: "UNKNOWN_CODE" }),
    class: z.enum(ALERT_CLASSES).openapi({ description: "Triage: where to look first" }),
    triageBasis: z.string().openapi({ description: "hint:<HINT>, repeated:<failures of the key>, or reason" }),
    euCode: z.enum(["A2", "A3", "A7", "A24", "A52", "A68"]).nullable().openapi({
      description: "The EU national systems' alert code, where one fits",
    }),
    code: z.object({ raw: z.string(), normalised: z.string().nullable(), productCode: z.string().optional() }),
    hints: z.array(z.string()),
    reporter: actorSchema,
    participants: z.array(z.number().int()),
    manufacturerId: z.number().int().nullable(),
    snapshot: z.record(z.unknown()).nullable().openapi({ description: "The answer at that moment, compact" }),
    firstSeen: z.string().datetime(),
    lastSeen: z.string().datetime(),
    count: z.number().int().openapi({ description: "Occurrences within the de-dup window" }),
    closeReason: z.enum(CLOSE_REASONS).nullable(),
    history: z.array(historyEntrySchema),
  })
  .openapi("Alert");

const instant = z
  .string()
  .datetime({ offset: true })
  .transform((t) => Date.parse(t));

const listQuery = z.object({
  status: z.enum(ALERT_STATUSES).optional(),
  class: z.enum(ALERT_CLASSES).optional(),
  source: z.enum(ALERT_SOURCES).optional().openapi({ description: "e.g. supply: shortage and flow alerts" }),
  reason: z
    .string()
    .regex(/^[A-Z0-9_]{2,40}$/)
    .optional(),
  code: z.string().min(1).max(500).optional().openapi({ description: "A code as scanned; matches its parsed form" }),
  since: instant.optional().openapi({ description: "ISO-8601, inclusive" }),
  until: instant.optional(),
  org: z.coerce.number().int().positive().optional().openapi({ description: "Regulator: one organisation's alerts" }),
  manufacturer: z.coerce.number().int().positive().optional().openapi({
    description: "Regulator: alerts about one manufacturer's products",
  }),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(ID_PATTERN).optional().openapi({ description: "`next` of the previous page" }),
});

const idParams = z.object({ id: z.string().max(40) });

const transitionBody = z
  .object({
    to: z.enum(ALERT_STATUSES),
    reason: z.enum(CLOSE_REASONS).optional().openapi({ description: "Required when closing" }),
    note: z.string().max(2000).optional(),
  })
  .openapi("AlertTransition");

const noteBody = z.object({ note: z.string().min(1).max(2000) }).openapi("AlertNote");

/** Which alerts a caller may list. */
function scopeOf(caller: Caller, query: z.infer<typeof listQuery>): AlertScope {
  if (caller.role === "regulator") {
    if (query.org && query.manufacturer) throw problems.validation("filter by org or by manufacturer, not both");
    if (query.org) return { kind: "org", participantId: query.org };
    if (query.manufacturer) return { kind: "manufacturer", manufacturerId: query.manufacturer };
    return { kind: "all" };
  }
  if (query.org || query.manufacturer) throw problems.forbidden("only a regulator lists other organisations' alerts");
  if (caller.participantId === null) throw problems.forbidden("the key's account is not an onboarded organisation");
  // An organisation's index holds the alerts it reported, those that concern it and, for a manufacturer, those
  // about its products.
  return { kind: "org", participantId: caller.participantId };
}

/** A code filter matches what the store indexed: the parsed form, or the text when it does not parse. */
function codeKey(code: string): string {
  try {
    return parseCode(code).normalised;
  } catch (err) {
    if (err instanceof CodeFormatError) return code.trim();
    throw err;
  }
}

function toApiError(err: unknown): unknown {
  if (!(err instanceof AlertError)) return err;
  if (err.kind === "not-found") return problems.notFound(err.message);
  if (err.kind === "forbidden") return problems.forbidden(err.message);
  // The alert's status travels as `alertStatus`: a problem's `status` is the HTTP status (RFC 9457).
  if (err.kind === "conflict") return problems.conflict(err.message, err.status ? { alertStatus: err.status } : {});
  return problems.validation(err.message);
}

async function mapped<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw toApiError(err);
  }
}

export function alertsRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "get",
      path: "/v1/alerts",
      summary: "List alerts, newest first",
      description:
        "A regulator sees every alert (optionally one organisation's or manufacturer's), a manufacturer those " +
        "about its products, any other organisation those it reported or that concern it. A page may hold fewer " +
        "than `limit` alerts when filters are sparse: follow `next` until it is null.",
      tags: ["alerts"],
      access: "any",
      request: { query: listQuery },
      responses: {
        200: {
          description: "A page of alerts",
          schema: z.object({ alerts: z.array(alertSchema), next: z.string().nullable() }).openapi("AlertPage"),
        },
      },
    },
    async ({ query, caller }) => {
      if (query.since !== undefined && query.until !== undefined && query.since > query.until)
        throw problems.validation("since is after until", "since");
      return mapped(
        ctx.alerts.list({
          scope: scopeOf(caller!, query),
          limit: query.limit,
          ...(query.status ? { status: query.status } : {}),
          ...(query.class ? { class: query.class } : {}),
          ...(query.source ? { source: query.source } : {}),
          ...(query.reason ? { reason: query.reason } : {}),
          ...(query.code ? { code: codeKey(query.code) } : {}),
          ...(query.since !== undefined ? { since: query.since } : {}),
          ...(query.until !== undefined ? { until: query.until } : {}),
          ...(query.cursor ? { cursor: query.cursor } : {}),
        }),
      );
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/alerts/{id}",
      summary: "One alert with its history",
      tags: ["alerts"],
      access: "any",
      request: { params: idParams },
      responses: { 200: { description: "The alert", schema: alertSchema } },
    },
    async ({ params, caller }) => {
      const alert = await ctx.alerts.get(params.id);
      if (!alert || !ctx.alerts.visibleTo(alert, caller!)) throw problems.notFound(`no alert ${params.id}`);
      return alert;
    },
  );
  api.route(
    {
      method: "post",
      path: "/v1/alerts/{id}/transitions",
      summary: "Move an alert through its investigation",
      description:
        "new → investigating → closed (a regulator may close a new alert at once, and reopen a closed one). The " +
        "organisation an alert concerns may take a new alert into investigation; only a regulator closes, with " +
        "a reason, because closing decides what happened. An invalid transition is a 409.",
      tags: ["alerts"],
      access: "any",
      request: { params: idParams, body: transitionBody },
      responses: { 200: { description: "The alert after the change", schema: alertSchema } },
    },
    async ({ params, body, caller }) => mapped(ctx.alerts.transition(params.id, body, caller!)),
  );
  api.route(
    {
      method: "post",
      path: "/v1/alerts/{id}/notes",
      summary: "Add a note to an alert's history",
      tags: ["alerts"],
      access: "any",
      request: { params: idParams, body: noteBody },
      responses: { 200: { description: "The alert with the note", schema: alertSchema } },
    },
    async ({ params, body, caller }) => mapped(ctx.alerts.addNote(params.id, body.note, caller!)),
  );
  return api.router;
}
