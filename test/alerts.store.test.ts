import { expect } from "chai";
import { AlertError, AlertStore, type AlertActor, type RaiseInput } from "../backend/alerts";
import { ALERT_KEY_PREFIX } from "../backend/alerts/keys";
import { triage } from "../backend/alerts/model";
import { isIndexKey } from "../backend/index/store";
import { connectRedis, scanAllKeys, type RedisClient } from "../backend/store/redis";
import { startRedis } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer, startTopology, TOPOLOGIES } from "./helpers/indexer";
import { everyEventScenario } from "./helpers/scenario";

const settings = {
  ALERT_DEDUP_WINDOW_SECONDS: 600,
  ALERT_REPEAT_THRESHOLD: 3,
  ALERT_REPEAT_WINDOW_SECONDS: 300,
  ALERT_LOG_RETENTION_DAYS: 30,
};

const regulator: AlertActor = { keyId: "k-reg", participantId: null, role: "regulator", name: "NMPA" };
const pharmacy: AlertActor = { keyId: "k-ph", participantId: 4, role: "pharmacy", name: "Pharmacy" };
const otherPharmacy: AlertActor = { keyId: "k-ph2", participantId: 5, role: "pharmacy" };
const insurer: AlertActor = { keyId: "k-ins", participantId: 6, role: "insurer" };

let serial = 100_000_000;
const freshCode = () => `86123450${serial++}0001`.slice(0, 20);

function scanAlert(overrides: Partial<RaiseInput> = {}): RaiseInput {
  const raw = freshCode();
  return {
    source: "scan",
    reason: "UNKNOWN_CODE",
    code: { raw, normalised: `CN:${raw}`, productCode: raw.slice(0, 7) },
    reporter: pharmacy,
    ...overrides,
  };
}

describe("Alert triage", function () {
  it("tells a likely scanner error from a suspect pack", function () {
    expect(triage("UNKNOWN_CODE", ["LENGTH_19_EXPECTED_20"], 0, 3)).to.deep.equal({
      class: "likely_scanner_error",
      basis: "hint:LENGTH_19_EXPECTED_20",
    });
    expect(triage("UNKNOWN_CODE", [], 3, 3)).to.deep.equal({ class: "likely_scanner_error", basis: "repeated:3" });
    expect(triage("UNKNOWN_CODE", [], 2, 3).class).to.equal("suspect_pack");
    // A recalled or duplicate pack is what it is, whatever the scanner did.
    expect(triage("RECALLED", ["CASE_SWAPPED"], 9, 3).class).to.equal("suspect_pack");
    expect(triage("DUPLICATE_CODE", [], 9, 3).class).to.equal("suspect_pack");
    expect(triage("ALREADY_SETTLED", [], 0, 3).class).to.equal("suspect_pack");
    expect(triage("NOT_DISPENSED", [], 0, 3).class).to.equal("process_error");
    expect(triage("REPEATED_IN_CLAIM", [], 0, 3).class).to.equal("likely_scanner_error");
    expect(triage("SOMETHING_NEW", [], 0, 3).class).to.equal("suspect_pack");
  });
});

