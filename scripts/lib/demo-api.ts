/**
 * The API beside `npm start`'s chain, Redis and indexer, with a demo API key for each demo organisation (the
 * deployer, who is the first regulator, and the participants scripts/lib/demo.ts onboards, in its account order).
 */
import { loadAlertSettings } from "../../backend/alerts";
import { loadClaimSettings } from "../../backend/api/claims-config";
import { loadCommissionSettings } from "../../backend/api/commissioning";
import { connectApi, serveApi, type RunningApi } from "../../backend/api/service";
import type { Config } from "../../backend/config/env";
import { createLogger } from "../../backend/log";

const DEMO_ROLES = ["regulator", "manufacturer", "distributor", "pharmacy", "otherPharmacy", "insurer"];

async function accounts(rpcUrl: string): Promise<string[]> {
  const res = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_accounts", params: [] }),
  });
  return ((await res.json()) as { result: string[] }).result;
}

export async function startDemoApi(config: Config): Promise<{ url: string; close(): Promise<void> }> {
  const apiConfig = { ...config, ...loadAlertSettings(), ...loadClaimSettings(), ...loadCommissionSettings() };
  const ctx = await connectApi(apiConfig, createLogger(config.LOG_LEVEL, "api"));
  const api: RunningApi = await serveApi(ctx, config.API_HOST, config.API_PORT);
  const demoKeys: Record<string, string> = {};
  const list = await accounts(config.RPC_URL);
  for (const [i, role] of DEMO_ROLES.entries())
    if (list[i]) demoKeys[role] = (await ctx.keys.issue(list[i]!, `demo ${role}`)).key;
  console.log(JSON.stringify({ msg: "API listening", url: api.url, docs: `${api.url}/docs`, demoKeys }));
  return {
    url: api.url,
    async close() {
      await api.close();
      ctx.rpc.destroy();
      ctx.redis.disconnect();
    },
  };
}
