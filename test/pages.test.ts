/**
 * The web pages in a real browser (Chromium via playwright-core) against the API harness with writes: the
 * counter's scans by a typing wedge scanner and by camera, dispensing; the insurer's check and settlement and a
 * second insurer refused; the manufacturer's commissioning from a CSV and a recall; the regulator closing an
 * alert; the language switch. Each page is screenshotted into test-artifacts/.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { claimRefBytes32 } from "../backend/api/claims-check";
import { demoRunCodes } from "../backend/chain/runs";
import { call, codePath } from "./helpers/api";
import { openBrowser, screenshot, signIn, y4mOf, type TestBrowser } from "./helpers/browser";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

/**
 * Types a code as a keyboard-wedge scanner does (one key at a time, Enter at the end) and waits for its answer
 * (the last one shown is cleared first, so the verdict read is this scan's).
 */
async function wedgeScan(page: Page, code: string): Promise<{ verdict: string; reasons: string[] }> {
  await page.locator("#result").evaluate((result) => result.replaceChildren());
  await page.locator("#code").focus();
  await page.keyboard.type(code, { delay: 2 });
  await page.keyboard.press("Enter");
  await page.locator("#verdict").waitFor();
  return verdictShown(page);
}

async function verdictShown(page: Page): Promise<{ verdict: string; reasons: string[] }> {
  const verdict = (await page.locator("#verdict").getAttribute("data-verdict")) ?? "";
  const reasons = await page
    .locator("#reasons li")
    .evaluateAll((lis) => lis.map((li) => li.getAttribute("data-reason") ?? ""));
  return { verdict, reasons };
}

const GS = String.fromCharCode(0x1d);

