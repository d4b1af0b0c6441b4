/**
 * The API under test: a real redis-server, the every-event scenario (plus the states a scan must tell apart:
 * recalled, expired, in transit, GS1 codes with letters, codes copied into another product's run) indexed from
 * the in-process Hardhat network, and the app on a free loopback port, with an API key for every kind of caller.
 */
import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { loadAlertSettings } from "../../backend/alerts";
import { loadClaimSettings } from "../../backend/api/claims-config";
import { loadCommissionSettings } from "../../backend/api/commissioning";
import type { ApiConfig, ApiContext } from "../../backend/api/context";
import { apiContext, serveApi, type RunningApi } from "../../backend/api/service";
import { LedgerChain } from "../../backend/chain/client";
import { buildRun, demoRunCodes } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";
import { loadConfig } from "../../backend/config/env";
import { connectRedis, type RedisClient } from "../../backend/store/redis";
import { startRedis, type RedisServer } from "../../scripts/lib/redis-server";
import { checkAgainstSchema, declareRoutes } from "./api-schemas";
import { newIndexer, startRpcServer, testLog, type TestIndexer } from "./indexer";
import { DAY, idOf, newId, packRefs, palletRef, ship } from "./ledger";
import { everyEventScenario, type Scenario } from "./scenario";

export const GTIN = "04012345678901";
export const OTHER_PRODUCT = "8654321";
/** The maker's GS1 company prefix covering GTIN. */
const GTIN_PREFIX = "GS1:4012345";

export interface ApiScenario extends Scenario {
  /** Codes by what a scan of them must say (as a scanner sends them: no `CN:` prefix). */
  codes: {
    dispensedAndSettled: string;
    dispensedNotSettled: string;
    inPharmacyStock: string;
    partiallyDispensed: string;
    atDistributor: string;
    decommissioned: string;
    inTransit: string;
    recalled: string;
    expired: string;
    gs1: string;
    gs1CaseSwapped: string;
    /** A product-1 code commissioned only in the other maker's product run: never the answer. */
    onlyInOtherProduct: string;
    /** A product-1 code mined first in the other maker's run, then in the maker's own: resolves to the latter. */
    otherProductFirst: string;
    case0: string;
    pallet0: string;
    pallet1: string;
    unknown: string;
  };
  otherMakerRunId: number;
  makerCopyRunId: number;
  transitShipmentId: bigint;
}

export interface ApiHarness {
  s: ApiScenario;
  ctx: ApiContext;
  api: RunningApi;
  url: string;
  /** The chain's JSON-RPC URL, for child processes. */
  rpcUrl: string;
  redis: RedisClient;
  redisServer: RedisServer;
  indexer: TestIndexer;
  /** API keys by caller. */
  keys: Record<KeyHolder, string>;
  /** Indexes what the chain did since (call after changing the ledger in a test). */
  reindex(): Promise<void>;
  close(): Promise<void>;
}

export type KeyHolder =
  | "regulator"
  | "maker"
  | "otherMaker"
  | "distributor"
  | "pharmacy"
  | "otherPharmacy"
  | "insurer"
  | "otherInsurer"
  | "outsider";

const cn = (normalised: string): string => normalised.replace(/^CN:/, "");

