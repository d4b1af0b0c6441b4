/**
 * The HTTP service: security headers, request ids and logs, metrics, limits, the routers, the OpenAPI document
 * and its docs page, and problem+json for everything that goes wrong.
 */
import cors from "cors";
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
  type Router,
} from "express";
import { alertsRoutes } from "./alerts";
import { claimsRoutes } from "./claims";
import { codesRoutes } from "./codes";
import { commissioningRoutes, commissionUploadParser } from "./commissioning";
import { custodyRoutes } from "./custody";
import { dispensingRoutes } from "./dispensing";
import { registryRoutes } from "./registry";
import { settlementRoutes } from "./settlement";
import { transactionRoutes } from "./transactions";
import type { ApiContext } from "./context";
import { dashboardRoutes } from "./dashboards";
import { supplyRoutes } from "./supply";
import { docsPage } from "./docs";
import { ApiError, notFoundHandler, problemHandler } from "./errors";
import { healthRoutes } from "./health";
import { lmsRoutes } from "./lms";
import { pagesRoutes } from "./pages";
import { ApiRouter, openApiDocument, routeSpecs, startSync, type RouteSpec } from "./openapi";
import { limitsPassed, rateLimits, startLimit } from "./ratelimit";
import { requestLog } from "./request-log";
import { securityHeaders } from "./security-headers";

/** "false", "true", a hop count or a list of addresses, as Express's "trust proxy" takes them. */
function trustProxy(setting: string): boolean | number | string {
  if (setting === "true" || setting === "false") return setting === "true";
  return /^\d+$/.test(setting) ? Number(setting) : setting;
}

const hasBody = (req: Request): boolean =>
  req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;

/**
 * Whether the body parsers have anything to read, an empty body included: they read `Content-Length: 0` (what
 * fetch and Node send on a POST without a body) as {} or "" by its type, and routes see that, not undefined.
 */
const sendsBody = (req: Request): boolean =>
  req.headers["transfer-encoding"] !== undefined || req.headers["content-length"] !== undefined;

/** A body on anything but JSON is refused with 415 (a form post or text/plain never reaches a route as {}). */
const jsonOnly: RequestHandler = (req, _res, next) => {
  // A body already read (a commissioning upload, by its own parser) is no business of this check.
  if (req.body !== undefined) return next();
  if (hasBody(req) && !req.is("application/json"))
    return next(
      new ApiError(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        `Send the body as application/json, not ${req.headers["content-type"] ?? "no content type"}.`,
      ),
    );
  next();
};

/** A path's first two segments, lowercased as Express matches them ("/v1/codes"); null if either is not literal. */
function prefixOf(path: string): string | null {
  const [, first, second] = path.toLowerCase().split("/", 3);
  const literal = (segment: string | undefined) => segment !== undefined && /^[\w.~-]+$/.test(segment);
  return literal(first) && literal(second) ? `/${first}/${second}` : null;
}

/**
 * The routers' routes, dispatched by their path's first two segments: a request walks only the routes that can
 * match it ("/v1/claims/check" is not matched against the forty routes declared before it), in their declared
 * order. A route whose first segments are not literal is kept in every group, in its place. The routers hold
 * routes only (no router-level middleware, no `next("router")`), so this changes no answer.
 */
function routeTable(routers: readonly Router[]): RequestHandler & Pick<Router, "stack"> {
  const layers = routers.flatMap((router) => router.stack);
  const layerPrefix = (layer: (typeof layers)[number]) => prefixOf(String(layer.route?.path ?? ""));
  const anyPrefix = express.Router();
  anyPrefix.stack.push(...layers.filter((layer) => layerPrefix(layer) === null));
  const groups = new Map<string, Router>();
  for (const prefix of new Set(layers.map(layerPrefix))) {
    if (prefix === null) continue;
    const group = express.Router();
    group.stack.push(...layers.filter((layer) => [prefix, null].includes(layerPrefix(layer))));
    groups.set(prefix, group);
  }
  const dispatch: RequestHandler = (req, res, next) =>
    (groups.get(prefixOf(req.path) ?? "") ?? anyPrefix)(req, res, next);
  // Every route it serves, as a router lists them: what walks the app's routes (the documentation test) sees them.
  return Object.assign(dispatch, { stack: layers });
}

