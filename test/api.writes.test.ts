import { expect } from "chai";
import { ethers } from "hardhat";
import { call, type Reply } from "./helpers/api";
import { unitRef } from "./helpers/ledger";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

type WriteResult = {
  status: string;
  transactions: { txHash: string; method: string; block?: number; gasUsed?: number; batchedRequests?: number }[];
  items: { code: string; status: string; holder: { name: string } | null; dispensing: unknown }[];
  shipmentId?: number;
};
type Problem = {
  type: string;
  title: string;
  status: number;
  error?: { name: string; args: Record<string, string> };
  code?: string;
};

describe("API: writes", function () {
  let h: WriteHarness;
  const post = <T = WriteResult>(path: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
    call<T>(h, path, { key, body, headers });

  before(async function () {
    h = await startWriteApi();
  });
  after(async function () {
    await h?.close();
  });

  it("dispenses one pack end to end: signed, mined, indexed, answered with the new state", async function () {
    const r: Reply<WriteResult> = await post("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.inPharmacyStock] });
    expect(r.status, r.text).to.equal(200);
    expect(r.body.status).to.equal("mined");
    expect(r.body.transactions[0]!.method).to.equal("dispense");
    expect(r.body.items[0]).to.deep.include({ code: h.s.codes.inPharmacyStock, status: "dispensed" });
    const onChain = await h.s.ledger.dispensingOf(unitRef(h.s.runId, 5));
    expect(onChain.dispensed).to.equal(true);
    void ethers;
  });

  it("refuses a doomed write before sending it, naming the contract's error", async function () {
    const before = await ethers.provider.getTransactionCount(h.s.pharmacy.address);
    const r = await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.inPharmacyStock] });
    expect(r.status, r.text).to.equal(409);
    expect(r.body.type).to.equal("urn:drugtrace:problem:ledger-refused");
    expect(r.body.error!.name).to.equal("UnitAlreadyDispensed");
    expect(r.body.code).to.equal(h.s.codes.inPharmacyStock);
    expect(await ethers.provider.getTransactionCount(h.s.pharmacy.address)).to.equal(before);
  });
});
