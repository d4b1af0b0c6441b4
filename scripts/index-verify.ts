/**
 * Compares the Redis index with the chain's view functions and reports every difference.
 * Usage: npm run index:verify [-- --all | --runs N --items N] [--seed S]
 * Exits 1 when a difference is found.
 */
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectChain, connectIndexRedis, resolveDeployment } from "../backend/index/service";
import { verifyIndex } from "../backend/index/verify";
import { createLogger } from "../backend/log";
import { DrugLedger__factory } from "../typechain-types";

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL, "index-verify");
  const deployment = await resolveDeployment(config);
  const chain = await connectChain(config, deployment.ledger, log);
  const redis = connectIndexRedis(config, log);
  try {
    const all = process.argv.includes("--all");
    const options = {
      runs: all ? 0 : option("runs", 20),
      itemsPerRun: all ? 0 : option("items", 50),
      seed: option("seed", Date.now() % 100_000),
    };
    const ledger = DrugLedger__factory.connect(deployment.ledger, chain.provider);
    const report = await verifyIndex(new IndexReader(redis, config.CODE_BUCKET_BITS), ledger, options);
    console.log(JSON.stringify({ msg: "index verified", ...options, ...report }, null, 2));
    if (report.differences.length > 0) process.exitCode = 1;
  } finally {
    chain.destroy();
    redis.disconnect();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
