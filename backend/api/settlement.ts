import type { Router } from "express";
import type { ApiContext } from "./context";
import { ApiRouter } from "./openapi";

export function settlementRoutes(ctx: ApiContext): Router {
  return new ApiRouter(ctx).router;
}
