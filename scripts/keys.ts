/**
 * API keys: `npm run keys:issue -- --org <account> --name <label>` prints a new key once (it is stored hashed),
 * `npm run keys:list` lists keys (never the keys themselves), `npm run keys:revoke -- --id <keyId>` revokes one.
 * The organisation must be on the ledger (as indexed): an onboarded participant or a regulator account.
 */
import { ApiKeyStore } from "../backend/api/keys";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis } from "../backend/index/service";
import { InvalidInputError, required, runCommand, UsageError } from "./lib/cli";

runCommand({
  usage: "keys.ts issue --org <account> --name <label> [--force] | list | revoke --id <keyId>",
  help: `
npm run keys:issue -- --org <account> --name <label>   a new key for an onboarded organisation or regulator
                                                       (--force: one the index does not show), printed once
npm run keys:list                                      every key (id, account, name, dates; never the key)
npm run keys:revoke -- --id <keyId>                    revokes a key

Exit codes: 0 done, 1 failure, 2 usage, 3 unknown organisation or key.`,
  positionals: true,
  options: { org: { type: "string" }, name: { type: "string" }, id: { type: "string" }, force: { type: "boolean" } },
  async run(values, [command]) {
    if (!["issue", "list", "revoke"].includes(command ?? "")) throw new UsageError("issue, list or revoke?");
    const config = loadConfig();
    const redis = connectIndexRedis(config);
    const keys = new ApiKeyStore(redis);
    try {
      if (command === "issue") {
        const org = required(values.org, "org");
        const name = required(values.name, "name");
        const reader = new IndexReader(redis, config.CODE_BUCKET_BITS);
        const [participant, regulator] = await Promise.all([reader.participantByAccount(org), reader.isRegulator(org)]);
        if (!participant && !regulator && !values.force)
          throw new InvalidInputError(
            `${org} is neither an onboarded participant nor a regulator in the index (--force to issue anyway)`,
          );
        const issued = await keys.issue(org, name);
        const role = regulator
          ? "regulator"
          : participant
            ? `participant ${participant.id} (${participant.name})`
            : "none";
        console.log(JSON.stringify({ msg: "API key issued: shown once, store it now", role, ...issued }));
      } else if (command === "list") {
        for (const key of await keys.list()) console.log(JSON.stringify(key));
      } else {
        const id = required(values.id, "id");
        if (!(await keys.revoke(id))) throw new InvalidInputError(`no key ${id}`);
        console.log(JSON.stringify({ msg: "API key revoked", keyId: id }));
      }
    } finally {
      redis.disconnect();
    }
  },
});
