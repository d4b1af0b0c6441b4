/**
 * Placeholder (W1) until W2's commissioning routes land: app.ts mounts `commissioningRoutes(ctx)`.
 */
import type { Router } from "express";
import type { ApiContext } from "./context";
import { ApiRouter } from "./openapi";

export function commissioningRoutes(ctx: ApiContext): Router {
  return new ApiRouter(ctx).router;
}
