import { expect } from "chai";
import { ethers } from "hardhat";
import { call, type Reply } from "./helpers/api";
import { hardhatDevKeys, startWriteApi, type WriteHarness } from "./helpers/writes";

type Body = Record<string, unknown> & {
  status?: string | number;
  type?: string;
  error?: { name: string; args: Record<string, string> };
  participant?: { id: number; role: string; suspended: boolean; codePrefixes: string[]; name: string };
  product?: { id: number; productCode: string };
  batch?: { id: number; recalled: boolean; recalls: unknown[] };
  returnWindowDays?: number;
  transactions?: { txHash: string }[];
};

const today = () => new Date().toISOString().slice(0, 10);
const inDays = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString().slice(0, 10);

describe("API: registry writes (regulator and manufacturer)", function () {
  let h: WriteHarness;
  /** Hardhat accounts 10 and 11: organisations the tests onboard through the API (the service holds their keys). */
  let newMaker: string;
  let newPharmacy: string;
  let newMakerKey: string;
  const send = (method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) =>
    call<Body>(h, path, { method, key, ...(body !== undefined ? { body } : {}), headers });
  const nonceOf = (account: string) => ethers.provider.getTransactionCount(account);

  before(async function () {
    h = await startWriteApi({ SIGNER_DEV_KEYS: hardhatDevKeys(12).join(",") });
    const signers = await ethers.getSigners();
    newMaker = signers[10]!.address;
    newPharmacy = signers[11]!.address;
  });
  after(async function () {
    await h?.close();
  });

  it("onboards a manufacturer with its code prefixes: two transactions, answered with the indexed record", async function () {
    const r = await send("POST", "/v1/participants", h.keys.regulator, {
      account: newMaker,
      role: "manufacturer",
      name: "New Pharma Co",
      licence: "LIC-NEW-1",
      region: "310000",
      codePrefixes: ["CN:8631", "GS1:6955555"],
    });
    expect(r.status, r.text).to.equal(201);
    expect(r.body.participant).to.deep.include({ role: "manufacturer", name: "New Pharma Co", suspended: false });
    expect(r.body.participant!.codePrefixes).to.deep.equal(["CN:8631", "GS1:6955555"]);
    const onChain = await h.s.ledger.participantOf(newMaker);
    expect(Number(onChain.id)).to.equal(r.body.participant!.id);
    expect(Number(await h.s.ledger.prefixOwnerOf("8631000"))).to.equal(r.body.participant!.id);
    newMakerKey = (await h.ctx.keys.issue(newMaker, "new maker")).key;
  });

  it("replays an onboarding retried with the same Idempotency-Key, sending nothing", async function () {
    const body = {
      account: newPharmacy,
      role: "pharmacy",
      name: "Corner Pharmacy",
      licence: "LIC-P-9",
      region: "310101",
    };
    const headers = { "idempotency-key": "onboard-corner-1" };
    const first = await send("POST", "/v1/participants", h.keys.regulator, body, headers);
    expect(first.status, first.text).to.equal(201);
    const nonce = await nonceOf(h.s.regulator.address);
    const again = await send("POST", "/v1/participants", h.keys.regulator, body, headers);
    expect(again.status).to.equal(201);
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
    expect(again.body.transactions).to.deep.equal(first.body.transactions);
    expect(await nonceOf(h.s.regulator.address)).to.equal(nonce);
    const other = await send("POST", "/v1/participants", h.keys.regulator, { ...body, name: "Other" }, headers);
    expect(other.status).to.equal(422);
  });

  it("refuses before sending: a prefix another maker holds, prefixes for a pharmacy, an account onboarded already", async function () {
    const nonce = await nonceOf(h.s.regulator.address);
    const account = ethers.Wallet.createRandom().address;
    const base = { account, role: "manufacturer", name: "Squatter", licence: "LIC-S", region: "110000" };
    const taken = await send("POST", "/v1/participants", h.keys.regulator, { ...base, codePrefixes: ["CN:861"] });
    expect(taken.status, taken.text).to.equal(409);
    expect(taken.body).to.deep.include({ type: "urn:drugtrace:problem:conflict", field: "codePrefixes" });
    const pharmacy = await send("POST", "/v1/participants", h.keys.regulator, {
      ...base,
      role: "pharmacy",
      codePrefixes: ["CN:8699"],
    });
    expect(pharmacy.status).to.equal(400);
    const malformed = await send("POST", "/v1/participants", h.keys.regulator, {
      ...base,
      codePrefixes: ["CN:12345678"],
    });
    expect(malformed.status).to.equal(400);
    const again = await send("POST", "/v1/participants", h.keys.regulator, { ...base, account: h.s.pharmacy.address });
    expect(again.status, again.text).to.be.within(400, 499);
    expect(again.body.type).to.equal("urn:drugtrace:problem:ledger-refused");
    expect(again.body.error!.name).to.equal("AlreadyOnboarded");
    expect(await nonceOf(h.s.regulator.address)).to.equal(nonce);
  });

  it("lets only the regulator govern: a manufacturer or pharmacy is refused with 403", async function () {
    const body = {
      account: ethers.Wallet.createRandom().address,
      role: "pharmacy",
      name: "X",
      licence: "L",
      region: "1",
    };
    for (const key of [h.keys.maker, h.keys.pharmacy, h.keys.insurer]) {
      expect((await send("POST", "/v1/participants", key, body)).status).to.equal(403);
      expect(
        (await send("POST", `/v1/participants/${h.s.pharmacy.address}/suspend`, key, { reason: "x" })).status,
      ).to.equal(403);
      expect((await send("PUT", "/v1/settings/return-window", key, { days: 5 })).status).to.equal(403);
    }
    expect((await send("POST", "/v1/products", h.keys.regulator, {})).status).to.equal(403);
  });

  let productId: number;
  let batchId: number;

  it("registers a product under the maker's prefix, and refuses one outside its prefixes", async function () {
    const r = await send("POST", "/v1/products", newMakerKey, {
      productCode: "8631234",
      name: "Metformin 500mg",
      approvalNumber: "H20230001",
      packageSpec: "tablet 30/box",
      packQuantity: 30,
    });
    expect(r.status, r.text).to.equal(201);
    expect(r.body.product).to.deep.include({ productCode: "8631234", packQuantity: 30 });
    productId = r.body.product!.id;
    const nonce = await nonceOf(newMaker);
    const outside = await send("POST", "/v1/products", newMakerKey, {
      productCode: "8612999",
      name: "Squatted",
      approvalNumber: "H1",
      packageSpec: "x",
      packQuantity: 1,
    });
    expect(outside.status, outside.text).to.be.within(400, 499);
    expect(outside.body.error!.name).to.equal("ProductCodeNotAssigned");
    expect(await nonceOf(newMaker)).to.equal(nonce);
  });

  it("registers a batch, and refuses dates the ledger refuses", async function () {
    const r = await send("POST", "/v1/batches", newMakerKey, {
      productId,
      lot: "LOT-2026-01",
      manufacturedOn: today(),
      expiresOn: inDays(700),
    });
    expect(r.status, r.text).to.equal(201);
    expect(r.body.batch).to.deep.include({ lot: "LOT-2026-01", recalled: false, productId });
    batchId = r.body.batch!.id;
    const future = await send("POST", "/v1/batches", newMakerKey, {
      productId,
      lot: "LOT-F",
      manufacturedOn: inDays(30),
      expiresOn: inDays(700),
    });
    expect(future.body.error?.name, future.text).to.equal("InvalidDates");
    expect(
      (await send("POST", "/v1/batches", newMakerKey, { productId, lot: "L", manufacturedOn: "soon", expiresOn: "x" }))
        .status,
    ).to.equal(400);
    const notMine = await send("POST", "/v1/batches", h.keys.otherMaker, {
      productId,
      lot: "L2",
      manufacturedOn: today(),
      expiresOn: inDays(9),
    });
    expect(notMine.body.error?.name).to.equal("NotProductManufacturer");
  });

  it("recalls a batch (maker), refuses a second recall, lets only the regulator lift it", async function () {
    const recall = await send("POST", `/v1/batches/${batchId}/recall`, newMakerKey, { reason: "label misprint" });
    expect(recall.status, recall.text).to.equal(200);
    expect(recall.body.batch).to.deep.include({ recalled: true });
    expect(recall.body.batch!.recalls).to.have.length(1);
    const twice = await send("POST", `/v1/batches/${batchId}/recall`, h.keys.regulator, { reason: "again" });
    expect(twice.body.error?.name).to.equal("BatchIsRecalled");
    expect(
      (await send("POST", `/v1/batches/${batchId}/recall`, h.keys.otherMaker, { reason: "x" })).body.error?.name,
    ).to.equal("NotBatchManufacturer");
    expect(
      (await send("POST", `/v1/batches/${batchId}/lift-recall`, newMakerKey, { reason: "fixed" })).status,
    ).to.equal(403);
    const lift = await send("POST", `/v1/batches/${batchId}/lift-recall`, h.keys.regulator, { reason: "relabelled" });
    expect(lift.status, lift.text).to.equal(200);
    expect(lift.body.batch).to.deep.include({ recalled: false });
    expect((await h.s.ledger.batchOf(batchId)).recalled).to.equal(false);
  });

  it("suspends an organisation (its key is refused, the ledger refuses its writes) and reinstates it", async function () {
    const r = await send("POST", `/v1/participants/${newMaker}/suspend`, h.keys.regulator, {
      reason: "GMP inspection",
    });
    expect(r.status, r.text).to.equal(200);
    expect(r.body.participant).to.deep.include({ suspended: true, suspensionReason: "GMP inspection" });
    const refused = await send("POST", "/v1/batches", newMakerKey, {
      productId,
      lot: "LOT-S",
      manufacturedOn: today(),
      expiresOn: inDays(90),
    });
    expect(refused.status).to.equal(403);
    const twice = await send("POST", `/v1/participants/${newMaker}/suspend`, h.keys.regulator, { reason: "again" });
    expect(twice.body.error?.name).to.equal("AlreadySuspended");
    const back = await send("POST", `/v1/participants/${r.body.participant!.id}/reinstate`, h.keys.regulator);
    expect(back.status, back.text).to.equal(200);
    expect(back.body.participant).to.deep.include({ suspended: false });
    const ok = await send("POST", "/v1/batches", newMakerKey, {
      productId,
      lot: "LOT-R",
      manufacturedOn: today(),
      expiresOn: inDays(90),
    });
    expect(ok.status, ok.text).to.equal(201);
    expect((await send("POST", `/v1/participants/0x${"00".repeat(20)}/reinstate`, h.keys.regulator)).status).to.equal(
      404,
    );
    expect((await send("POST", `/v1/participants/nobody/reinstate`, h.keys.regulator)).status).to.equal(400);
  });

  it("assigns and revokes code prefixes", async function () {
    const r = await send("POST", `/v1/participants/${newMaker}/code-prefixes`, h.keys.regulator, {
      prefixes: ["CN:8632"],
    });
    expect(r.status, r.text).to.equal(200);
    expect(r.body.participant!.codePrefixes).to.include("CN:8632");
    const revoke = await send("DELETE", `/v1/code-prefixes/${encodeURIComponent("CN:8632")}`, h.keys.regulator);
    expect(revoke.status, revoke.text).to.equal(200);
    expect(revoke.body.participant!.codePrefixes).to.not.include("CN:8632");
    const unknown = await send("DELETE", `/v1/code-prefixes/${encodeURIComponent("CN:8639")}`, h.keys.regulator);
    expect(unknown.body.error?.name).to.equal("CodePrefixNotAssigned");
  });

  it("sets the return window, and refuses one above 90 days", async function () {
    const r = await send("PUT", "/v1/settings/return-window", h.keys.regulator, { days: 14 });
    expect(r.status, r.text).to.equal(200);
    expect(r.body.returnWindowDays).to.equal(14);
    expect(Number(await h.s.ledger.returnWindow())).to.equal(14);
    const long = await send("PUT", "/v1/settings/return-window", h.keys.regulator, { days: 91 });
    expect(long.body.error?.name, long.text).to.equal("ReturnWindowTooLong");
    await send("PUT", "/v1/settings/return-window", h.keys.regulator, { days: 10 });
  });

  it("answers every registry route with what its OpenAPI entry declares", function () {
    const paths = h.api.specs.filter((s) => s.tags.includes("registry")).map((s) => `${s.method} ${s.path}`);
    expect(paths).to.include.members([
      "post /v1/participants",
      "post /v1/participants/{participant}/suspend",
      "post /v1/participants/{participant}/reinstate",
      "post /v1/participants/{participant}/code-prefixes",
      "delete /v1/code-prefixes/{prefix}",
      "put /v1/settings/return-window",
      "post /v1/products",
      "post /v1/batches",
      "post /v1/batches/{batchId}/recall",
      "post /v1/batches/{batchId}/lift-recall",
    ]);
    void (null as unknown as Reply);
  });
});