describe("Pages in a real browser", function () {
  this.timeout(180_000);
  let h: WriteHarness;
  let browser: TestBrowser;

  before(async function () {
    h = await startWriteApi();
    browser = await openBrowser();
  });
  after(async function () {
    await browser?.close();
    await h?.close();
  });

  it("serves the pages under helmet's CSP with wasm allowed, and zxing's wasm as application/wasm", async function () {
    const page = await call(h, "/counter");
    expect(page.status).to.equal(200);
    expect(page.headers.get("content-type")).to.match(/text\/html/);
    const csp = (page.headers.get("content-security-policy") ?? "").split(";").map((d) => d.trim());
    expect(csp).to.include("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).to.include("default-src 'self'");
    expect(page.text).to.not.match(/<script>(?!<\/)|src="http/);
    // The page's scripts (its entry and the chunks it preloads) name our wasm.
    const scripts = [...page.text.matchAll(/\/assets\/[\w-]+\.js/g)].map((m) => m[0]);
    const bodies = await Promise.all(scripts.map(async (src) => (await call(h, src)).text));
    const wasmPath = bodies.map((js) => /assets\/zxing_reader-[\w-]+\.wasm/.exec(js)?.[0]).find(Boolean);
    expect(wasmPath, "the counter's scripts name our wasm").to.be.a("string");
    const res = await fetch(`${h.url}/${wasmPath}`);
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.equal("application/wasm");
  });

  describe("pharmacy counter", function () {
    before(async function () {
      await signIn(browser.page, h.url, h.keys.pharmacy);
      await browser.page.goto(`${h.url}/counter`);
    });

    it("shows OK, ALERT with reasons, and UNKNOWN with words, for codes typed by a wedge scanner", async function () {
      const page = browser.page;
      const good = await wedgeScan(page, h.s.codes.inPharmacyStock);
      expect(good.verdict).to.equal("OK");
      expect(await page.locator("#verdict").textContent()).to.equal("OK");

      const recalled = await wedgeScan(page, h.s.codes.recalled);
      expect(recalled.verdict).to.equal("ALERT");
      expect(recalled.reasons).to.include("RECALLED");
      expect(await page.locator("#reasons").textContent()).to.include("recalled");

      const settled = await wedgeScan(page, h.s.codes.dispensedAndSettled);
      expect(settled.verdict).to.equal("ALERT");
      expect(settled.reasons).to.include.members(["ALREADY_DISPENSED", "ALREADY_SETTLED"]);
      expect(await page.locator("#reasons").textContent()).to.include("An insurer already paid for this pack.");

      const unknown = await wedgeScan(page, h.s.codes.unknown);
      expect(unknown.verdict).to.equal("UNKNOWN");
      expect(await page.locator("#reasons").textContent()).to.include("possibly counterfeit");
      expect(await page.locator("#history li").count()).to.equal(4);
      await screenshot(page, "counter");
    });

    it("reads a GS1 code with the scanner's ]d2 prefix and a GS before a trailing field", async function () {
      const page = browser.page;
      const shown = await wedgeScan(page, `]d2${h.s.codes.gs1}${GS}10LOT1`);
      expect(shown.verdict).to.not.equal("UNKNOWN");
    });

    it("dispenses a pack in stock and undoes it", async function () {
      const page = browser.page;
      await wedgeScan(page, h.s.codes.inPharmacyStock);
      await page.getByRole("button", { name: "Dispense", exact: true }).click();
      await page.locator("#dispense-result", { hasText: "Dispensed." }).waitFor();
      expect((await verdictShown(page)).reasons).to.include("ALREADY_DISPENSED");
      await page.getByRole("button", { name: "Undo dispensing" }).click();
      await page.locator("#dispense-result", { hasText: "Dispensing undone." }).waitFor();
      expect((await verdictShown(page)).verdict).to.equal("OK");
    });

    it("dispenses doses of a split pack by quantity and gives them back", async function () {
      const page = browser.page;
      await wedgeScan(page, h.s.codes.partiallyDispensed);
      await page.getByLabel("Doses (split pack; empty for the whole pack)").fill("2");
      await page.getByRole("button", { name: "Dispense", exact: true }).click();
      await page.locator("#dispense-result", { hasText: "Dispensed." }).waitFor();
      const after = await call<{ dispensing: { split: { dispensed: number } } }>(
        h,
        codePath(h.s.codes.partiallyDispensed),
        { key: h.keys.pharmacy },
      );
      const dispensed = after.body.dispensing.split.dispensed;
      await page.getByRole("button", { name: "Undo dispensing" }).click();
      await page.locator("#dispense-result", { hasText: "Dispensing undone." }).waitFor();
      const back = await call<{ dispensing: { split: { dispensed: number } } }>(
        h,
        codePath(h.s.codes.partiallyDispensed),
        { key: h.keys.pharmacy },
      );
      expect(back.body.dispensing.split.dispensed).to.equal(dispensed - 2);
      await page.getByLabel("Doses (split pack; empty for the whole pack)").fill("");
    });

    it("switches to Chinese and back, every string from the catalogue", async function () {
      const page = browser.page;
      expect((await wedgeScan(page, h.s.codes.inPharmacyStock)).verdict).to.equal("OK");
      await page.getByLabel("Language").selectOption("zh");
      await page.locator("#verdict", { hasText: "正常" }).waitFor();
      expect(await page.locator("h1").textContent()).to.equal("扫码");
      expect(await page.getByRole("button", { name: "摄像头扫码" }).count()).to.equal(1);
      await screenshot(page, "counter-zh");
      await page.getByLabel("语言").selectOption("en");
      await page.locator("h1", { hasText: "Scan a pack" }).waitFor();
    });
  });

  describe("insurer", function () {
    it("checks and settles a claim with one click; a second insurer sees the duplicate refused with the earlier claim", async function () {
      // A pack in the pharmacy's stock (dispensed and undone by the counter's test), dispensed for this claim.
      const code = h.s.codes.inPharmacyStock;
      const pharmacy = h.s.pharmacy.address;
      const dispensed = await call(h, "/v1/dispense", { key: h.keys.pharmacy, body: { codes: [code] } });
      expect(dispensed.status, dispensed.text).to.equal(200);
      const submit = async (insurer: string, claimRef: string) => {
        const r = await call(h, "/v1/claims", { key: h.keys.pharmacy, body: { insurer, claimRef, lines: [{ code }] } });
        expect(r.status, r.text).to.equal(201);
      };
      await submit(h.s.insurer.address, "PAGES-CLAIM-1");
      await submit(h.s.otherInsurer.address, "PAGES-CLAIM-2");

      const claim = async (tab: Page, claimRef: string) => {
        await tab.goto(`${h.url}/insurer`);
        await tab.getByLabel("Claim reference").fill(claimRef);
        await tab.getByLabel("Pharmacy (id or account)").fill(pharmacy);
        await tab.getByLabel("Codes, one a line (scan or paste)").fill(`${code}\n`);
        await tab.getByRole("button", { name: "Check claim" }).click();
        await tab.locator("#decision").waitFor();
        return tab.locator("#decision").getAttribute("data-decision");
      };
      const page = browser.page;
      await signIn(page, h.url, h.keys.insurer);
      expect(await claim(page, "PAGES-CLAIM-1")).to.equal("APPROVE");
      await page.getByRole("button", { name: "Settle" }).click();
      await page.locator("#settle-result", { hasText: "Settled claim PAGES-CLAIM-1." }).waitFor();
      await page.locator("#today li", { hasText: "1 packs" }).waitFor();
      await screenshot(page, "insurer");

      const rival = await browser.context.newPage();
      await signIn(rival, h.url, h.keys.otherInsurer);
      expect(await claim(rival, "PAGES-CLAIM-2")).to.equal("REJECT");
      const refused = rival.locator("tr[data-ok=false]");
      expect(await refused.locator("[data-reason=ALREADY_SETTLED]").count()).to.equal(1);
      // The earlier claim as the ledger holds it (the claim number's hash), and the pattern in words.
      expect(await refused.textContent()).to.include(claimRefBytes32("PAGES-CLAIM-1"));
      expect(await refused.locator(".pattern").textContent()).to.match(/^Pattern: /);
      expect(await rival.getByRole("button", { name: "Settle" }).isDisabled()).to.equal(true);
      await screenshot(rival, "insurer-refused");
      await rival.close();
    });
  });

  describe("manufacturer", function () {
    it("commissions a small CSV with the progress bar following the job, prints its labels, and recalls a batch", async function () {
      const page = browser.page;
      await signIn(page, h.url, h.keys.maker);
      await page.goto(`${h.url}/manufacturer`);
      await page.locator("tr[data-batch]").first().waitFor();
      const batchOne = page.locator("tr[data-batch='1']");
      const unitsBefore = Number(await batchOne.locator("[data-count=units]").textContent());

      const codes = demoRunCodes("8612345", { unitCount: 6, unitsPerCase: 0, casesPerPallet: 0 }, 777_000_000).map(
        (c) => c.replace(/^CN:/, ""),
      );
      const csv = join(tmpdir(), `pages-commission-${process.pid}.csv`);
      writeFileSync(csv, "code,level\n" + codes.map((c) => `${c},unit`).join("\n") + "\n");
      await page.getByLabel("Batch to commission").selectOption("1");
      await page.getByLabel("CSV file (code,level)").setInputFiles(csv);
      await page.getByRole("button", { name: "Commission", exact: true }).click();
      await page.locator("#job[data-status=done]").waitFor({ timeout: 60_000 });
      expect(
        await page.locator("#progress").evaluate((p) => [p.getAttribute("value"), p.getAttribute("max")]),
      ).to.deep.equal(["6", "6"]);
      await page.locator("tr[data-batch='1'] [data-count=units]", { hasText: String(unitsBefore + 6) }).waitFor();

      await page.getByRole("button", { name: "Print labels" }).click();
      await page.locator("#label-grid figure").nth(5).waitFor();
      expect(await page.locator("#label-grid canvas").count()).to.equal(12);

      const recallable = await page
        .locator("tr[data-batch]:has([data-recalled=false])")
        .last()
        .getAttribute("data-batch");
      await page.getByLabel("Recall reason").fill("labelling error");
      await page.getByRole("button", { name: `Recall batch ${recallable}` }).click();
      await page.locator(`tr[data-batch='${recallable}'] [data-recalled=true]`).waitFor();
      const batch = await call<{ batch: { recalled: boolean } }>(h, `/v1/batches/${recallable}`, { key: h.keys.maker });
      expect(batch.body.batch.recalled).to.equal(true);
      await screenshot(page, "manufacturer");
    });
  });

  describe("regulator", function () {
    it("moves an alert from new to investigating to closed with a reason, suspends and reinstates, and charts activity", async function () {
      const scanned = await call<{ alertIds: string[] }>(h, codePath("86123459999999990042"), { key: h.keys.pharmacy });
      const alertId = scanned.body.alertIds[0]!;
      expect(alertId).to.be.a("string");
      const page = browser.page;
      await signIn(page, h.url, h.keys.regulator);
      await page.goto(`${h.url}/regulator`);
      const row = page.locator(`tr[data-alert='${alertId}']`);
      await row.waitFor();
      await page.getByRole("button", { name: `Investigate alert ${alertId}` }).click();
      await page.locator("#alert-result", { hasText: "investigating" }).waitFor();
      await page.getByLabel("Show alerts").selectOption("investigating");
      await row.and(page.locator("[data-status=investigating]")).waitFor();
      await page.getByLabel(`Close reason for alert ${alertId}`).selectOption("scanner_error");
      await page.getByRole("button", { name: `Close alert ${alertId}` }).click();
      await page.locator("#alert-result", { hasText: `Alert ${alertId} is closed.` }).waitFor();
      const closed = await call<{ status: string; closeReason: string }>(h, `/v1/alerts/${alertId}`, {
        key: h.keys.regulator,
      });
      expect(closed.body).to.deep.include({ status: "closed", closeReason: "scanner_error" });

      const other = await call<{ participant: { id: number; name: string } }>(h, "/v1/participants/me", {
        key: h.keys.otherPharmacy,
      });
      const { id, name } = other.body.participant;
      await page.getByLabel("Suspension reason").fill("inspection");
      await page.getByRole("button", { name: `Suspend ${name}` }).click();
      await page.locator(`tr[data-participant='${id}'][data-suspended=true]`).waitFor();
      await page.getByRole("button", { name: `Reinstate ${name}` }).click();
      await page.locator(`tr[data-participant='${id}'][data-suspended=false]`).waitFor();

      await page.locator("#chart canvas").first().waitFor();
      await screenshot(page, "regulator");
      await page.getByLabel("Language").selectOption("zh");
      await page.locator("h1", { hasText: "警示" }).waitFor();
      await screenshot(page, "regulator-zh");
      await page.getByLabel("语言").selectOption("en");
    });
  });

  describe("regulator: supply", function () {
    it("lists flow signals in the supply alerts queue with the figures that raised them, and moves them on", async function () {
      // A pharmacy in another region bills a pack already settled in 110000: a cross-region flow alert.
      const far = (await ethers.getSigners())[15]!;
      await h.s.ledger.connect(h.s.regulator).onboard(far.address, 3, "Far Pharmacy", "LIC-Far", "440000");
      const claim = {
        claimRef: "PAGES-FAR-1",
        pharmacy: far.address,
        lines: [{ code: h.s.codes.dispensedAndSettled }],
      };
      for (let tries = 0; ; tries++) {
        const check = await call(h, "/v1/claims/check", { key: h.keys.otherInsurer, body: claim });
        if (check.status === 200) break;
        expect(tries, check.text).to.be.lessThan(100);
        await new Promise((r) => setTimeout(r, 100));
      }
      const raised = await call<{ alerts: { id: string }[] }>(h, "/v1/alerts?source=supply&reason=FLOW_CROSS_REGION", {
        key: h.keys.regulator,
      });
      const alertId = raised.body.alerts[0]!.id;

      const page = browser.page;
      await signIn(page, h.url, h.keys.regulator);
      await page.goto(`${h.url}/regulator`);
      const queue = page.locator("#supply-alerts");
      const row = queue.locator(`tr[data-alert='${alertId}']`);
      await row.waitFor();
      expect(await row.textContent()).to.include(
        "Packs settled in one region were billed again in another soon after.",
      );
      expect(await row.locator(".figures").textContent()).to.include("earlierRegion 110000");
      // Only supply alerts are in this queue.
      const reasons = await queue.locator("tr[data-reason]").evaluateAll((rows) => rows.map((r) => r.dataset.reason));
      expect(
        reasons.every((r) => r!.startsWith("FLOW_") || /SHORTAGE|SURGE|EXPIRY/.test(r!)),
        String(reasons),
      ).to.equal(true);
      await queue.getByRole("button", { name: `Investigate alert ${alertId}` }).click();
      await page.locator("#alert-result", { hasText: "investigating" }).waitFor();
      await screenshot(page, "regulator-supply");
    });

    it("shows days of cover per product and region with the risk in words, and charts dispensing with its forecast band", async function () {
      type Overview = {
        products: { productId: number; regions: { region: string; risk: string; stock: { inTransit: number } }[] }[];
      };
      const overview = (await call<Overview>(h, "/v1/supply/overview", { key: h.keys.regulator })).body;
      expect(overview.products.length).to.be.greaterThan(0);
      const page = browser.page;
      await signIn(page, h.url, h.keys.regulator);
      await page.goto(`${h.url}/regulator`);
      await page.locator("#cover table.cover-table").waitFor();
      const words: Record<string, string> = { ok: "OK", low: "Low", critical: "Critical", no_demand: "No demand" };
      let onTheWay = 0;
      for (const product of overview.products)
        for (const { region, risk, stock } of product.regions) {
          const cell = page.locator(`#cover tr[data-product='${product.productId}'] td[data-region='${region}']`);
          expect(await cell.getAttribute("data-risk"), `${product.productId} ${region}`).to.equal(risk);
          // Colour is not the only signal: the risk is written in the cell.
          expect(await cell.textContent()).to.include(words[risk]);
          // Cover counts what is on its way to the region, and the cell says how much that is.
          if (stock.inTransit > 0) expect(await cell.textContent()).to.include(`${stock.inTransit} on the way`);
          onTheWay += stock.inTransit;
        }
      expect(onTheWay, "the scenario's pallet in transit").to.be.greaterThan(0);
      await page.locator("#outlook-chart canvas").first().waitFor();
      expect(await page.locator("#outlook-chart").textContent()).to.include("Forecast");
      const products = await page.locator("#outlook-product option").count();
      expect(products).to.equal(overview.products.length);
      if (products > 1) {
        await page.getByLabel("Product to chart").selectOption({ index: 1 });
        await page.locator("#outlook-chart canvas").first().waitFor();
      }
      await screenshot(page, "regulator-cover");
    });
  });

  describe("manufacturer: supply", function () {
    it("shows its products' stock along the chain and where shortages are building", async function () {
      type Overview = {
        products: { productId: number; regions: { risk: string; stock: Record<string, number> }[] }[];
      };
      const overview = (await call<Overview>(h, "/v1/supply/overview", { key: h.keys.maker })).body;
      const page = browser.page;
      await signIn(page, h.url, h.keys.maker);
      await page.goto(`${h.url}/manufacturer`);
      await page.locator("#shortages [data-shortages]").waitFor();
      await page.locator("#chain table.chain-table").waitFor();
      expect(await page.locator("#chain tr[data-product]").count()).to.equal(overview.products.length);
      const first = overview.products[0]!;
      const shown = await page
        .locator(`#chain tr[data-product='${first.productId}'] td[data-stage]`)
        .evaluateAll((cells): Record<string, number> =>
          Object.fromEntries(cells.map((c) => [c.getAttribute("data-stage"), Number(c.textContent)])),
        );
      type Stock = { byRole: Record<string, number>; inTransit: number; dispensed: number };
      const stock = await call<Stock>(h, `/v1/supply/products/${first.productId}/stock`, { key: h.keys.maker });
      expect(stock.status, stock.text).to.equal(200);
      expect(shown).to.deep.equal({
        manufacturer: stock.body.byRole.manufacturer ?? 0,
        inTransit: stock.body.inTransit,
        distributor: stock.body.byRole.distributor ?? 0,
        pharmacy: stock.body.byRole.pharmacy ?? 0,
        dispensed: stock.body.dispensed,
      });
      expect(Object.values(shown).reduce((a, b) => a + b, 0)).to.be.greaterThan(0);
      const building = overview.products.flatMap((p) => p.regions).filter((r) => /^(low|critical)$/.test(r.risk));
      expect(await page.locator("#shortages [data-shortages]").getAttribute("data-shortages")).to.equal(
        String(building.length),
      );
      await screenshot(page, "manufacturer-supply");
    });
  });

  describe("read routes the pages use", function () {
    it("GET /v1/batches lists a manufacturer's own batches (every batch for the regulator), refused to others", async function () {
      type List = { batches: { id: number; manufacturerId: number; recalled: boolean }[] };
      const own = await call<List>(h, "/v1/batches", { key: h.keys.maker });
      const all = await call<List>(h, "/v1/batches", { key: h.keys.regulator });
      expect(own.status, own.text).to.equal(200);
      const maker = (await call<{ participant: { id: number } }>(h, "/v1/participants/me", { key: h.keys.maker })).body;
      expect(own.body.batches.length).to.be.greaterThan(2);
      expect(own.body.batches.every((b) => b.manufacturerId === maker.participant.id)).to.equal(true);
      expect(all.body.batches.length).to.be.greaterThan(own.body.batches.length);
      expect(all.body.batches.map((b) => b.id)).to.deep.equal(all.body.batches.map((_, i) => i + 1));
      expect((await call(h, "/v1/batches", { key: h.keys.pharmacy })).status).to.equal(403);
      expect((await call(h, "/v1/batches")).status).to.equal(401);
    });

    it("GET /v1/participants lists every participant for the regulator only", async function () {
      const list = await call<{ participants: { id: number; role: string; suspended: boolean }[] }>(
        h,
        "/v1/participants",
        {
          key: h.keys.regulator,
        },
      );
      expect(list.status, list.text).to.equal(200);
      expect(list.body.participants.map((p) => p.role)).to.include.members([
        "manufacturer",
        "pharmacy",
        "insurer",
        "distributor",
      ]);
      expect((await call(h, "/v1/participants", { key: h.keys.maker })).status).to.equal(403);
    });
  });

  it("gives every control on every page an accessible name, and the counter opens with the scan field focused (a wedge scanner types straight in)", async function () {
    const page = browser.page;
    await signIn(page, h.url, h.keys.regulator);
    await screenshot(page, "sign-in");
    for (const path of ["/", "/counter", "/insurer", "/manufacturer", "/regulator"]) {
      await page.goto(`${h.url}${path}`);
      await page.locator("#whoami", { hasText: /Signed in/ }).waitFor();
      const unnamed = await page.locator("button, input, select, textarea, a[href]").evaluateAll((controls) =>
        controls
          .filter((c) => {
            const labelled =
              c.getAttribute("aria-label") ||
              (c.id && c.ownerDocument.querySelector(`label[for="${c.id}"]`)?.textContent);
            return !(labelled || c.textContent?.trim());
          })
          .map((c) => c.outerHTML.slice(0, 80)),
      );
      expect(unnamed, path).to.deep.equal([]);
    }
    await page.goto(`${h.url}/counter`);
    expect(await page.evaluate("document.activeElement && document.activeElement.id")).to.equal("code");
  });

  describe("camera scan", function () {
    /** Opens the counter in a browser whose fake camera films the barcode, scans, and returns what it shows. */
    async function cameraScan(bcid: string, text: string, scale: number, shot: string) {
      const video = await y4mOf(bcid, text, join(tmpdir(), `pages-${bcid}-${process.pid}.y4m`), { scale });
      const camera = await openBrowser({ video });
      try {
        const page = camera.page;
        await signIn(page, h.url, h.keys.pharmacy);
        await page.goto(`${h.url}/counter`);
        const offsite: string[] = [];
        page.on(
          "request",
          (r) => void (/^(data|blob):/.test(r.url()) || r.url().startsWith(h.url) || offsite.push(r.url())),
        );
        await page.getByRole("button", { name: "Scan with camera" }).click();
        await page.locator("#verdict").waitFor({ timeout: 30_000 });
        expect(offsite, "requests off our origin").to.deep.equal([]);
        await screenshot(page, shot);
        return { code: (await page.locator("#result code").textContent()) ?? "", ...(await verdictShown(page)) };
      } finally {
        await camera.close();
      }
    }

    it("reads a GS1 DataMatrix from the camera with zxing's wasm served by us", async function () {
      const gs1 = h.s.codes.gs1;
      const shown = await cameraScan(
        "gs1datamatrix",
        `(01)${gs1.slice(2, 16)}(21)${gs1.slice(18)}`,
        6,
        "counter-camera",
      );
      expect(shown.code).to.equal(gs1);
      expect(shown.verdict).to.not.equal("UNKNOWN");
    });

    it("reads a Chinese code's Code 128 from the camera", async function () {
      const shown = await cameraScan("code128", h.s.codes.recalled, 3, "counter-camera-code128");
      expect(shown.code).to.equal(h.s.codes.recalled);
      expect(shown.reasons).to.include("RECALLED");
    });
  });
});
