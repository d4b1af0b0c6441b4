/**
 * The API beside `npm start`'s chain, Redis and indexer, with a demo API key for each demo organisation (the
 * deployer, who is the first regulator, and the cast scripts/lib/seed.ts onboards, in its account order),
 * and, so that writes work, those organisations' signing keys: Hardhat's well-known development accounts, public
 * knowledge and worthless anywhere but a local chain — never given in production (Signers refuses dev keys there).
 */
import { HDNodeWallet } from "ethers";
import { loadAlertSettings } from "../../backend/alerts";
import { loadClaimSettings } from "../../backend/api/claims-config";
import { loadCommissionSettings } from "../../backend/api/commissioning";
import { connectApi, serveApi, type RunningApi } from "../../backend/api/service";
import { startSupplyEvaluation } from "../../backend/api/supply-alerts";
import { startWriteSweeper } from "../../backend/api/sweep";
import type { Config } from "../../backend/config/env";
import { createLogger } from "../../backend/log";
import { CAST, type Org } from "./seed";

/** Hardhat's default accounts: its published test mnemonic (`hardhat node` prints these keys itself). */
const HARDHAT_MNEMONIC = "test test test test test test test test test test test junk";
const HARDHAT_PATH = "m/44'/60'/0'/0";

/** The dev keys of the demo accounts the chain reports, where they are Hardhat's well-known ones. */
function demoSignerKeys(list: readonly string[]): string[] {
  return list.slice(0, CAST.length).flatMap((account, i) => {
    const wallet = HDNodeWallet.fromPhrase(HARDHAT_MNEMONIC, undefined, `${HARDHAT_PATH}/${i}`);
    return wallet.address.toLowerCase() === account.toLowerCase() ? [wallet.privateKey] : [];
  });
}

async function accounts(rpcUrl: string): Promise<string[]> {
  const res = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_accounts", params: [] }),
  });
  return ((await res.json()) as { result: string[] }).result;
}

export interface DemoApi {
  url: string;
  /** A demo API key and the account of each organisation of the cast. */
  keys: Record<Org, string>;
  accounts: Record<Org, string>;
  close(): Promise<void>;
}

export async function startDemoApi(config: Config): Promise<DemoApi> {
  const list = await accounts(config.RPC_URL);
  const devKeys = config.NODE_ENV === "production" ? [] : demoSignerKeys(list);
  const apiConfig = {
    ...config,
    SIGNER_DEV_KEYS: [...config.SIGNER_DEV_KEYS, ...devKeys],
    ...loadAlertSettings(),
    ...loadClaimSettings(),
    ...loadCommissionSettings(),
  };
  const ctx = await connectApi(apiConfig, createLogger(config.LOG_LEVEL, "api"));
  const api: RunningApi = await serveApi(ctx, config.API_HOST, config.API_PORT);
  const sweeper = startWriteSweeper(ctx);
  // Shortages, demand surges and expiry risk raised as supply alerts (one process evaluates each window).
  const supplyEvaluation = startSupplyEvaluation(ctx);
  if (list.length < CAST.length)
    throw new Error(`the chain has ${list.length} accounts; the demo needs ${CAST.length}`);
  const keys = {} as Record<Org, string>;
  const accountOf = {} as Record<Org, string>;
  for (const [i, org] of CAST.entries()) {
    accountOf[org] = list[i]!;
    keys[org] = (await ctx.keys.issue(list[i]!, `demo ${org}`)).key;
  }
  return {
    url: api.url,
    keys,
    accounts: accountOf,
    async close() {
      await api.close();
      await sweeper.stop();
      await supplyEvaluation.stop();
      ctx.rpc.destroy();
      ctx.redis.disconnect();
    },
  };
}