/**
 * What every /v1 request passes first, in one layer (a mounted layer per step cost each request a cut and a
 * restore of its URL): the checkpoint read and the per-address count start together (one round trip), and the
 * route's own counts and first reads join them (ApiRouter): a route awaits them all before it authenticates, and
 * every error waits for them (below). A body is read only once the count passed: a commissioning upload (JSON or
 * text/csv, up to COMMISSION_BODY_LIMIT) by its own parser, anything else as JSON only.
 */
function v1Entry(ctx: ApiContext): RequestHandler {
  const perAddress = rateLimits(ctx).perAddress;
  const commissionUpload = commissionUploadParser(ctx);
  const json = express.json({ limit: ctx.config.API_BODY_LIMIT, strict: true });
  const readBody: RequestHandler = (req, res, next) =>
    commissionUpload(req, res, (err?: unknown) => {
      if (err) return next(err);
      jsonOnly(req, res, (refused?: unknown) => (refused ? next(refused) : json(req, res, next)));
    });
  return (req, res, next) => {
    void startSync(ctx, res);
    startLimit(perAddress, req, res);
    if (!sendsBody(req)) return next();
    limitsPassed(res).then(() => readBody(req, res, next), next);
  };
}

export interface ApiApp {
  app: Express;
  specs: RouteSpec[];
  document: object;
}

export function createApp(ctx: ApiContext): ApiApp {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", trustProxy(ctx.config.API_TRUST_PROXY));
  app.set("query parser", "simple");
  // Answers are reads of a moving index, never revalidated by clients: hashing every body for an ETag is waste.
  app.set("etag", false);
  app.use(requestLog(app, ctx.log));
  app.use(securityHeaders());
  if (ctx.config.API_CORS_ORIGINS.length > 0) app.use(cors({ origin: ctx.config.API_CORS_ORIGINS }));
  app.use(ctx.metrics.middleware());

  const routers: Router[] = [healthRoutes(ctx), pagesRoutes(ctx)];
  const v1: Router[] = [
    codesRoutes(ctx),
    dashboardRoutes(ctx),
    supplyRoutes(ctx),
    claimsRoutes(ctx),
    alertsRoutes(ctx),
    lmsRoutes(ctx),
    // Writes: custody, dispensing, claims and settlement (W1); registry and commissioning (W2).
    custodyRoutes(ctx),
    dispensingRoutes(ctx),
    settlementRoutes(ctx),
    transactionRoutes(ctx),
    registryRoutes(ctx),
    commissioningRoutes(ctx),
  ];
  app.use("/v1", v1Entry(ctx));
  app.use(routeTable(v1));
  // Health, metrics and the pages after the API: no path of theirs starts with /v1, and so the API's requests,
  // nearly all the traffic, are not matched against their routes first.
  app.use(routers);

  // The document describes itself too: its two routes are declared like every other.
  let document: object = {};
  let docs = "";
  const self = new ApiRouter(ctx)
    .route(
      {
        method: "get",
        path: "/openapi.json",
        summary: "This document (OpenAPI 3.1)",
        tags: ["operations"],
        access: "public",
        operational: true,
        responses: { 200: { description: "The OpenAPI document" } },
      },
      () => document,
    )
    .route(
      {
        method: "get",
        path: "/docs",
        summary: "This document as a web page",
        tags: ["operations"],
        access: "public",
        operational: true,
        responses: { 200: { description: "HTML", contentType: "text/html" } },
      },
      ({ res }) => void res.type("html").send(docs),
    ).router;
  app.use(self);
  const specs = [...routers, ...v1, self].flatMap(routeSpecs);
  document = openApiDocument(specs, { title: "Drug traceability ledger API", version: "1.0.0" });
  docs = docsPage(document);
  app.use(notFoundHandler);
  // A refused count answers 429 whatever else went wrong, as it would had it been awaited first.
  const afterLimits: ErrorRequestHandler = (err, req, res, next) => {
    limitsPassed(res).then(
      () => problemHandler(err, req, res, next),
      (refusal: unknown) => problemHandler(refusal, req, res, next),
    );
  };
  app.use(afterLimits);
  return { app, specs, document };
}
