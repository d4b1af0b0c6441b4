/**
 * API keys: `npm run keys:issue -- --org <account> --name <label>` prints a new key once (it is stored hashed),
 * `npm run keys:list` lists keys (never the keys themselves), `npm run keys:revoke -- --id <keyId>` revokes one.
 * The organisation must be on the ledger (as indexed): an onboarded participant or a regulator account.
 */
import { parseArgs } from "node:util";
import { ApiKeyStore } from "../backend/api/keys";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis } from "../backend/index/service";

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: { org: { type: "string" }, name: { type: "string" }, id: { type: "string" }, force: { type: "boolean" } },
  });
  const config = loadConfig();
  const redis = connectIndexRedis(config);
  const keys = new ApiKeyStore(redis);
  try {
    if (command === "issue") {
      if (!values.org || !values.name) throw new Error("usage: npm run keys:issue -- --org <account> --name <label>");
      const reader = new IndexReader(redis, config.CODE_BUCKET_BITS);
      const [participant, regulator] = await Promise.all([
        reader.participantByAccount(values.org),
        reader.isRegulator(values.org),
      ]);
      if (!participant && !regulator && !values.force)
        throw new Error(
          `${values.org} is neither an onboarded participant nor a regulator in the index (--force to issue anyway)`,
        );
      const issued = await keys.issue(values.org, values.name);
      const role = regulator ? "regulator" : `participant ${participant!.id} (${participant!.name})`;
      console.log(JSON.stringify({ msg: "API key issued: shown once, store it now", role, ...issued }));
    } else if (command === "list") {
      for (const key of await keys.list()) console.log(JSON.stringify(key));
    } else if (command === "revoke") {
      if (!values.id) throw new Error("usage: npm run keys:revoke -- --id <keyId>");
      if (!(await keys.revoke(values.id))) throw new Error(`no key ${values.id}`);
      console.log(JSON.stringify({ msg: "API key revoked", keyId: values.id }));
    } else {
      throw new Error("usage: keys.ts issue|list|revoke ...");
    }
  } finally {
    redis.disconnect();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
