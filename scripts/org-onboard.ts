/**
 * `npm run org:onboard`: onboards an organisation on the ledger (signed by a regulator's key this deployment
 * holds), assigns a manufacturer's code prefixes, waits until the index shows it, and issues its first API key —
 * one step for the consortium's operator. Started again for an organisation already on the ledger, it sends
 * nothing and only issues a key.
 */
import { DrugLedger__factory } from "../typechain-types";
import { ApiKeyStore } from "../backend/api/keys";
import { Signers } from "../backend/chain/signers";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis, resolveDeployment } from "../backend/index/service";
import { JsonRpcProvider, isAddress } from "ethers";
import { InvalidInputError, required, runCommand, UsageError } from "./lib/cli";

const ROLES = { manufacturer: 1, distributor: 2, pharmacy: 3, insurer: 4 } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

runCommand({
  usage:
    "npm run org:onboard -- --account <0x…> --role <manufacturer|distributor|pharmacy|insurer> --name <name> --licence <no> --region <code> [--prefix CN:861 …] [--regulator <0x…>] [--key-name <label>]",
  help: `
Onboards the organisation <account> with its role, registered name, licence and region code, assigns a
manufacturer's code prefixes (--prefix, repeatable: CN:<digits> or GS1:<digits>), waits for the indexer to
show it, and prints its first API key once (stored hashed). The transactions are signed by --regulator (default:
the first key in SIGNER_DEV_KEYS / SIGNER_KEYSTORE_DIR that the index shows as a regulator).

Exit codes: 0 onboarded and key issued, 1 failure, 2 usage, 3 refused (no regulator key, the ledger's refusal).`,
  options: {
    account: { type: "string" },
    role: { type: "string" },
    name: { type: "string" },
    licence: { type: "string" },
    region: { type: "string" },
    prefix: { type: "string", multiple: true },
    regulator: { type: "string" },
    "key-name": { type: "string", default: "first key" },
    "wait-ms": { type: "string", default: "60000" },
  },
  async run(values) {
    const account = required(values.account, "account");
    if (!isAddress(account)) throw new UsageError(`--account ${account} is not an address`);
    const role = ROLES[required(values.role, "role") as keyof typeof ROLES];
    if (!role) throw new UsageError(`--role must be one of ${Object.keys(ROLES).join(", ")}`);
    const name = required(values.name, "name");
    const licence = required(values.licence, "licence");
    const region = required(values.region, "region");
    const prefixes = values.prefix ?? [];
    if (prefixes.length > 0 && role !== ROLES.manufacturer) throw new UsageError("--prefix is for manufacturers");
    const config = loadConfig();
    const deployment = await resolveDeployment(config);
    const redis = connectIndexRedis(config);
    const provider = new JsonRpcProvider(config.RPC_URL);
    try {
      const reader = new IndexReader(redis, config.CODE_BUCKET_BITS);
      const signers = await Signers.load(config);
      let regulator = values.regulator ? signers.get(values.regulator) : null;
      if (values.regulator && !regulator)
        throw new InvalidInputError(`no signing key for --regulator ${values.regulator}`);
      for (const candidate of signers.accounts()) {
        if (regulator) break;
        if (await reader.isRegulator(candidate)) regulator = signers.get(candidate);
      }
      if (!regulator) throw new InvalidInputError("this deployment holds no regulator's signing key");
      const ledger = DrugLedger__factory.connect(deployment.ledger, regulator.connect(provider));
      const onChain = await ledger.participantOf(account);
      const sent: string[] = [];
      try {
        if (Number(onChain.role) === 0) {
          const tx = await ledger.onboard(account, role, name, licence, region);
          sent.push((await tx.wait())!.hash);
        } else if (Number(onChain.role) !== role)
          throw new InvalidInputError(`${account} is on the ledger already, with another role (${onChain.role})`);
        const held = (await reader.participantByAccount(account))?.codePrefixes ?? [];
        const missing = prefixes.filter((p) => !held.includes(p));
        if (missing.length > 0) {
          const tx = await ledger.assignCodePrefixes(account, missing);
          sent.push((await tx.wait())!.hash);
        }
      } catch (err) {
        const reason =
          (err as { shortMessage?: string; reason?: string }).reason ?? (err as { shortMessage?: string }).shortMessage;
        if (reason) throw new InvalidInputError(`the ledger refused: ${reason}`);
        throw err;
      }
      const deadline = Date.now() + Number(values["wait-ms"]);
      let participant = await reader.participantByAccount(account);
      while (!participant || (prefixes.length > 0 && !prefixes.every((p) => participant!.codePrefixes?.includes(p)))) {
        if (Date.now() > deadline)
          throw new Error(`onboarded (${sent.join(", ")}) but the index does not show it yet: is the indexer running?`);
        await sleep(250);
        participant = await reader.participantByAccount(account);
      }
      const issued = await new ApiKeyStore(redis).issue(account, values["key-name"]!);
      console.log(
        JSON.stringify({
          msg: "organisation onboarded; API key shown once, store it now",
          participantId: participant.id,
          organisation: participant.name,
          transactions: sent,
          apiKey: issued,
        }),
      );
    } finally {
      provider.destroy();
      redis.disconnect();
    }
  },
});
