/**
 * Once-only settlement under a race: two insurers settle overlapping claims through two service instances (two
 * apps on different ports, one chain, one Redis). Every code is settled exactly once; every loser is a 409
 * naming the winning claim and insurer; nothing is left pending.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { apiContext, serveApi, type RunningApi } from "../backend/api/service";
import { LedgerChain } from "../backend/chain/client";
import { buildRun, demoRunCodes } from "../backend/chain/runs";
import { call } from "./helpers/api";
import { packRefs, shipAndReceive, unitRef } from "./helpers/ledger";
import { testLog } from "./helpers/indexer";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

type Answer = {
  status?: string | number;
  winner?: { claimRef: string | null; insurer: { name: string } | null };
  code?: string;
  type?: string;
};

describe("API: settlement race across two service instances", function () {
  let h: WriteHarness;
  let second: RunningApi;
  let secondChain: LedgerChain;
  const UNITS = 24;
  const CLAIMS = 8;

  before(async function () {
    h = await startWriteApi();
    secondChain = await LedgerChain.connect(h.rpcUrl, await h.s.ledger.getAddress());
    second = await serveApi(apiContext(h.ctx.config, h.redis, secondChain, testLog), "127.0.0.1", 0);
  });
  after(async function () {
    await second?.close();
    secondChain?.destroy();
    await h?.close();
  });

  it("settles each code exactly once; every loser is a 409 naming the winner; nothing pending", async function () {
    const { ledger, maker, pharmacy, insurer, otherInsurer } = h.s;
    const shape = { unitCount: UNITS, unitsPerCase: 0, casesPerPallet: 0 };
    const all = demoRunCodes("8612345", shape, 555_000_000);
    const run = buildRun(all, shape);
    const receipt = await (await ledger.connect(maker).commission(1n, UNITS, 0, 0, run.codes, run.witness)).wait();
    const runId = Number(
      receipt!.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "UnitsCommissioned")!.args.runId,
    );
    const refs = Array.from({ length: UNITS }, (_, i) => unitRef(runId, i));
    await shipAndReceive(ledger, maker, pharmacy, refs);
    await ledger.connect(pharmacy).dispense(packRefs(refs), ethers.ZeroHash);
    const codes = all.map((c) => c.replace(/^CN:/, ""));
    expect(await h.ctx.writer.waitIndexed(await ethers.provider.getBlockNumber(), Date.now() + 10_000)).to.equal(true);
    // Insurer claim i: units 3i..3i+2; the other insurer's claim i: units 3i+2..3i+4 (overlapping by one or two).
    const claims: { key: string; insurer: typeof insurer; ref: string; units: number[] }[] = [];
    for (let i = 0; i < CLAIMS; i++) {
      claims.push({ key: h.keys.insurer, insurer, ref: `RACE-A-${i}`, units: [3 * i, 3 * i + 1, 3 * i + 2] });
      const b = [3 * i + 2, 3 * i + 3, 3 * i + 4].filter((u) => u < UNITS);
      claims.push({ key: h.keys.otherInsurer, insurer: otherInsurer, ref: `RACE-B-${i}`, units: b });
    }
    for (const c of claims) {
      const r = await call(h, "/v1/claims", {
        key: h.keys.pharmacy,
        body: { insurer: c.insurer.address, claimRef: c.ref, lines: c.units.map((u) => ({ code: codes[u]! })) },
      });
      expect(r.status, r.text).to.equal(201);
    }
    const instances = [{ url: h.url }, { url: second.url }];
    const replies = await Promise.all(
      claims.map((c, i) =>
        call<Answer>(instances[i % 2]!, "/v1/claims/settle", {
          key: c.key,
          body: { claimRef: c.ref },
          headers: { "Idempotency-Key": `race-${c.ref}` },
        }),
      ),
    );
    const winners = new Map<number, string>();
    replies.forEach((r, i) => {
      expect([200, 409], r.text).to.include(r.status);
      if (r.status === 200) for (const u of claims[i]!.units) winners.set(u, claims[i]!.ref);
    });
    // Exactly once: no unit in two winning claims, and the chain agrees with the winners.
    const winningUnits = replies.flatMap((r, i) => (r.status === 200 ? claims[i]!.units : []));
    expect(new Set(winningUnits).size).to.equal(winningUnits.length);
    const insurerIds = new Map<string, bigint>([
      [insurer.address, (await ledger.participantOf(insurer.address)).id],
      [otherInsurer.address, (await ledger.participantOf(otherInsurer.address)).id],
    ]);
    for (const [u, ref] of winners) {
      const settledBy = await ledger.settlementOf(refs[u]!);
      expect(settledBy).to.equal(insurerIds.get(claims.find((c) => c.ref === ref)!.insurer.address));
    }
    // Every loser names a winning claim holding its conflicting code, and the winning insurer.
    for (const [i, r] of replies.entries()) {
      if (r.status !== 409) continue;
      expect(r.body.winner, r.text).to.not.equal(undefined);
      const unit = codes.indexOf(r.body.code!);
      expect(claims[i]!.units).to.include(unit);
      const winnerClaim = claims.find((c) => c.ref === winners.get(unit));
      expect(winnerClaim, r.text).to.not.equal(undefined);
      expect(r.body.winner!.insurer!.name).to.equal(winnerClaim!.insurer === insurer ? "Insurer" : "OtherInsurer");
    }
    expect(replies.filter((r) => r.status === 409).length).to.be.greaterThan(0);
    // Nothing pending: no transaction waiting in the node, every idempotency record answered.
    const pendingBlock = await ethers.provider.send("eth_getBlockByNumber", ["pending", false]);
    expect(pendingBlock.transactions.length).to.equal(0);
    for (const c of claims) {
      const account = (c.insurer.address as string).toLowerCase();
      const record = JSON.parse((await h.redis.get(`svc:idem:${account}:race-${c.ref}`))!) as { state: string };
      expect(record.state).to.equal("done");
    }
  });
});
