import "dotenv/config";
import { z } from "zod";
import { DEFAULT_CODE_HASH_DOMAIN } from "../codes/parse";

/** Settings read from the environment (and `.env`); `.env.example` documents each one. */
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
});

export type Config = z.infer<typeof schema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
