/**
 * The web pages (built from web/ into dist/web by `npm run build:web`): `/` to sign in, `/counter`, `/insurer`,
 * `/manufacturer` and `/regulator`, and their bundles under `/assets/` (zxing's reader .wasm as application/wasm).
 * Helmet's content security policy stays on: the pages load scripts from us only and may compile WebAssembly
 * ('wasm-unsafe-eval', which lets no JavaScript be evaluated from strings).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import express, { type RequestHandler, type Router } from "express";
import helmet from "helmet";
import type { ApiContext } from "./context";
import { ApiError } from "./errors";
import { ApiRouter } from "./openapi";

export const PAGES = {
  "/": "index",
  "/counter": "counter",
  "/insurer": "insurer",
  "/manufacturer": "manufacturer",
  "/regulator": "regulator",
} as const;

export const WEB_DIR = resolve(__dirname, "../../dist/web");

const pagePolicy: RequestHandler = helmet.contentSecurityPolicy({
  directives: {
    scriptSrc: ["'self'", "'wasm-unsafe-eval'"],
    // Label sheets are drawn on canvases and camera frames never leave the page; no remote images.
    imgSrc: ["'self'", "data:", "blob:"],
    mediaSrc: ["'self'", "blob:"],
  },
});

/** The camera is ours to ask for (the counter's scan); nothing else the page could use is. */
const permissions: RequestHandler = (_req, res, next) => {
  res.setHeader("Permissions-Policy", "camera=(self), microphone=(), geolocation=()");
  next();
};

function notBuilt(dir: string): ApiError {
  return new ApiError(503, "unavailable", "Pages not built", `Run npm run build:web (no ${dir}).`);
}

export function pagesRoutes(ctx: ApiContext, dir = WEB_DIR): Router {
  const api = new ApiRouter(ctx);
  for (const [path, name] of Object.entries(PAGES))
    api.route(
      {
        method: "get",
        path,
        summary: `Web page: ${name === "index" ? "sign in" : name}`,
        tags: ["pages"],
        access: "public",
        operational: true,
        responses: { 200: { description: "HTML", contentType: "text/html" } },
      },
      ({ req, res }) =>
        new Promise<void>((done, fail) => {
          const file = resolve(dir, `${name}.html`);
          if (!existsSync(file)) return fail(notBuilt(dir));
          permissions(req, res, () =>
            pagePolicy(req, res, () =>
              res.sendFile(file, { headers: { "Cache-Control": "no-cache" } }, (err) => (err ? fail(err) : done())),
            ),
          );
        }),
    );
  // Bundles carry a content hash in their names: cache them for good. express.static sends .wasm as
  // application/wasm, which WebAssembly.instantiateStreaming requires.
  api.router.use(
    "/assets",
    express.static(resolve(dir, "assets"), { immutable: true, maxAge: "365d", index: false, fallthrough: true }),
  );
  return api.router;
}
