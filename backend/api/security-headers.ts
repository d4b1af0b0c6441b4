/**
 * helmet's security headers, computed once. With the policy we use none of them depends on the request, yet the
 * helmet middleware rebuilds and re-validates them on every request; here its output is captured at start-up
 * (by running it once against a recording response) and replayed.
 */
import type { Request, RequestHandler, Response } from "express";
import helmet, { type HelmetOptions } from "helmet";

export function securityHeaders(options?: HelmetOptions): RequestHandler {
  const set: [string, string | number | readonly string[]][] = [];
  const removed: string[] = [];
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => void set.push([name, value]),
    removeHeader: (name: string) => void removed.push(name),
  };
  let finished = false;
  helmet(options)({} as Request, recorder as unknown as Response, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    finished = true;
  });
  // Should a helmet release ever do asynchronous work or read the request, capturing would be wrong: refuse.
  if (!finished || set.length === 0) throw new Error("helmet's headers could not be captured at start-up");
  return (_req, res, next) => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}
