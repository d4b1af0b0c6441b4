/**
 * The service's one error type and the one place that turns errors into `application/problem+json` (RFC 9457).
 * 5xx bodies never carry internals: the request id (`instance`) lets an operator find the details in the logs.
 */
import type { ErrorRequestHandler, RequestHandler } from "express";
import { ZodError } from "zod";

export const PROBLEM_TYPE_PREFIX = "urn:drugtrace:problem:";
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export type ProblemSlug =
  | "invalid-code"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "method-not-allowed"
  | "rate-limited"
  | "payload-too-large"
  | "unsupported-media-type"
  | "invalid-json"
  | "validation"
  | "unavailable"
  | "conflict"
  | "internal"
  | "unknown-code"
  | "ledger-refused"
  | "no-signer"
  | "idempotency-mismatch"
  | "in-progress"
  | "beyond-retention";

/** What a problem may carry beside type, title, status, detail and instance: the offending field or code. */
export interface ProblemExtras {
  field?: string;
  code?: string;
  [key: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ProblemSlug,
    readonly title: string,
    readonly detail: string,
    readonly extras: ProblemExtras = {},
  ) {
    super(detail);
    this.name = "ApiError";
  }

  /** The problem document, without `instance` (the request id is added where the response is written). */
  problem(): Record<string, unknown> {
    // RFC 9457's members come last, so that no extra can overwrite them.
    return {
      ...this.extras,
      type: PROBLEM_TYPE_PREFIX + this.type,
      title: this.title,
      status: this.status,
      detail: this.detail,
    };
  }
}

/** Codes are echoed back so a person can see what the scanner sent; a 10 kB paste is echoed in part. */
const ECHO_MAX = 120;
export const echo = (text: string): string => (text.length > ECHO_MAX ? `${text.slice(0, ECHO_MAX)}…` : text);

export const problems = {
  invalidCode: (detail: string, code: string, field = "code") =>
    new ApiError(400, "invalid-code", "Code cannot be read", detail, { field, code: echo(code) }),
  validation: (detail: string, field?: string) =>
    new ApiError(400, "validation", "Request is not valid", detail, field !== undefined ? { field } : {}),
  unauthorized: (detail: string) => new ApiError(401, "unauthorized", "API key required", detail),
  forbidden: (detail: string) => new ApiError(403, "forbidden", "Not allowed", detail),
  notFound: (detail: string, extras: ProblemExtras = {}) => new ApiError(404, "not-found", "Not found", detail, extras),
  conflict: (detail: string, extras: ProblemExtras = {}) => new ApiError(409, "conflict", "Conflict", detail, extras),
  /** A day older than the index's daily rings keep (SUPPLY_DAILY_RETENTION_DAYS): no figures rather than wrong ones. */
  beyondRetention: (detail: string, extras: ProblemExtras & { retentionDays: number; oldestDayKept: string }) =>
    new ApiError(422, "beyond-retention", "Beyond the days the index keeps", detail, extras),
  rateLimited: (detail: string) => new ApiError(429, "rate-limited", "Too many requests", detail),
  unavailable: (detail: string) => new ApiError(503, "unavailable", "Service unavailable", detail),
  internal: () =>
    new ApiError(500, "internal", "Internal error", "The request failed; the request id names it in the logs."),
};

/** Redis or the chain node not answering (ioredis and fetch errors): a 503, the client may retry. */
function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const text = `${err.name} ${err.message}`;
  return /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Command timed out|MaxRetriesPerRequest|Stream isn't writeable|enableOfflineQueue|CLUSTERDOWN|ClusterAllFailed|Failed to refresh slots|LOADING|fetch failed/i.test(
    text,
  );
}

interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

/** Maps anything thrown into an ApiError: ours, zod's, body-parser's, Redis being away, or a bug. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ZodError) {
    const issue = err.issues[0]!;
    const field = issue.path.join(".");
    return problems.validation(field ? `${field}: ${issue.message}` : issue.message, field || undefined);
  }
  const parserType = (err as BodyParserError | null)?.type;
  if (parserType === "entity.too.large")
    return new ApiError(413, "payload-too-large", "Request body too large", (err as Error).message);
  if (parserType === "entity.parse.failed")
    return new ApiError(400, "invalid-json", "Request body is not valid JSON", (err as Error).message);
  if (parserType === "encoding.unsupported" || parserType === "charset.unsupported")
    return new ApiError(415, "unsupported-media-type", "Unsupported content encoding", (err as Error).message);
  if (parserType === "request.aborted" || parserType === "request.size.invalid")
    return problems.validation((err as Error).message);
  if (isUnavailable(err))
    return problems.unavailable("The index store or the chain node is not answering; retry shortly.");
  return problems.internal();
}

export function sendProblem(res: Parameters<RequestHandler>[1], error: ApiError, requestId?: string): void {
  res
    .status(error.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify({ ...error.problem(), ...(requestId ? { instance: `urn:request:${requestId}` } : {}) }));
}

/** The last middleware: every error becomes problem+json; 5xx are logged with their cause, never sent. */
export const problemHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const error = toApiError(err);
  if (error.status >= 500) req.log?.error({ err }, "request failed");
  if (res.headersSent) {
    res.end();
    return;
  }
  if (error.status === 503) res.setHeader("Retry-After", "5");
  sendProblem(res, error, String(req.id ?? ""));
};

export const notFoundHandler: RequestHandler = (req) => {
  throw problems.notFound(`No route ${req.method} ${echo(req.path)}`);
};
