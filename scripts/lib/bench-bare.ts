import express, { type Express } from "express";
import { callerOf, keyFromHeader } from "../../backend/api/auth";
import { scanCode } from "../../backend/api/codes";
import type { ApiContext, Caller } from "../../backend/api/context";

/**
 * bench:api's baselines, in one bare Express 5 app (no middleware): `/bare` returns a constant JSON; with a
 * context, `/floor/{code}` does a scan's own work (the index's checkpoint, the code's parse and reads, the
 * verdict, its alerts and JSON) and nothing else: no security headers, request log, metrics, rate limits or
 * authentication (the caller is resolved once, from the first request's key). What `/floor` leaves of the bare
 * route's throughput bounds what the full scan can reach, whatever the service's middleware costs.
 */
export function bareExpress(ctx?: ApiContext): Express {
  const bare = express();
  bare.get("/bare", (_req, res) => {
    res.json({ ok: true, service: "bare express" });
  });
  if (ctx) {
    let caller: Promise<Caller> | undefined;
    bare.get("/floor/:code", async (req, res, next) => {
      try {
        caller ??= callerOf(ctx, keyFromHeader(req.headers.authorization) ?? "");
        const [who] = await Promise.all([caller, ctx.reader.sync()]);
        res.json(await scanCode(ctx, who, req.params.code, "/v1/codes/{code}"));
      } catch (err) {
        next(err);
      }
    });
  }
  return bare;
}
