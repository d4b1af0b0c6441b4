/**
 * The operators' commands as child processes against the in-process Hardhat network (over HTTP), a real
 * redis-server, the following indexer and the API: org:onboard onboards and issues a working first key in one
 * step (and only a key when run again), keys list and revoke it, and status shows every part on one screen.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { call } from "./helpers/api";
import { lastJson, runScript } from "./helpers/cli";
import { startWriteApi, type WriteHarness } from "./helpers/writes";
import { childEnv } from "./helpers/child-api";

describe("operators: onboarding, keys and status commands", function () {
  this.timeout(240_000);
  let h: WriteHarness;
  let env: Record<string, string>;

  before(async function () {
    h = await startWriteApi();
    env = childEnv({ rpcUrl: h.rpcUrl, ledger: await h.s.ledger.getAddress(), redisUrl: h.redisServer.url });
  });
  after(async function () {
    await h?.close();
  });

  it("onboards an organisation and issues its first key in one step; the key works, and is revoked", async function () {
    const account = Wallet.createRandom().address;
    const args = ["--account", account, "--role", "pharmacy", "--name", "Ops Pharmacy", "--licence", "PH-OPS-1"];
    const onboarded = await runScript("org-onboard.ts", [...args, "--region", "310000"], env);
    expect(onboarded.code, onboarded.stderr).to.equal(0);
    const out = lastJson<{ participantId: number; transactions: string[]; apiKey: { key: string; keyId: string } }>(
      onboarded.stdout,
    );
    expect(out.transactions).to.have.length(1);
    // The key authenticates (a key the service does not know is a 401).
    const authed = await call(h, "/v1/shipments", { key: out.apiKey.key });
    expect(authed.status, authed.text).to.not.equal(401);

    const again = await runScript("org-onboard.ts", [...args, "--region", "310000", "--key-name", "second"], env);
    expect(again.code, again.stderr).to.equal(0);
    expect(lastJson<{ transactions: string[] }>(again.stdout).transactions).to.have.length(0);

    const list = await runScript("keys.ts", ["list"], env);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout).to.include(out.apiKey.keyId).and.not.include(out.apiKey.key);
    const revoked = await runScript("keys.ts", ["revoke", "--id", out.apiKey.keyId], env);
    expect(revoked.code, revoked.stderr).to.equal(0);
    expect((await runScript("keys.ts", ["revoke", "--id", "nosuchkey"], env)).code).to.equal(3);
    expect((await runScript("keys.ts", ["bogus"], env)).code).to.equal(2);
  });

  it("refuses a bad role (usage, exit 2) and an unknown organisation's key (exit 3)", async function () {
    const bad = await runScript(
      "org-onboard.ts",
      ["--account", Wallet.createRandom().address, "--role", "chemist"],
      env,
    );
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include("--role must be one of");
    const stranger = await runScript("keys.ts", ["issue", "--org", Wallet.createRandom().address, "--name", "x"], env);
    expect(stranger.code).to.equal(3);
  });

  it("status shows the chain head, the index lag, Redis memory and the API's health", async function () {
    const status = await runScript("status.ts", ["--api", h.url, "--json"], env);
    const report = lastJson<Record<string, { ok: boolean } & Record<string, unknown>>>(status.stdout);
    expect(report.chain!.ok, status.stdout).to.equal(true);
    expect(report.chain!.headBlock).to.be.a("number");
    expect(report.index!).to.have.property("lagBlocks");
    expect(report.redis!.usedMemory).to.be.a("string");
    expect(report.api!).to.include({ url: h.url });
    const screen = await runScript("status.ts", ["--api", "http://127.0.0.1:9"], env);
    expect(screen.code).to.equal(1);
    expect(screen.stdout)
      .to.match(/^ok {3}chain/m)
      .and.match(/^DOWN api/m);
  });
});