for (const topology of TOPOLOGIES) {
  describe(`Alert store on a ${topology}`, function () {
    let redis: RedisClient;
    let stop: () => Promise<void>;
    let store: AlertStore;

    before(async function () {
      ({ redis, stop } = await startTopology(topology));
      store = new AlertStore(redis, settings);
    });

    after(async function () {
      redis.disconnect();
      await stop();
    });

    it("raises an alert with its class, EU code, who and when, and a snapshot", async function () {
      const alert = await store.raise(
        scanAlert({ manufacturerId: 1, participants: [7], snapshot: { verdict: "UNKNOWN", code: "x" } }),
      );
      expect(alert).to.deep.include({
        status: "new",
        source: "scan",
        reason: "UNKNOWN_CODE",
        class: "suspect_pack",
        euCode: "A3",
        count: 1,
        manufacturerId: 1,
        closeReason: null,
        snapshot: { verdict: "UNKNOWN", code: "x" },
      });
      expect(alert.participants).to.have.members([4, 7, 1]);
      expect(alert.reporter).to.deep.include({ keyId: "k-ph", participantId: 4, role: "pharmacy" });
      expect(alert.firstSeen).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(alert.history).to.have.length(1);
      expect(alert.history[0]).to.deep.include({ action: "raised", to: "new" });
      expect(await store.get(alert.id)).to.deep.equal(alert);
      expect(await store.get("al_nonexistent")).to.equal(null);
    });

    it("counts the same code, reason and organisation within the window on the open alert", async function () {
      const input = scanAlert({ reporter: { ...pharmacy, keyId: "k-dedup" } });
      const first = await store.raise(input);
      const again = await store.raise(input);
      const third = await store.raise({ ...input, reporter: { ...pharmacy, keyId: "k-dedup-2" } });
      expect(again.id).to.equal(first.id);
      expect(third.id).to.equal(first.id); // another key of the same organisation
      expect(third.count).to.equal(3);
      const otherReason = await store.raise({ ...input, reason: "DUPLICATE_CODE" });
      const otherOrg = await store.raise({ ...input, reporter: otherPharmacy });
      // The same reporter on behalf of another organisation (an insurer's check for another pharmacy): its own.
      const otherConcerned = await store.raise({ ...input, participants: [9] });
      expect(otherReason.id).to.not.equal(first.id);
      expect(otherOrg.id).to.not.equal(first.id);
      expect(otherConcerned.id).to.not.equal(first.id);
      expect(otherConcerned.participants).to.include(9);
      // Concurrent raises of one new alert settle on one record.
      const burst = scanAlert();
      const ids = new Set((await Promise.all(Array.from({ length: 10 }, () => store.raise(burst)))).map((a) => a.id));
      expect(ids.size).to.equal(1);
      expect((await store.get([...ids][0]!))!.count).to.equal(10);
    });

    it("opens a new alert after the window, or once the open one is closed", async function () {
      const shortWindow = new AlertStore(redis, { ...settings, ALERT_DEDUP_WINDOW_SECONDS: 1 });
      const input = scanAlert();
      const first = await shortWindow.raise(input);
      await new Promise((r) => setTimeout(r, 1100));
      const later = await shortWindow.raise(input);
      expect(later.id).to.not.equal(first.id);
      await store.transition(later.id, { to: "closed", reason: "scanner_error" }, regulator);
      const afterClose = await store.raise(input);
      expect(afterClose.id).to.not.equal(later.id);
      expect(afterClose.status).to.equal("new");
    });

    it("classes a key's repeated misread-prone failures as a likely scanner error", async function () {
      const scanner = { ...pharmacy, keyId: "k-flaky" };
      const classes = [];
      for (let i = 0; i < 4; i++) classes.push((await store.raise(scanAlert({ reporter: scanner }))).class);
      expect(classes).to.deep.equal(["suspect_pack", "suspect_pack", "likely_scanner_error", "likely_scanner_error"]);
      const hinted = await store.raise(scanAlert({ hints: ["CASE_SWAPPED"] }));
      expect(hinted).to.deep.include({ class: "likely_scanner_error", triageBasis: "hint:CASE_SWAPPED" });
      // A claim check's refused lines are not a scanner's failures.
      const claimer = { ...insurer, keyId: "k-claims" };
      for (let i = 0; i < 4; i++) {
        const a = await store.raise(scanAlert({ source: "claim", reporter: claimer }));
        expect(a.class).to.equal("suspect_pack");
      }
    });

    it("moves through new → investigating → closed with who and when, refusing invalid transitions", async function () {
      const alert = await store.raise(scanAlert({ participants: [5] }));
      // The organisation concerned takes it into investigation and adds notes; it does not close.
      const investigating = await store.transition(
        alert.id,
        { to: "investigating", note: "checking stock" },
        otherPharmacy,
      );
      expect(investigating.status).to.equal("investigating");
      await expectAlertError(
        store.transition(alert.id, { to: "closed", reason: "false_positive" }, otherPharmacy),
        "forbidden",
      );
      await expectAlertError(store.transition(alert.id, { to: "investigating" }, regulator), "conflict");
      await expectAlertError(store.transition(alert.id, { to: "new" }, regulator), "conflict");
      await expectAlertError(store.transition(alert.id, { to: "closed" }, regulator), "invalid");
      await expectAlertError(store.transition(alert.id, { to: "investigating" }, insurer), "not-found");
      await store.addNote(alert.id, "scanner replaced", pharmacy);
      const closed = await store.transition(
        alert.id,
        { to: "closed", reason: "scanner_error", note: "CAPS LOCK" },
        regulator,
      );
      expect(closed).to.deep.include({ status: "closed", closeReason: "scanner_error" });
      expect(closed.history.map((h) => [h.action, h.from ?? null, h.to ?? null, h.by.role])).to.deep.equal([
        ["raised", null, "new", "pharmacy"],
        ["transition", "new", "investigating", "pharmacy"],
        ["note", null, null, "pharmacy"],
        ["transition", "investigating", "closed", "regulator"],
      ]);
      expect(closed.history[3]).to.deep.include({ reason: "scanner_error", note: "CAPS LOCK" });
      await expectAlertError(store.transition(alert.id, { to: "closed", reason: "resold" }, regulator), "conflict");
      await expectAlertError(store.transition(alert.id, { to: "investigating" }, pharmacy), "forbidden");
      const reopened = await store.transition(alert.id, { to: "investigating", note: "new evidence" }, regulator);
      expect(reopened).to.deep.include({ status: "investigating", closeReason: null });
    });

    it("lists per scope with filters, newest first, every alert exactly once across pages", async function () {
      const lister = new AlertStore(redis, settings);
      const pharmacyX: AlertActor = { keyId: "k-list", participantId: 900, role: "pharmacy" };
      const t0 = Date.UTC(2030, 0, 1);
      const raised = [];
      for (let i = 0; i < 60; i++) {
        raised.push(
          await lister.raise(
            scanAlert({
              reporter: pharmacyX,
              reason: i % 3 === 0 ? "RECALLED" : "UNKNOWN_CODE",
              manufacturerId: i % 2 === 0 ? 901 : 902,
              at: t0 + Math.floor(i / 2) * 1000, // pairs share a millisecond
            }),
          ),
        );
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await lister.list({ scope: { kind: "org", participantId: 900 }, limit: 7, cursor });
        seen.push(...page.alerts.map((a) => a.id));
        cursor = page.next ?? undefined;
      } while (cursor);
      expect(seen).to.deep.equal([...raised.map((a) => a.id)].sort().reverse());

      const recalled = await lister.list({
        scope: { kind: "org", participantId: 900 },
        reason: "RECALLED",
        limit: 100,
      });
      expect(recalled.alerts).to.have.length(20);
      expect(recalled.next).to.equal(null);
      const ofMaker = await lister.list({ scope: { kind: "manufacturer", manufacturerId: 902 }, limit: 100 });
      expect(ofMaker.alerts).to.have.length(30);
      const window = await lister.list({
        scope: { kind: "org", participantId: 900 },
        since: t0 + 10_000,
        until: t0 + 12_000,
        limit: 100,
      });
      expect(window.alerts).to.have.length(6);
      const byCode = await lister.list({ scope: { kind: "all" }, code: raised[5]!.code.normalised!, limit: 10 });
      expect(byCode.alerts.map((a) => a.id)).to.deep.equal([raised[5]!.id]);
      const notMine = await lister.list({
        scope: { kind: "org", participantId: 4 },
        code: raised[5]!.code.normalised!,
        limit: 10,
      });
      expect(notMine.alerts).to.deep.equal([]);
      await lister.transition(raised[0]!.id, { to: "investigating" }, pharmacyX);
      const investigating = await lister.list({ scope: { kind: "all" }, status: "investigating", limit: 100 });
      expect(investigating.alerts.map((a) => a.id)).to.include(raised[0]!.id);
      const scanner = await lister.list({
        scope: { kind: "org", participantId: 900 },
        class: "likely_scanner_error",
        limit: 100,
      });
      expect(scanner.alerts.every((a) => a.class === "likely_scanner_error")).to.equal(true);
      await expectAlertError(lister.list({ scope: { kind: "all" }, limit: 5, cursor: "nope" }), "invalid");
    });

    it("keeps every key under svc:{alerts}: where the index's rebuild never reaches", async function () {
      const keys = await scanAllKeys(redis, `${ALERT_KEY_PREFIX}*`);
      expect(keys.length).to.be.greaterThan(10);
      for (const key of keys) expect(isIndexKey(key), key).to.equal(false);
      const streams = keys.filter((k) => k.includes(":log:"));
      expect(streams).to.not.be.empty;
      expect(await redis.xlen(streams[0]!)).to.be.greaterThan(0);
    });
  });
}

