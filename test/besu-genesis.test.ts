import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Wallet, decodeRlp, SigningKey, computeAddress } from "ethers";
import { BLOCK_GAS_LIMIT, CONTRACT_SIZE_LIMIT, TX_GAS_CAP } from "../scripts/lib/besu";

describe("besu:genesis (QBFT profile)", function () {
  this.timeout(60_000);
  const account = Wallet.createRandom().address;
  let dir: string;
  let genesis: { config: Record<string, unknown> & { qbft: object }; gasLimit: string; extraData: string };
  const keys = () => [0, 1, 2, 3].map((i) => fs.readFileSync(path.join(dir, `node-${i}`, "key"), "utf8"));

  before(function () {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "besu-")), "net");
    execFileSync("npx", [
      "ts-node",
      "--transpile-only",
      "scripts/besu-genesis.ts",
      "--out",
      dir,
      "--account",
      account,
      "--chain-id",
      "2026",
    ]);
    genesis = JSON.parse(fs.readFileSync(path.join(dir, "genesis.json"), "utf8"));
  });

  it("lists the four validators derived from the node keys in the RLP-decoded extraData", function () {
    const [vanity, validators, vote, round, seals] = decodeRlp(genesis.extraData) as [
      string,
      string[],
      string[],
      string,
      string[],
    ];
    expect(vanity).to.equal("0x" + "00".repeat(32));
    const fromKeys = keys().map((k) => computeAddress(new SigningKey(k)).toLowerCase());
    expect(validators).to.have.members(fromKeys);
    expect(validators).to.have.length(4);
    expect([vote, round, seals]).to.deep.equal([[], "0x", []]);
  });

  it("sets chain id, zero base fee, the raised contract size limit and a gas limit holding our largest transaction", function () {
    expect(genesis.config.chainId).to.equal(2026);
    expect(genesis.config.zeroBaseFee).to.equal(true);
    expect(genesis.config.contractSizeLimit).to.equal(CONTRACT_SIZE_LIMIT);
    expect(genesis.config.qbft).to.include({ blockperiodseconds: 2 });
    expect(Number(genesis.gasLimit)).to.equal(BLOCK_GAS_LIMIT);
    expect(Number(genesis.gasLimit))
      .to.be.greaterThan(15_653_170 * 6)
      .and.to.be.greaterThan(TX_GAS_CAP);
  });

  it("allowlists the validators' and the given accounts and every validator's enode", function () {
    const toml = fs.readFileSync(path.join(dir, "permissions_config.toml"), "utf8");
    expect(toml).to.include(`"${account}"`);
    for (const key of keys()) {
      const signing = new SigningKey(key);
      expect(toml).to.include(`"${computeAddress(signing)}"`);
      expect(toml).to.include(`enode://${signing.publicKey.slice(4)}@127.0.0.1:`);
    }
    expect(JSON.parse(fs.readFileSync(path.join(dir, "static-nodes.json"), "utf8"))).to.have.length(4);
  });

  it("refuses to overwrite an existing profile and rejects a bad account", function () {
    const run = (args: string[]) => () =>
      execFileSync("npx", ["ts-node", "--transpile-only", "scripts/besu-genesis.ts", ...args], { stdio: "pipe" });
    expect(run(["--out", dir])).to.throw(/already holds a genesis.json/);
    expect(run(["--out", dir + "-2", "--account", "0x12"])).to.throw(/not an address/);
  });
});