async function commission(
  s: Scenario,
  who: HardhatEthersSigner,
  batchId: bigint | number,
  codes: string[],
  shape: RunShape,
): Promise<number> {
  const run = buildRun(codes, shape);
  const receipt = await (
    await s.ledger
      .connect(who)
      .commission(batchId, shape.unitCount, shape.unitsPerCase, shape.casesPerPallet, run.codes, run.witness)
  ).wait();
  const event = receipt!.logs.map((l) => s.ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned");
  return Number(event!.args.runId);
}

let serials = 900_000_000;

/** The every-event scenario plus the states the scan must tell apart. */
export async function apiScenario(): Promise<ApiScenario> {
  const s = await everyEventScenario();
  const { ledger, maker, otherMaker, distributor } = s;
  const now = (await ethers.provider.getBlock("latest"))!.timestamp;
  const loose = (n: number): RunShape => ({ unitCount: n, unitsPerCase: 0, casesPerPallet: 0 });
  const base = (serials += 1_000_000);

  // The second pallet, back at the maker, goes out again and is not received yet.
  const transitShipmentId = await ship(ledger, maker, distributor, [palletRef(s.runId, 1)]);

  const batch = (productId: bigint | number, lot: string, made: number, expires: number, who = maker) =>
    newId(ledger.connect(who).registerBatch(productId, lot, made, expires), "BatchRegistered", "batchId");
  const recalledBatch = await batch(1, `LOT-RC-${base}`, now - DAY, now + 300 * DAY);
  const recalledCodes = demoRunCodes("8612345", loose(2), base);
  await commission(s, maker, recalledBatch, recalledCodes, loose(2));
  await ledger.connect(maker).recallBatch(recalledBatch, "contamination");

  const expiredBatch = await batch(1, `LOT-EX-${base}`, now - 400 * DAY, now - DAY);
  const expiredCodes = demoRunCodes("8612345", loose(2), base + 10);
  await commission(s, maker, expiredBatch, expiredCodes, loose(2));

  await ledger.connect(s.regulator).assignCodePrefixes(maker.address, [GTIN_PREFIX]);
  const gs1Product = await newId(
    ledger.connect(maker).registerProduct(GTIN, "Ibuprofen 400mg", "H20000002", "tablet 20/box", 20),
    "ProductRegistered",
    "productId",
  );
  const gs1Batch = await batch(gs1Product, `LOT-G-${base}`, now - DAY, now + 500 * DAY);
  const gs1Codes = [`GS1:01${GTIN}21AbC${base}`, `GS1:01${GTIN}21XyZ${base}`];
  await commission(s, maker, gs1Batch, gs1Codes, loose(2));

  // The other maker's product (registered by the every-event scenario), whose run copies product 1's codes (a
  // counterfeiter's run, or a maker's mistake).
  const otherProduct = await ledger.productIdByCode(OTHER_PRODUCT);
  const otherBatch = await batch(otherProduct, `LOT-O-${base}`, now - DAY, now + 500 * DAY, otherMaker);
  const copied = demoRunCodes("8612345", loose(2), base + 20);
  const otherMakerRunId = await commission(s, otherMaker, otherBatch, copied, loose(2));
  const makerCopyRunId = await commission(s, maker, 1, [copied[1]!], loose(1));

  const first = demoRunCodes("8612345", { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, s.serialBase);
  return {
    ...s,
    otherMakerRunId,
    makerCopyRunId,
    transitShipmentId,
    codes: {
      dispensedAndSettled: cn(first[0]!),
      dispensedNotSettled: cn(first[1]!),
      inPharmacyStock: cn(first[5]!),
      partiallyDispensed: cn(first[3]!),
      atDistributor: cn(first[17]!),
      decommissioned: cn(first[16]!),
      inTransit: cn(first[25]!),
      recalled: cn(recalledCodes[0]!),
      expired: cn(expiredCodes[0]!),
      gs1: `01${GTIN}21AbC${base}`,
      gs1CaseSwapped: `01${GTIN}21aBc${base}`,
      onlyInOtherProduct: cn(copied[0]!),
      otherProductFirst: cn(copied[1]!),
      case0: first[40]!.replace(/^X:/, ""),
      pallet0: first[44]!.replace(/^X:/, ""),
      pallet1: first[45]!.replace(/^X:/, ""),
      unknown: "86123459999999990000",
    },
  };
}

export function testConfig(overrides: Partial<Record<string, string>> = {}): ApiConfig {
  const env = { LOG_LEVEL: "silent", API_PUBLIC_RATE_LIMIT_PER_ADDRESS: "100000", ...overrides };
  return { ...loadConfig(env), ...loadAlertSettings(env), ...loadClaimSettings(env), ...loadCommissionSettings(env) };
}

/** Starts Redis, indexes the scenario and serves the API; keys for every kind of caller. */
export async function startApi(
  overrides: Partial<Record<string, string>> = {},
  options: { appendonly?: boolean } = {},
): Promise<ApiHarness> {
  const rpc = await startRpcServer();
  const redisServer = await startRedis({ appendonly: options.appendonly ?? false });
  const redis = connectRedis({ url: redisServer.url }, testLog, 2_000);
  const s = await apiScenario();
  const ledgerAddress = await s.ledger.getAddress();
  const indexer = await newIndexer(rpc.url, ledgerAddress, redis);
  await indexer.indexer.syncOnce();
  const config = testConfig({ CODE_BUCKET_BITS: "16", ...overrides });
  const chain = await LedgerChain.connect(rpc.url, ledgerAddress);
  const ctx = apiContext(config, redis, chain, testLog);
  const api = await serveApi(ctx, "127.0.0.1", 0);
  declareRoutes(api.specs);
  const holders: Record<KeyHolder, HardhatEthersSigner> = {
    regulator: s.regulator,
    maker: s.maker,
    otherMaker: s.otherMaker,
    distributor: s.distributor,
    pharmacy: s.pharmacy,
    otherPharmacy: s.otherPharmacy,
    insurer: s.insurer,
    otherInsurer: s.otherInsurer,
    outsider: s.outsider,
  };
  const keys = {} as Record<KeyHolder, string>;
  for (const [holder, signer] of Object.entries(holders))
    keys[holder as KeyHolder] = (await ctx.keys.issue(signer.address, `${holder} test key`)).key;
  return {
    s,
    ctx,
    api,
    url: api.url,
    rpcUrl: rpc.url,
    redis,
    redisServer,
    indexer,
    keys,
    async reindex() {
      await indexer.indexer.syncOnce();
    },
    async close() {
      await api.close();
      chain.destroy();
      indexer.close();
      redis.disconnect();
      await rpc.close();
      await redisServer.stop();
    },
  };
}

/** Another API process over the harness's Redis and chain, with its own settings (the caller closes it). */
export async function anotherApi(h: ApiHarness, overrides: Record<string, string>): Promise<RunningApi> {
  return serveApi(apiContext(testConfig(overrides), h.redis, h.ctx.rpc, testLog), "127.0.0.1", 0);
}

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** One request; JSON bodies are parsed (problem+json included). */
export async function call<T = Record<string, unknown>>(
  h: { url: string },
  path: string,
  options: {
    key?: string;
    method?: string;
    body?: unknown;
    rawBody?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  let body: string | Buffer | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  } else if (options.rawBody !== undefined) body = options.rawBody;
  const method = options.method ?? (body ? "POST" : "GET");
  const res = await fetch(h.url + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  if (/json/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
  const reply = { status: res.status, headers: res.headers, body: parsed as T, text };
  checkAgainstSchema(method, path, reply);
  return reply;
}

export const codePath = (code: string, prefix = "/v1/codes/"): string => prefix + encodeURIComponent(code);

export { idOf, packRefs };

/** The API over a ledger a test deploys and drives itself: its own redis-server, indexer and app, a regulator key. */
export interface OwnLedgerApi {
  rpc: { url: string; close(): Promise<void> };
  redis: RedisClient;
  indexer: TestIndexer;
  ctx: ApiContext;
  api: RunningApi;
  regulatorKey: string;
  close(): Promise<void>;
}

export async function serveOwnLedger(
  ledger: string,
  regulator: HardhatEthersSigner,
  overrides: Partial<Record<string, string>> = {},
  indexerOptions: Parameters<typeof newIndexer>[3] = {},
): Promise<OwnLedgerApi> {
  const rpc = await startRpcServer();
  const redisServer = await startRedis({ appendonly: false });
  const redis = connectRedis({ url: redisServer.url }, testLog, 2_000);
  const indexer = await newIndexer(rpc.url, ledger, redis, indexerOptions);
  const chain = await LedgerChain.connect(rpc.url, ledger);
  const ctx = apiContext(testConfig(overrides), redis, chain, testLog);
  const api = await serveApi(ctx, "127.0.0.1", 0);
  declareRoutes(api.specs);
  const regulatorKey = (await ctx.keys.issue(regulator.address, "regulator")).key;
  return {
    rpc,
    redis,
    indexer,
    ctx,
    api,
    regulatorKey,
    async close() {
      await api.close();
      chain.destroy();
      indexer.close();
      redis.disconnect();
      await redisServer.stop();
      await rpc.close();
    },
  };
}