describe("Alert store and index:rebuild", function () {
  it("keeps alerts when the index is wiped and rebuilt from the chain", async function () {
    const rpc = await startRpcServer();
    const server = await startRedis();
    const redis = connectRedis({ url: server.url });
    try {
      const s = await everyEventScenario();
      const t = await newIndexer(rpc.url, await s.ledger.getAddress(), redis);
      await t.indexer.syncOnce();
      const store = new AlertStore(redis, settings);
      const alert = await store.raise(scanAlert({ manufacturerId: 1 }));
      await store.transition(alert.id, { to: "investigating" }, regulator);
      const before = (await scanAllKeys(redis, "svc:*")).sort();
      t.close();
      const rebuild = await newIndexer(rpc.url, await s.ledger.getAddress(), redis);
      expect(await rebuild.store.wipe()).to.be.greaterThan(0);
      await rebuild.indexer.syncOnce();
      rebuild.close();
      expect((await scanAllKeys(redis, "svc:*")).sort()).to.deep.equal(before);
      expect(await store.get(alert.id)).to.deep.include({ status: "investigating", count: 1 });
    } finally {
      redis.disconnect();
      await server.stop();
      await rpc.close();
    }
  });
});

async function expectAlertError(promise: Promise<unknown>, kind: AlertError["kind"]) {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(AlertError);
    expect((err as AlertError).kind, (err as Error).message).to.equal(kind);
    return;
  }
  expect.fail(`expected an AlertError (${kind})`);
}
