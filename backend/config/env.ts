import "dotenv/config";
import { z } from "zod";
import { DEFAULT_CODE_HASH_DOMAIN } from "../codes/parse";
import { DEFAULT_SUPPLY_DAILY_RETENTION_DAYS, DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS } from "./defaults";

/** Settings read from the environment (and `.env`); `.env.example` documents each one. */
/** A comma-separated list setting, empty by default. */
const commaList = z
  .string()
  .default("")
  .transform((list) =>
    list
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

const schema = z.object({
  RPC_URL: z.string().url().default("http://127.0.0.1:8545"),
  RPC_PORT: z.coerce.number().int().min(1).max(65535).default(8545),
  LEDGER_ADDRESS: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}$/, "LEDGER_ADDRESS must be a 0x-prefixed 20-byte address")
    .optional(),
  ADMIN_TRANSFER_DELAY_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(3 * 24 * 60 * 60),
  CODE_HASH_DOMAIN: z.string().min(1).default(DEFAULT_CODE_HASH_DOMAIN),
  DEPLOYMENT_FILE: z.string().default(".deployments/localhost.json"),
  SEED_DEMO: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  REDIS_CLUSTER_NODES: z
    .string()
    .default("")
    .transform((list, ctx) => {
      const nodes = list
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map((hostPort) => {
          const match = /^([^:]+):(\d+)$/.exec(hostPort);
          if (!match) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `"${hostPort}" is not host:port` });
          return { host: match?.[1] ?? "", port: Number(match?.[2] ?? 0) };
        });
      return nodes;
    }),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(100).default(20_000),
  START_BLOCK: z.coerce.number().int().min(0).optional(),
  CONFIRMATIONS: z.coerce.number().int().min(0).default(0),
  REORG_DEPTH: z.coerce.number().int().min(0).default(64),
  LOG_RANGE_MAX_BLOCKS: z.coerce.number().int().min(1).default(5000),
  BATCH_MAX_CODES: z.coerce.number().int().min(1000).default(300_000),
  POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(1000),
  CODE_BUCKET_BITS: z.coerce.number().int().min(8).max(24).default(16),
  SUPPLY_HOURLY_RETENTION_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 92)
    .default(DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS),
  /** Days of daily buckets kept (a ring per field by block time; see README "Supply figures"). */
  SUPPLY_DAILY_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(2)
    .max(10 * 366)
    .default(DEFAULT_SUPPLY_DAILY_RETENTION_DAYS),
  API_HOST: z.string().default("127.0.0.1"),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  API_BODY_LIMIT: z.string().default("256kb"),
  API_RATE_WINDOW_SECONDS: z.coerce.number().int().min(1).default(60),
  API_RATE_LIMIT_PER_KEY: z.coerce.number().int().min(1).default(12_000),
  API_RATE_LIMIT_PER_ADDRESS: z.coerce.number().int().min(1).default(12_000),
  API_PUBLIC_RATE_LIMIT_PER_ADDRESS: z.coerce.number().int().min(1).default(60),
  API_CORS_ORIGINS: commaList,
  API_TRUST_PROXY: z.string().default("false"),
  API_KEY_CACHE_SECONDS: z.coerce.number().min(0).default(5),
  API_MAX_LAG_BLOCKS: z.coerce.number().int().min(0).default(20),
  API_MAX_LAG_SECONDS: z.coerce.number().min(0).default(60),
  API_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /** `npm run api`: processes serving the port (node:cluster); 1 serves from the process itself. */
  API_WORKERS: z.coerce.number().int().min(1).max(64).default(1),
  // --- writes ---
  NODE_ENV: z.string().default("development"),
  SIGNER_KEYSTORE_DIR: z.string().optional(),
  SIGNER_KEYSTORE_PASSWORD: z.string().optional(),
  SIGNER_DEV_KEYS: commaList,
  API_WRITE_BATCH_MS: z.coerce.number().int().min(0).max(5_000).default(100),
  API_WRITE_WAIT_MS: z.coerce.number().int().min(0).default(15_000),
  IDEMPOTENCY_TTL_SECONDS: z.coerce.number().int().min(86_400).default(86_400),
  CONSENT_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(86_400)
    .default(90 * 86_400),
  TX_REPLACE_AFTER_MS: z.coerce.number().int().min(100).default(30_000),
  TX_SWEEP_INTERVAL_MS: z.coerce.number().int().min(50).default(5_000),
  TX_RECORD_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(86_400)
    .default(7 * 86_400),
  // --- supply outlook (backend/supply/, README "Supply figures") ---
  /** Days of cover below which a product is short in a region (a SHORTAGE_RISK alert). */
  SUPPLY_MIN_DAYS_OF_COVER: z.coerce.number().positive().default(14),
  /** Per-product thresholds, JSON: `{"<productId or productCode>": days}`; products not named use the default. */
  SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT: z
    .string()
    .default("{}")
    .transform((text, ctx) => {
      try {
        const map = z.record(z.number().positive()).parse(JSON.parse(text));
        return map;
      } catch {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected JSON like {"1": 30, "8612345": 21}' });
        return z.NEVER;
      }
    }),
  /** Cover below this fraction of the threshold is "critical" rather than "low". */
  SUPPLY_CRITICAL_FRACTION: z.coerce.number().gt(0).max(1).default(0.5),
  /** Complete UTC days (besides today so far) the dispensing rate is the mean of. */
  SUPPLY_RATE_WINDOW_DAYS: z.coerce.number().int().min(1).max(90).default(7),
  /** Days before the rate's window that make the baseline a surge is measured against. */
  SUPPLY_BASELINE_DAYS: z.coerce.number().int().min(1).max(365).default(28),
  /** A demand surge: the rate at least this many times its baseline ... */
  SUPPLY_SURGE_FACTOR: z.coerce.number().gt(1).default(2),
  /** ... and at least this many units a day above it (so that 1 → 2 units a day is no epidemic). */
  SUPPLY_SURGE_MIN_UNITS_PER_DAY: z.coerce.number().min(0).default(5),
  /** Days the forecast reaches ahead, and the band's width in standard deviations of daily units. */
  SUPPLY_FORECAST_DAYS: z.coerce.number().int().min(1).max(90).default(14),
  SUPPLY_FORECAST_BAND_SIGMAS: z.coerce.number().min(0).default(2),
  /** Batches expiring within this many days are assessed for expiry risk (further out the rate says little). */
  SUPPLY_EXPIRY_HORIZON_DAYS: z.coerce.number().int().min(1).default(180),
  /** How often the API evaluates supply alerts (one process per window does it). */
  SUPPLY_EVALUATION_INTERVAL_MS: z.coerce.number().int().min(1000).default(300_000),
  // --- fraud signals from flows (backend/supply/flows.ts), evaluated with the supply alerts ---
  /** Days the flow rules look at (ending today), and the days before them that make a pharmacy's baseline. */
  FLOW_WINDOW_DAYS: z.coerce.number().int().min(1).max(90).default(7),
  FLOW_BASELINE_DAYS: z.coerce.number().int().min(1).max(365).default(28),
  /** Packs of a product a pharmacy must dispense (or have settled) in the window before its flows are judged. */
  FLOW_MIN_UNITS: z.coerce.number().int().min(1).default(20),
  /** Dispensed or settled above this many times what the pharmacy received in the window. */
  FLOW_ABOVE_RECEIVED_RATIO: z.coerce.number().min(1).default(2),
  /** The window's daily rate above this many times the pharmacy's own baseline rate. */
  FLOW_ABOVE_BASELINE_FACTOR: z.coerce.number().min(1).default(3),
  /** An insurer settling at least this many packs in the window, this share of them to its top pharmacies. */
  FLOW_CONCENTRATION_MIN_UNITS: z.coerce.number().int().min(1).default(50),
  FLOW_CONCENTRATION_TOP: z.coerce.number().int().min(1).default(1),
  FLOW_CONCENTRATION_SHARE: z.coerce.number().gt(0).max(1).default(0.8),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

/** The settings, and the limits one sets on another. */
const checkedSchema = schema.superRefine((c, ctx) => {
  // A rate's baseline or a flow rule reaching past the days kept would quietly count the days beyond as zero.
  const spans = {
    "SUPPLY_RATE_WINDOW_DAYS + SUPPLY_BASELINE_DAYS + 1": c.SUPPLY_RATE_WINDOW_DAYS + c.SUPPLY_BASELINE_DAYS + 1,
    "FLOW_WINDOW_DAYS + FLOW_BASELINE_DAYS": c.FLOW_WINDOW_DAYS + c.FLOW_BASELINE_DAYS,
  };
  for (const [span, days] of Object.entries(spans))
    if (c.SUPPLY_DAILY_RETENTION_DAYS < days)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["SUPPLY_DAILY_RETENTION_DAYS"],
        message: `${c.SUPPLY_DAILY_RETENTION_DAYS} keeps fewer days than ${span} (${days}) reads`,
      });
});

export type Config = z.infer<typeof schema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = checkedSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
