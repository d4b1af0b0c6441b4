import express, { type Express } from "express";

/** bench:api's baseline: a bare Express 5 route returning a constant JSON. */
export function bareExpress(): Express {
  const bare = express();
  bare.get("/bare", (_req, res) => {
    res.json({ ok: true, service: "bare express" });
  });
  return bare;
}
