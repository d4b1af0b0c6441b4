/**
 * One helper declares a route: the same zod schemas validate its params, query and body, and generate its
 * OpenAPI 3.1 entry, and the same declaration says who may call it — so the document cannot drift from what the
 * service does. Each router remembers its declarations; app.ts gathers them into `/openapi.json` and `/docs`.
 */
import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import express, { type NextFunction, type Request, type Response, type Router } from "express";
import { z, type ZodType, type ZodTypeAny } from "zod";
import { callerOfRequest, keyFromHeader, requireRole } from "./auth";
import type { ApiContext, Caller, CallerRole } from "./context";
import { PROBLEM_CONTENT_TYPE } from "./errors";
import { limitsPassed, rateLimits, startKeyLimit, startLimit } from "./ratelimit";

extendZodWithOpenApi(z);

export const problemSchema = z
  .object({
    type: z.string().openapi({ example: "urn:drugtrace:problem:invalid-code" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    field: z.string().optional(),
    code: z.string().optional(),
  })
  .passthrough()
  .openapi("Problem", { description: "RFC 9457 problem details" });

/** Who may call a route: anyone (no key), any valid key, or keys of the listed roles. */
export type Access = "public" | "any" | readonly CallerRole[];

type Method = "get" | "post" | "put" | "patch" | "delete";

export interface RouteResponse {
  description: string;
  schema?: ZodTypeAny;
  /** Defaults to application/json. */
  contentType?: string;
}

export interface RouteSpec<
  P extends ZodTypeAny = ZodTypeAny,
  Q extends ZodTypeAny = ZodTypeAny,
  B extends ZodTypeAny = ZodTypeAny,
> {
  method: Method;
  /** OpenAPI form, from the root: `/v1/codes/{code}`. */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  access: Access;
  /** Operational routes (health, metrics): no index sync and no rate limit, so that probes always get an answer. */
  operational?: boolean;
  request?: { params?: P; query?: Q; body?: B };
  responses: Record<number, RouteResponse>;
}

export interface RouteInput<P, Q, B, F = undefined> {
  params: P;
  query: Q;
  body: B;
  /** What the route's `prefetch` started (see {@link RouteOptions}). */
  prefetched: F;
  /** The authenticated caller; null on public routes. */
  caller: Caller | null;
  req: Request;
  res: Response;
}

/** A handler returns the 200 body (sent as JSON), or undefined when it wrote the response itself. */
export type RouteHandler<P, Q, B, F = undefined> = (input: RouteInput<P, Q, B, F>) => Promise<unknown> | unknown;

export interface RouteOptions<F> {
  /**
   * Reads that need neither the caller nor the cached records (a code's lookup), started as the request arrives
   * so that they share the round trip of the checkpoint read and the rate limits; the handler gets what it
   * returned (a promise) as `prefetched`. It gets the raw request, before authentication, and — on a route
   * with a body schema — the body as that schema parsed it (undefined when the schema refused it; the parse is
   * the handler's too, made once): it must only read, and must not throw for bad input (the handler's
   * validation answers that).
   */
  prefetch?: (req: Request, body: unknown) => F;
}

const declared = new WeakMap<Router, RouteSpec[]>();

/**
 * Starts reading the index's checkpoint (app.ts calls it before the rate limiter, so that both share a round
 * trip); a route awaits the same read.
 */
export function startSync(ctx: ApiContext, res: Response): Promise<void> {
  const started = res.locals.sync as Promise<void> | undefined;
  if (started) return started;
  const sync = ctx.reader.sync();
  sync.catch(() => undefined); // awaited by the route; a request the limiter refuses never awaits it
  res.locals.sync = sync;
  return sync;
}

/** The route declarations of a router made with {@link ApiRouter}. */
export const routeSpecs = (router: Router): RouteSpec[] => declared.get(router) ?? [];

/** The body as its schema parses it: the parse made for the route's prefetch, else made here. Throws ZodError. */
function parsedBody(schema: ZodTypeAny, req: Request, res: Response): unknown {
  const early = res.locals.parsedBody as z.SafeParseReturnType<unknown, unknown> | undefined;
  if (!early) return schema.parse(req.body);
  if (early.success) return early.data;
  throw early.error;
}

const expressPath = (path: string): string => path.replace(/\{(\w+)\}/g, ":$1");

/**
 * A route's first step: the index's checkpoint first, so that cached records are never older than it (a
 * suspension, a recall or a dispensing indexed since the last request is seen at once). The rate limits' counts
 * (the per-key one when the key was verified lately) and the route's prefetch travel in the same round trip;
 * nothing goes on before every count passed.
 */
async function startRoute<F>(
  ctx: ApiContext,
  spec: RouteSpec,
  options: RouteOptions<F>,
  req: Request,
  res: Response,
): Promise<void> {
  const sync = startSync(ctx, res);
  if (spec.access === "public") startLimit(rateLimits(ctx).publicPerAddress, req, res);
  else {
    const key = keyFromHeader(req.headers.authorization);
    const known = key ? ctx.keys.remembered(key) : undefined;
    if (known) {
      res.locals.verifiedKey = known;
      startKeyLimit(ctx, known.keyId, req, res);
    }
  }
  if (options.prefetch) {
    let body: unknown;
    if (spec.request?.body) {
      const parsed = spec.request.body.safeParse(req.body);
      res.locals.parsedBody = parsed;
      if (parsed.success) body = parsed.data;
    }
    const prefetched = options.prefetch(req, body);
    if (prefetched instanceof Promise) prefetched.catch(() => undefined); // the handler awaits it
    res.locals.prefetched = prefetched;
  }
  await sync;
  await limitsPassed(res);
}

export class ApiRouter {
  readonly router: Router = express.Router();
  private readonly specs: RouteSpec[] = [];

  constructor(private readonly ctx: ApiContext) {
    declared.set(this.router, this.specs);
  }

  route<P extends ZodTypeAny, Q extends ZodTypeAny, B extends ZodTypeAny, F = undefined>(
    spec: RouteSpec<P, Q, B>,
    handler: RouteHandler<z.infer<P>, z.infer<Q>, z.infer<B>, NoInfer<F>>,
    options: RouteOptions<F> = {},
  ): this {
    this.specs.push(spec as unknown as RouteSpec);
    const ctx = this.ctx;
    // One handler does the route's steps in turn: one layer for the router to dispatch, not one per step.
    const handle = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
      res.locals.route = spec.path;
      try {
        if (!spec.operational) await startRoute(ctx, spec, options, req, res);
        let caller: Caller | null = null;
        if (spec.access !== "public") {
          caller = await callerOfRequest(ctx, req, res);
          res.locals.caller = caller;
          if (res.locals.limitedKeyId === undefined) {
            startKeyLimit(ctx, caller.keyId, req, res);
            await limitsPassed(res);
          }
          if (Array.isArray(spec.access)) requireRole(caller, spec.access);
        }
        const input: RouteInput<z.infer<P>, z.infer<Q>, z.infer<B>, F> = {
          params: spec.request?.params ? spec.request.params.parse(req.params) : req.params,
          query: spec.request?.query ? spec.request.query.parse(req.query) : req.query,
          body: spec.request?.body ? parsedBody(spec.request.body, req, res) : undefined,
          prefetched: res.locals.prefetched as F,
          caller,
          req,
          res,
        };
        const body = await handler(input);
        if (body !== undefined && !res.headersSent) res.json(body);
      } catch (err) {
        next(err);
      }
    };
    this.router[spec.method](expressPath(spec.path), handle);
    return this;
  }
}

/**
 * A problem+json response of a route's own (beside the standard errors every route has); `schema` when the
 * problem carries members of its own beside the standard ones.
 */
export const problemResponse = (description: string, schema: ZodTypeAny = problemSchema): RouteResponse => ({
  description,
  schema,
  contentType: PROBLEM_CONTENT_TYPE,
});

/** Responses every route can give, by access. */
function standardErrors(spec: RouteSpec): Record<number, RouteResponse> {
  const errors: Record<number, RouteResponse> = {
    429: problemResponse("Rate limit exceeded"),
    503: problemResponse("Redis or the chain node is not answering"),
  };
  if (spec.request?.params || spec.request?.query || spec.request?.body)
    errors[400] = problemResponse("Invalid request");
  if (spec.request?.body) {
    errors[413] = problemResponse("Body larger than the limit");
    errors[415] = problemResponse("Body is not application/json");
  }
  if (spec.access !== "public") {
    errors[401] = problemResponse("No API key, or an invalid or revoked one");
    errors[403] = problemResponse("The key's organisation may not call this route, or is suspended on chain");
  }
  return errors;
}

/** The OpenAPI 3.1 document of every declared route. */
export function openApiDocument(specs: readonly RouteSpec[], info: { title: string; version: string }): object {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key issued with `npm run keys:issue` (HTTP Basic with the key as password also works).",
  });
  for (const spec of specs) {
    const responses: Record<string, { description: string; content?: Record<string, { schema: ZodType }> }> = {};
    for (const [status, r] of Object.entries({ ...standardErrors(spec), ...spec.responses })) {
      responses[status] = {
        description: r.description,
        ...(r.schema ? { content: { [r.contentType ?? "application/json"]: { schema: r.schema } } } : {}),
      };
    }
    const access =
      spec.access === "public"
        ? "No API key."
        : spec.access === "any"
          ? "Any API key."
          : `API keys of: ${spec.access.join(", ")}.`;
    registry.registerPath({
      method: spec.method,
      path: spec.path,
      summary: spec.summary,
      description: [spec.description, `Access: ${access}`].filter(Boolean).join("\n\n"),
      tags: spec.tags,
      ...(spec.access === "public" ? {} : { security: [{ [bearer.name]: [] }] }),
      request: {
        ...(spec.request?.params ? { params: spec.request.params as never } : {}),
        ...(spec.request?.query ? { query: spec.request.query as never } : {}),
        ...(spec.request?.body
          ? { body: { required: true, content: { "application/json": { schema: spec.request.body } } } }
          : {}),
      },
      responses,
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      ...info,
      description:
        "Scan-to-verify, claim check and alerts over the drug-traceability ledger's index. Every error is " +
        "application/problem+json (RFC 9457) with a stable `type` (urn:drugtrace:problem:<slug>).",
    },
  });
}
