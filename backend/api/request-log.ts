/**
 * Request ids and the request log line: a sent `X-Request-Id` is accepted (when it looks like an id) and echoed,
 * else one is made; when the response is done (its `close`, which Node emits once for every response, after it
 * finished or when its connection went first), one line at debug (2xx/3xx), info (4xx) or error (5xx). Nothing
 * is built for a level the logger has off, and the request's child logger (`req.log`, bound to the id and method)
 * is made only when something logs through it (a 5xx): pino-http made a child logger, serialising the request, on
 * every request (3% of a scan's CPU in the bench's profile). One listener per request, never removed: adding and
 * removing two (finish and close) cost ~4 µs of a request's CPU more.
 */
import { randomUUID } from "node:crypto";
import type { Express, RequestHandler } from "express";
import type { Logger } from "../log";

declare module "node:http" {
  interface IncomingMessage {
    /** The request id (X-Request-Id), set by {@link requestLog}. */
    id?: string;
    /** A logger bound to the request (its id and method), made when read. */
    log?: Logger;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Installs `req.log` (a getter on the app's request prototype, so that a request that logs nothing pays nothing)
 * and returns the middleware that sets the id and writes the line.
 */
export function requestLog(app: Express, log: Logger): RequestHandler {
  Object.defineProperty(app.request, "log", {
    configurable: true,
    get(this: Express["request"]) {
      return log.child({ req: { id: this.id, method: this.method } });
    },
  });
  return (req, res, next) => {
    const sent = req.headers["x-request-id"];
    const id = typeof sent === "string" && REQUEST_ID.test(sent) ? sent : randomUUID();
    req.id = id;
    res.setHeader("X-Request-Id", id);
    const started = Date.now();
    res.on("close", () => {
      const status = res.statusCode;
      const level = status >= 500 ? "error" : status >= 400 ? "info" : "debug";
      if (!log.isLevelEnabled(level)) return;
      const route = (res.locals.route as string | undefined) ?? "unmatched";
      log[level](
        // Codes travel in paths: log the route, not the URL (a pharmacy's scans are its business).
        { req: { id, method: req.method }, res: { statusCode: status }, responseTime: Date.now() - started, route },
        status >= 500 ? "request errored" : "request completed",
      );
    });
    next();
  };
}
