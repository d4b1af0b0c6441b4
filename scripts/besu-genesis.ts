/**
 * `npm run besu:genesis -- --out <dir> [--validators 4] [--chain-id 1337] [--block-period 2] [--host 127.0.0.1]
 * [--p2p-port 30303] [--account 0x...]...`: writes a Besu QBFT network profile (scripts/lib/besu.ts):
 * `<dir>/genesis.json`, `<dir>/permissions_config.toml`, `<dir>/static-nodes.json` and `<dir>/node-<i>/key`.
 */
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { isAddress } from "ethers";
import { genesis, newValidator, permissionsToml, enodeUrl, type ProfileOptions } from "./lib/besu";

const USAGE = `usage: npm run besu:genesis -- --out <dir> [options]
  --out <dir>            where to write (refused if it already holds a genesis.json)
  --validators <n>       number of QBFT validators (default 4; 4 tolerates one faulty node)
  --chain-id <id>        chain id (default 1337)
  --block-period <s>     seconds between blocks (default 2)
  --host <ip>            validators' host in the enode URLs (default 127.0.0.1)
  --p2p-port <port>      first validator's P2P port; node i uses port+i (default 30303)
  --account <0x...>      an organisation's signing account to allowlist (repeatable)
  --help                 this text`;

function positiveInt(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: "string" },
      validators: { type: "string", default: "4" },
      "chain-id": { type: "string", default: "1337" },
      "block-period": { type: "string", default: "2" },
      host: { type: "string", default: "127.0.0.1" },
      "p2p-port": { type: "string", default: "30303" },
      account: { type: "string", multiple: true, default: [] },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out) throw new Error(`--out is required\n${USAGE}`);
  const bad = values.account.filter((a) => !isAddress(a));
  if (bad.length > 0) throw new Error(`not an address: ${bad.join(", ")}`);
  const options: ProfileOptions = {
    validators: positiveInt("validators", values.validators),
    chainId: positiveInt("chain-id", values["chain-id"]),
    blockPeriodSeconds: positiveInt("block-period", values["block-period"]),
    host: values.host,
    p2pPort: positiveInt("p2p-port", values["p2p-port"]),
    accounts: values.account,
  };
  if (fs.existsSync(path.join(values.out, "genesis.json"))) {
    throw new Error(`${values.out} already holds a genesis.json; choose another --out (keys are never overwritten)`);
  }
  const validators = Array.from({ length: options.validators }, () => newValidator());
  fs.mkdirSync(values.out, { recursive: true });
  fs.writeFileSync(path.join(values.out, "genesis.json"), JSON.stringify(genesis(options, validators), null, 2) + "\n");
  fs.writeFileSync(path.join(values.out, "permissions_config.toml"), permissionsToml(options, validators));
  const enodes = validators.map((v, i) => enodeUrl(options, v, i));
  fs.writeFileSync(path.join(values.out, "static-nodes.json"), JSON.stringify(enodes, null, 2) + "\n");
  validators.forEach((v, i) => {
    const dir = path.join(values.out!, `node-${i}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "key"), v.nodeKey, { mode: 0o600 });
  });
  console.log(`wrote a ${options.validators}-validator QBFT profile (chain id ${options.chainId}) to ${values.out}`);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 2;
}
