import { expect } from "chai";
import { ethers } from "hardhat";
import { encryptKeystoreJsonSync, Wallet } from "ethers";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Signers } from "../backend/chain/signers";
import { call, type Reply } from "./helpers/api";
import { unitRef } from "./helpers/ledger";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

type WriteResult = {
  status: string;
  transactions: { txHash: string; method: string; block?: number; gasUsed?: number; batchedRequests?: number }[];
  items: { code: string; status: string; holder: { name: string } | null; inTransit: unknown; dispensing: unknown }[];
  shipmentId?: number;
};
type Problem = {
  type: string;
  title: string;
  status: number;
  error?: { name: string; args: Record<string, string> };
  code?: string;
  winner?: { claimRef: string | null; claimId: string | null; insurer: { name: string } | null };
};

describe("API: writes", function () {
  let h: WriteHarness;
  const post = <T = WriteResult>(path: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
    call<T>(h, path, { key, body, headers });
  const txCount = (who: { address: string }) => ethers.provider.getTransactionCount(who.address);
  const refused = async (reply: Reply<Problem>, status: number, name: string) => {
    expect(reply.status, reply.text).to.equal(status);
    expect(reply.body.type).to.equal("urn:drugtrace:problem:ledger-refused");
    expect(reply.body.error!.name, reply.text).to.equal(name);
  };
  let unitCodes: string[];

  before(async function () {
    h = await startWriteApi();
    const { demoRunCodes } = await import("../backend/chain/runs");
    unitCodes = demoRunCodes("8612345", { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 }, h.s.serialBase).map(
      (c) => c.replace(/^CN:/, ""),
    );
  });
  after(async function () {
    await h?.close();
  });

  describe("dispensing", function () {
    it("dispenses one pack end to end: signed, mined, indexed, answered with the new state", async function () {
      const r = await post("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.inPharmacyStock] });
      expect(r.status, r.text).to.equal(200);
      expect(r.body.status).to.equal("mined");
      expect(r.body.transactions[0]!.method).to.equal("dispense");
      expect(r.body.items[0]).to.deep.include({ code: h.s.codes.inPharmacyStock, status: "dispensed" });
      expect((await h.s.ledger.dispensingOf(unitRef(h.s.runId, 5))).dispensed).to.equal(true);
    });

    it("refuses a doomed write before sending it, naming the contract's error and the code", async function () {
      const before = await txCount(h.s.pharmacy);
      const r = await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.inPharmacyStock] });
      await refused(r, 409, "UnitAlreadyDispensed");
      expect(r.body.code).to.equal(h.s.codes.inPharmacyStock);
      expect(await txCount(h.s.pharmacy)).to.equal(before);
    });

    it("refuses by role (route), custody (NotHolder), quantity (InvalidQuantity) and unknown codes", async function () {
      const role = await post<Problem>("/v1/dispense", h.keys.distributor, { codes: [unitCodes[17]!] });
      expect(role.status).to.equal(403);
      await refused(
        await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[17]!] }),
        409,
        "NotHolder",
      );
      await refused(
        await post<Problem>("/v1/dispense/partial", h.keys.pharmacy, { code: unitCodes[3]!, quantity: 100 }),
        422,
        "InvalidQuantity",
      );
      const unknown = await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.unknown] });
      expect(unknown.status).to.equal(422);
      expect(unknown.body.type).to.equal("urn:drugtrace:problem:unknown-code");
    });

    it("batches a basket: concurrent requests of one prescription share one transaction, a bad one fails alone", async function () {
      const before = await txCount(h.s.pharmacy);
      const codes = [unitCodes[6]!, unitCodes[7]!, unitCodes[8]!, unitCodes[9]!];
      const replies = await Promise.all([
        ...codes.map((code) => post("/v1/dispense", h.keys.pharmacy, { codes: [code], prescriptionHash: "rx-basket" })),
        post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[0]!], prescriptionHash: "rx-basket" }),
      ]);
      for (const r of replies.slice(0, 4)) {
        expect(r.status, r.text).to.equal(200);
        expect((r.body as WriteResult).transactions[0]!.batchedRequests).to.equal(4);
      }
      expect(new Set(replies.slice(0, 4).map((r) => (r.body as WriteResult).transactions[0]!.txHash)).size).to.equal(1);
      await refused(replies[4] as Reply<Problem>, 409, "UnitAlreadyDispensed");
      expect(await txCount(h.s.pharmacy)).to.equal(before + 1);
    });

    it("a batch whose window closes while a request of the pharmacy is still being prepared waits for it", async function () {
      const settings = h.ctx.writer.settings;
      const window = settings.API_WRITE_BATCH_MS;
      // A long window, so that on a loaded machine the second request is prepared well within the hold.
      settings.API_WRITE_BATCH_MS = 2_000;
      try {
        const before = await txCount(h.s.pharmacy);
        // Stands for a request of the pharmacy whose codes are still being resolved when the window closes.
        const slow = h.ctx.writer.startPreparing(h.s.pharmacy.address);
        const first = post("/v1/dispense/undo", h.keys.pharmacy, { codes: [unitCodes[8]!] });
        await new Promise((r) => setTimeout(r, settings.API_WRITE_BATCH_MS + 200));
        const second = post("/v1/dispense/undo", h.keys.pharmacy, { codes: [unitCodes[7]!] });
        await new Promise((r) => setTimeout(r, 300));
        slow();
        const replies = await Promise.all([first, second]);
        for (const r of replies) {
          expect(r.status, r.text).to.equal(200);
          expect(r.body.transactions[0]!.batchedRequests).to.equal(2);
        }
        expect(replies[0]!.body.transactions[0]!.txHash).to.equal(replies[1]!.body.transactions[0]!.txHash);
        expect(await txCount(h.s.pharmacy)).to.equal(before + 1);
      } finally {
        settings.API_WRITE_BATCH_MS = window;
      }
      // Unit 7 sold again: the return-window test below needs it dispensed.
      const again = await post("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[7]!] });
      expect(again.status, again.text).to.equal(200);
    });

    it("dispenses part of a split pack, takes doses back, and undoes a whole-pack dispensing", async function () {
      const part = await post("/v1/dispense/partial", h.keys.pharmacy, { code: unitCodes[4]!, quantity: 5 });
      expect(part.status, part.text).to.equal(200);
      expect(part.body.items[0]!.status).to.equal("partially_dispensed");
      const back = await post("/v1/dispense/undo-partial", h.keys.pharmacy, { code: unitCodes[4]!, quantity: 2 });
      expect(back.status, back.text).to.equal(200);
      const undo = await post("/v1/dispense/undo", h.keys.pharmacy, { codes: [unitCodes[9]!] });
      expect(undo.status, undo.text).to.equal(200);
      expect(undo.body.items[0]!.status).to.equal("active");
      await refused(
        await post<Problem>("/v1/dispense/undo", h.keys.pharmacy, { codes: [unitCodes[0]!] }),
        409,
        "UnitIsSettled",
      );
    });
  });

  describe("idempotency", function () {
    it("replays the first answer for the same key and never submits twice; another body is a 422", async function () {
      const headers = { "Idempotency-Key": "undo-9-again-1" };
      const first = await post("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[9]!] }, headers);
      expect(first.status, first.text).to.equal(200);
      const count = await txCount(h.s.pharmacy);
      const again = await post("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[9]!] }, headers);
      expect(again.status).to.equal(200);
      expect(again.headers.get("idempotent-replayed")).to.equal("true");
      expect(again.body.transactions).to.deep.equal(first.body.transactions);
      expect(await txCount(h.s.pharmacy)).to.equal(count);
      const other = await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[2]!] }, headers);
      expect(other.status).to.equal(422);
      expect(other.body.type).to.equal("urn:drugtrace:problem:idempotency-mismatch");
    });

    it("replays a refusal too, and concurrent retries of one key submit once", async function () {
      const headers = { "Idempotency-Key": "dispense-2-concurrent" };
      const count = await txCount(h.s.pharmacy);
      const replies = await Promise.all(
        [1, 2, 3].map(() => post("/v1/dispense", h.keys.pharmacy, { codes: [unitCodes[2]!] }, headers)),
      );
      for (const r of replies) expect(r.status, r.text).to.equal(200);
      expect(new Set(replies.map((r) => r.body.transactions[0]!.txHash)).size).to.equal(1);
      expect(await txCount(h.s.pharmacy)).to.equal(count + 1);
      const refusedOnce = await post<Problem>(
        "/v1/dispense",
        h.keys.pharmacy,
        { codes: [unitCodes[2]!] },
        {
          "Idempotency-Key": "refused-1",
        },
      );
      expect(refusedOnce.status).to.equal(409);
      const replayed = await post<Problem>(
        "/v1/dispense",
        h.keys.pharmacy,
        { codes: [unitCodes[2]!] },
        {
          "Idempotency-Key": "refused-1",
        },
      );
      expect(replayed.status).to.equal(409);
      expect(replayed.headers.get("idempotent-replayed")).to.equal("true");
    });
  });

  describe("custody", function () {
    let shipmentId: number;
    it("ships by codes, receives part, returns the rest: the shipment closes short", async function () {
      const shipped = await post("/v1/shipments", h.keys.maker, {
        to: h.s.distributor.address,
        codes: [h.s.codes.gs1, h.s.codes.recalled],
      });
      expect(shipped.status, shipped.text).to.equal(201);
      shipmentId = shipped.body.shipmentId!;
      expect(shipmentId).to.be.a("number");
      expect(shipped.body.items[0]!.status).to.equal("in_transit");
      await refused(
        await post<Problem>(`/v1/shipments/${shipmentId}/receive`, h.keys.pharmacy, { codes: [h.s.codes.gs1] }),
        403,
        "NotShipmentParty",
      );
      const got = await post(`/v1/shipments/${shipmentId}/receive`, h.keys.distributor, { codes: [h.s.codes.gs1] });
      expect(got.status, got.text).to.equal(200);
      expect(got.body.items[0]!.holder!.name).to.equal("Distributor");
      const back = await post(`/v1/shipments/${shipmentId}/return`, h.keys.maker, {});
      expect(back.status, back.text).to.equal(200);
      const shipment = await h.s.ledger.shipmentOf(shipmentId);
      expect(shipment.discrepancy).to.equal(true);
    });

    it("decommissions with a reason; what is decommissioned ships no more", async function () {
      const gone = await post("/v1/decommission", h.keys.distributor, { codes: [h.s.codes.gs1], reason: "damaged" });
      expect(gone.status, gone.text).to.equal(200);
      expect(gone.body.items[0]!.status).to.equal("damaged");
      await refused(
        await post<Problem>("/v1/shipments", h.keys.distributor, { to: h.s.pharmacy.address, codes: [h.s.codes.gs1] }),
        409,
        "ItemDecommissioned",
      );
    });

    it("refuses to dispense a recalled pack the pharmacy holds (UnitRecalled)", async function () {
      const shipped = await post("/v1/shipments", h.keys.maker, {
        to: h.s.pharmacy.address,
        codes: [h.s.codes.recalled],
      });
      expect(shipped.status, shipped.text).to.equal(201);
      const got = await post(`/v1/shipments/${shipped.body.shipmentId}/receive`, h.keys.pharmacy, {});
      expect(got.status, got.text).to.equal(200);
      await refused(
        await post<Problem>("/v1/dispense", h.keys.pharmacy, { codes: [h.s.codes.recalled] }),
        409,
        "UnitRecalled",
      );
    });
  });

  describe("claims and settlement", function () {
    it("settles a submitted claim once; a second insurer's claim on the same pack is a 409 naming the winner", async function () {
      const lines = [{ code: unitCodes[6]! }, { code: unitCodes[4]!, quantity: 2 }];
      const submitted = await post<{ wholePacks: number; splitLines: number }>("/v1/claims", h.keys.pharmacy, {
        insurer: h.s.insurer.address,
        claimRef: "CLAIM-W-1",
        lines,
      });
      expect(submitted.status, submitted.text).to.equal(201);
      expect(submitted.body).to.deep.include({ wholePacks: 1, splitLines: 1 });
      const rival = await post("/v1/claims", h.keys.pharmacy, {
        insurer: h.s.otherInsurer.address,
        claimRef: "CLAIM-W-2",
        lines: [{ code: unitCodes[6]! }],
      });
      expect(rival.status, rival.text).to.equal(201);
      const settled = await post("/v1/claims/settle", h.keys.insurer, { claimRef: "CLAIM-W-1" });
      expect(settled.status, settled.text).to.equal(200);
      expect(settled.body.transactions.map((t) => t.method)).to.deep.equal(["settle", "settlePartial"]);
      const lost = await post<Problem>("/v1/claims/settle", h.keys.otherInsurer, { claimRef: "CLAIM-W-2" });
      expect(lost.status, lost.text).to.equal(409);
      expect(lost.body.winner!.insurer!.name).to.equal("Insurer");
      expect(lost.body.code).to.equal(unitCodes[6]);
      const none = await post<Problem>("/v1/claims/settle", h.keys.otherInsurer, { claimRef: "CLAIM-W-1" });
      expect(none.status).to.equal(404);
    });

    it("refuses consent and reversal errors from the ledger; reverses its own settlement", async function () {
      await refused(
        await post<Problem>("/v1/claims/reverse", h.keys.otherInsurer, {
          claimRef: "CLAIM-W-1",
          pharmacy: h.s.pharmacy.address,
          codes: [unitCodes[6]!],
          reason: "not mine",
        }),
        409,
        "NotSettledByInsurer",
      );
      const reversed = await post("/v1/claims/reverse", h.keys.insurer, {
        claimRef: "CLAIM-W-1",
        pharmacy: h.s.pharmacy.address,
        codes: [unitCodes[6]!, unitCodes[4]!],
        reason: "billing error",
      });
      expect(reversed.status, reversed.text).to.equal(200);
      expect(reversed.body.transactions.map((t) => t.method)).to.deep.equal([
        "reverseSettlement",
        "reversePartialSettlement",
      ]);
    });
  });

  describe("signers", function () {
    it("refuses dev keys in production and loads encrypted keystores", async function () {
      expect(() =>
        Signers.fromDevKeys({ SIGNER_DEV_KEYS: [Wallet.createRandom().privateKey], NODE_ENV: "production" }),
      ).to.throw(/refused/);
      const wallet = Wallet.createRandom();
      const dir = mkdtempSync(path.join(tmpdir(), "keystores-"));
      writeFileSync(
        path.join(dir, "org.json"),
        encryptKeystoreJsonSync({ address: wallet.address, privateKey: wallet.privateKey }, "pw", {
          scrypt: { N: 1024 },
        }),
      );
      const signers = await Signers.load({
        SIGNER_DEV_KEYS: [],
        NODE_ENV: "production",
        SIGNER_KEYSTORE_DIR: dir,
        SIGNER_KEYSTORE_PASSWORD: "pw",
      });
      expect(signers.get(wallet.address)!.address).to.equal(wallet.address);
      expect(JSON.stringify(signers)).to.not.include(wallet.privateKey.slice(2));
    });
  });

  describe("return window", function () {
    it("refuses an undo after the window (ReturnWindowClosed)", async function () {
      await ethers.provider.send("evm_increaseTime", [25 * 86_400]);
      await ethers.provider.send("evm_mine", []);
      await refused(
        await post<Problem>("/v1/dispense/undo", h.keys.pharmacy, { codes: [unitCodes[7]!] }),
        409,
        "ReturnWindowClosed",
      );
    });
  });
});
