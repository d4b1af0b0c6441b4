import { createHash } from "node:crypto";
import { dataNodes, type RedisClient } from "../store/redis";
import { isIndexKey, isMetaKey } from "./store";

/**
 * A canonical dump of the index's state (the indexer's own bookkeeping left out): one line per hash field,
 * `key field value` with field and value in hex, sorted. Two indexes of the same chain state have equal dumps,
 * however they were built.
 */
export async function dumpIndex(redis: RedisClient): Promise<{ lines: string[]; digest: string }> {
  const lines: string[] = [];
  for (const node of dataNodes(redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "COUNT", 1000);
      cursor = next;
      const ours = keys.filter((k) => isIndexKey(k) && !isMetaKey(k));
      // A pipeline, not auto-pipelined calls: ioredis drops callBuffer's command name when auto-pipelining.
      const pipeline = node.pipeline();
      for (const key of ours) pipeline.callBuffer("HGETALL", key);
      const replies = (await pipeline.exec()) ?? [];
      ours.forEach((key, i) => {
        const [err, reply] = replies[i]!;
        if (err) throw err;
        const flat = reply as Buffer[];
        for (let j = 0; j < flat.length; j += 2) {
          lines.push(`${key} ${flat[j]!.toString("hex")} ${flat[j + 1]!.toString("hex")}`);
        }
      });
    } while (cursor !== "0");
  }
  lines.sort();
  return { lines, digest: createHash("sha256").update(lines.join("\n")).digest("hex") };
}
