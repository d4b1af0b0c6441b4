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
    // Two writers would corrupt the index: refuse while another indexer reports progress.
    const running = await service.store.status();
    const age = Math.floor(Date.now() / 1000) - Number(running?.updatedAt ?? 0);
    if (
      running &&
      ["backfilling", "following", "retrying"].includes(String(running.state)) &&
      age < 30 &&
      !process.argv.includes("--force")
    ) {
      throw new Error(
        `an indexer is running on this index (status "${String(running.state)}" ${age} s ago): stop it first, or pass --force`,
      );
    }
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
