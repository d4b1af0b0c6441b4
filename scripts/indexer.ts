/** Runs the indexer until SIGINT/SIGTERM: back-fills the ledger's history into Redis, then follows the chain. */
import { loadConfig } from "../backend/config/env";
import { createIndexer } from "../backend/index/service";
import { createLogger } from "../backend/log";

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL, "indexer");
  const service = await createIndexer(config, log);
  const shutdown = () => {
    log.info("stopping");
    service.indexer.stop();
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  log.info({ ledger: service.chain.address, chainId: service.chain.chainId }, "indexer started");
  try {
    await service.indexer.run();
  } finally {
    await service.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
