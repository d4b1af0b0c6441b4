/**
 * `npm run status`: one screen for the operator — the chain's head, how far the index is behind it, Redis's
 * memory, and the API's own health (/healthz) — each probed on its own, so that one part down still shows the rest.
 */
import { JsonRpcClient } from "../backend/chain/rpc";
import { loadConfig } from "../backend/config/env";
import { META } from "../backend/index/keys";
import { connectIndexRedis } from "../backend/index/service";
import { runCommand } from "./lib/cli";

const TIMEOUT_MS = 3_000;

async function probe<T>(what: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
  try {
    const value = await Promise.race([
      what(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS),
      ),
    ]);
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** `used_memory_human:1.2M` lines of INFO memory as a record. */
function infoFields(info: string): Record<string, string> {
  return Object.fromEntries(
    info
      .split(/\r?\n/)
      .filter((l) => l.includes(":"))
      .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]),
  );
}

runCommand({
  usage: "npm run status -- [--api <url>] [--json]",
  help: `
Prints the chain's head (RPC_URL), the indexer's progress and lag (REDIS_URL), Redis's memory, and the API's
/healthz (--api, default http://API_HOST:API_PORT).

Exit codes: 0 everything answers and the API is healthy, 1 something is down or behind, 2 usage.`,
  options: { api: { type: "string" }, json: { type: "boolean" } },
  async run(values) {
    const config = loadConfig();
    const apiUrl = values.api ?? `http://${config.API_HOST}:${config.API_PORT}`;
    const rpc = new JsonRpcClient(config.RPC_URL);
    const redis = connectIndexRedis(config);
    try {
      const [chain, index, memory, api] = await Promise.all([
        probe(async () => Number(await rpc.call<string>("eth_blockNumber", []))),
        probe(async () => JSON.parse((await redis.get(META.status)) ?? "null") as Record<string, unknown> | null),
        probe(async () => infoFields(await redis.info("memory"))),
        probe(async () => {
          const res = await fetch(`${apiUrl}/healthz`);
          const body = (await res.json()) as { status?: string };
          return { httpStatus: res.status, status: body.status };
        }),
      ]);
      const indexed = index.ok && index.value ? Number(index.value.indexedBlock) : null;
      const report = {
        chain: chain.ok
          ? { ok: true, url: config.RPC_URL, headBlock: chain.value }
          : { ok: false, url: config.RPC_URL, error: chain.error },
        index: !index.ok
          ? { ok: false, error: index.error }
          : !index.value
            ? { ok: false, error: "no indexer has reported progress into this Redis" }
            : {
                ok: true,
                state: index.value.state,
                indexedBlock: indexed,
                lagBlocks: chain.ok && indexed !== null ? Math.max(0, chain.value - indexed) : index.value.lagBlocks,
                reportedSecondsAgo: Math.max(0, Math.floor(Date.now() / 1000) - Number(index.value.updatedAt ?? 0)),
              },
        redis: memory.ok
          ? {
              ok: true,
              usedMemory: memory.value.used_memory_human,
              peakMemory: memory.value.used_memory_peak_human,
              maxMemory: memory.value.maxmemory_human,
              policy: memory.value.maxmemory_policy,
            }
          : { ok: false, error: memory.error },
        api: api.ok
          ? { ok: api.value.httpStatus === 200, url: apiUrl, status: api.value.status }
          : { ok: false, url: apiUrl, error: api.error },
      };
      if (values.json) console.log(JSON.stringify(report));
      else
        for (const [part, value] of Object.entries(report)) {
          const { ok, ...rest } = value as { ok: boolean } & Record<string, unknown>;
          const detail = Object.entries(rest)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join("  ");
          console.log(`${(ok ? "ok  " : "DOWN").padEnd(5)}${part.padEnd(7)}${detail}`);
        }
      if (!Object.values(report).every((p) => p.ok)) process.exitCode = 1;
    } finally {
      redis.disconnect();
    }
  },
});
