/**
 * The pages' build: one HTML entry per page, bundled with their TypeScript, the barcode-detector polyfill and
 * zxing's reader .wasm into dist/web (served by backend/api/pages.ts). Nothing is loaded from a CDN.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const pages = ["index", "counter", "insurer", "manufacturer", "regulator"];

export default defineConfig({
  root: here,
  base: "/",
  publicDir: false,
  build: {
    outDir: resolve(here, "../dist/web"),
    emptyOutDir: true,
    // The wasm is fetched by URL (zxing's locateFile), never inlined: CSP and caching both want a file.
    assetsInlineLimit: 0,
    // bwip-js (~930 kB) is one lazily loaded chunk, fetched only when a label sheet is drawn.
    chunkSizeWarningLimit: 1000,
    rollupOptions: { input: Object.fromEntries(pages.map((p) => [p, resolve(here, `${p}.html`)])) },
  },
});
