/**
 * Placeholder (W1) until W2's registry routes land: app.ts mounts `registryRoutes(ctx)`.
 */
import type { Router } from "express";
import type { ApiContext } from "./context";
import { ApiRouter } from "./openapi";

export function registryRoutes(ctx: ApiContext): Router {
  return new ApiRouter(ctx).router;
}
