/** Wipes the Redis index and rebuilds it from the chain, then prints what it indexed. */
import { loadConfig } from "../backend/config/env";
import { createIndexer } from "../backend/index/service";
import { usedMemory } from "../backend/store/redis";
import { createLogger } from "../backend/log";

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL, "index-rebuild");
  const service = await createIndexer(config, log);
  try {
    const removed = await service.store.wipe();
    log.info({ keysRemoved: removed }, "index wiped");
    const started = Date.now();
    const status = await service.indexer.syncOnce();
    const seconds = (Date.now() - started) / 1000;
    console.log(
      JSON.stringify({
        msg: "index rebuilt",
        indexedBlock: status.indexedBlock,
        events: status.eventsIndexed,
        codes: status.codesIndexed,
        seconds,
        redisUsedMemoryBytes: await usedMemory(service.store.redis),
      }),
    );
  } finally {
    await service.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
