import { expect } from "chai";
import { loadConfig } from "../backend/config/env";
import { thresholdDays } from "../backend/supply/model";
import type { BatchStock, Holder, ProductInputs } from "../backend/supply/model";
import { productOutlook, regionOutlooks } from "../backend/supply/outlook";
import { addDays, dispensingRate, forecast, isSurge, trendPerDay } from "../backend/supply/rates";
import { expiryRisk, riskOf } from "../backend/supply/stock";
import { supplySignals } from "../backend/supply/signals";

const settings = loadConfig({});
const DAY = 86_400;
/** Noon UTC on 2026-03-31: today is half gone. */
const ASOF = Date.parse("2026-03-31T12:00:00Z") / 1000;
const TODAY = "2026-03-31";

/** A series of `units` a day for the `days` complete days before today, and `today` units today. */
function steady(units: number, days: number, today = units / 2): Map<string, number> {
  const series = new Map<string, number>();
  for (let i = 1; i <= days; i++) series.set(addDays(TODAY, -i), units);
  series.set(TODAY, today);
  return series;
}

const holders: Holder[] = [
  { id: 1, name: "Maker", role: "manufacturer", region: "Beijing" },
  { id: 2, name: "Dist SH", role: "distributor", region: "Shanghai" },
  { id: 3, name: "Pharm SH", role: "pharmacy", region: "Shanghai" },
  { id: 4, name: "Pharm GZ", role: "pharmacy", region: "Guangzhou" },
];

function batch(batchId: number, held: [number, number][], extra: Partial<BatchStock> = {}): BatchStock {
  return {
    batchId,
    lot: `L${batchId}`,
    expiresOn: ASOF + 365 * DAY,
    recalled: false,
    held: held.map(([holderId, units]) => ({ holderId, units })),
    inTransit: 0,
    inTransitTo: [],
    dispensed: 0,
    decommissioned: 0,
    ...extra,
  };
}

function inputs(batches: BatchStock[], dispensed: [string, Map<string, number>][]): ProductInputs {
  return {
    productId: 1,
    productCode: "8612345",
    name: "Amoxicillin",
    manufacturerId: 1,
    batches,
    holders: new Map(holders.map((h) => [h.id, h])),
    dispensed: new Map(dispensed),
  };
}

describe("Supply outlook (pure functions)", function () {
  describe("dispensing rate", function () {
    it("is the mean of the window's complete days and today so far", function () {
      const rate = dispensingRate(steady(10, 40), ASOF, settings);
      expect(rate.ratePerDay).to.equal(10);
      expect(rate.baselinePerDay).to.equal(10);
      expect(rate.sigmaPerDay).to.equal(0);
      expect(rate.windowDays).to.equal(settings.SUPPLY_RATE_WINDOW_DAYS);
    });

    it("averages a young series over its own days, and never over less than one day", function () {
      // Dispensed from two days ago: 2 complete days + half of today.
      expect(dispensingRate(steady(10, 2), ASOF, settings)).to.include({ ratePerDay: 10, baselinePerDay: null });
      expect(dispensingRate(new Map([[TODAY, 3]]), ASOF - DAY / 2 + 600, settings).ratePerDay).to.equal(3);
      expect(dispensingRate(new Map(), ASOF, settings)).to.include({ ratePerDay: 0, baselinePerDay: null });
    });

    it("calls a surge only well above the baseline and by enough units", function () {
      const surging = steady(10, 40);
      for (let i = 1; i <= 7; i++) surging.set(addDays(TODAY, -i), 25);
      const rate = dispensingRate(surging, ASOF, settings);
      expect(rate.baselinePerDay).to.equal(10);
      expect(isSurge(rate, settings)).to.equal(true);
      expect(isSurge({ ratePerDay: 18, baselinePerDay: 10 }, settings)).to.equal(false);
      expect(isSurge({ ratePerDay: 3, baselinePerDay: 1 }, settings)).to.equal(false);
      expect(isSurge({ ratePerDay: 30, baselinePerDay: null }, settings)).to.equal(false);
      expect(
        isSurge({ ratePerDay: 0, baselinePerDay: 0 }, { ...settings, SUPPLY_SURGE_MIN_UNITS_PER_DAY: 0 }),
      ).to.equal(false);
    });

    it("fits the trend and forecasts at the rate within a band clipped at zero", function () {
      const series = [1, 2, 3, 4].map((units, i) => ({ day: addDays(TODAY, i), units }));
      expect(trendPerDay(series)).to.equal(1);
      const days = forecast(ASOF, { ratePerDay: 3, sigmaPerDay: 2 }, settings);
      expect(days).to.have.length(settings.SUPPLY_FORECAST_DAYS);
      expect(days[0]).to.deep.equal({ day: "2026-04-01", expected: 3, low: 0, high: 7 });
    });
  });

  describe("days of cover and risk", function () {
    it("grades cover against the threshold, and no demand apart", function () {
      expect(riskOf(14, 14, settings)).to.equal("ok");
      expect(riskOf(13.99, 14, settings)).to.equal("low");
      expect(riskOf(6.99, 14, settings)).to.equal("critical");
      expect(riskOf(null, 14, settings)).to.equal("no_demand");
    });

    it("takes a product's own threshold by id or product code", function () {
      const own = { ...settings, SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT: { "2": 30, "8612345": 21 } };
      expect(thresholdDays(own, { productId: 2, productCode: "x" })).to.equal(30);
      expect(thresholdDays(own, { productId: 1, productCode: "8612345" })).to.equal(21);
      expect(thresholdDays(own, { productId: 3, productCode: "y" })).to.equal(settings.SUPPLY_MIN_DAYS_OF_COVER);
      expect(
        loadConfig({ SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT: '{"1": 30}' }).SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT,
      ).to.deep.equal({
        "1": 30,
      });
      expect(() => loadConfig({ SUPPLY_MIN_DAYS_OF_COVER_BY_PRODUCT: "{1:" })).to.throw(/SUPPLY_MIN_DAYS_OF_COVER/);
    });

    it("counts usable stock of distributors and pharmacies per region, recalled and expired apart", function () {
      const product = inputs(
        [
          batch(1, [
            [1, 500],
            [2, 60],
            [3, 40],
            [4, 100],
          ]),
          batch(2, [[3, 7]], { recalled: true }),
          batch(3, [[4, 9]], { expiresOn: ASOF - DAY }),
        ],
        [
          ["Shanghai", steady(10, 40)],
          ["Guangzhou", steady(5, 40)],
        ],
      );
      const regions = regionOutlooks(product, settings, ASOF);
      expect(regions.map((r) => r.region)).to.deep.equal(["Beijing", "Guangzhou", "Shanghai"]);
      const [beijing, guangzhou, shanghai] = regions;
      expect(beijing).to.include({ risk: "no_demand", daysOfCover: null, surplusUnits: 0 });
      expect(beijing!.stock.manufacturer).to.equal(500);
      expect(shanghai!.stock).to.deep.equal({
        manufacturer: 0,
        distributor: 60,
        pharmacy: 40,
        inTransit: 0,
        recalled: 7,
        expired: 0,
      });
      expect(shanghai).to.include({ ratePerDay: 10, daysOfCover: 10, risk: "low", surge: false, surplusUnits: 0 });
      expect(guangzhou).to.include({ daysOfCover: 20, risk: "ok", surplusUnits: 30 });
      expect(guangzhou!.stock.expired).to.equal(9);
    });

    it("counts usable units on their way to a region's distributors and pharmacies in its stock and cover", function () {
      const product = inputs(
        [
          batch(1, [[3, 40]], {
            inTransit: 90,
            inTransitTo: [
              { holderId: 3, units: 60 },
              { holderId: 1, units: 30 },
            ],
          }),
          batch(2, [], { recalled: true, inTransit: 5, inTransitTo: [{ holderId: 4, units: 5 }] }),
        ],
        [
          ["Shanghai", steady(10, 40)],
          ["Guangzhou", steady(5, 40)],
        ],
      );
      const regions = regionOutlooks(product, settings, ASOF);
      // Units going back to the maker are not a region's stock to dispense from: Beijing has none.
      expect(regions.map((r) => r.region)).to.deep.equal(["Guangzhou", "Shanghai"]);
      const [guangzhou, shanghai] = regions;
      expect(shanghai!.stock).to.include({ pharmacy: 40, inTransit: 60 });
      expect(shanghai).to.include({ daysOfCover: 10, risk: "low" });
      expect(guangzhou!.stock).to.include({ inTransit: 0, recalled: 5 });
      expect(productOutlook(product, settings, ASOF, 7).inTransit).to.equal(95);
    });

    it("refuses a daily retention shorter than the rate's or the flow rules' days", function () {
      expect(loadConfig({}).SUPPLY_DAILY_RETENTION_DAYS).to.be.at.least(366);
      expect(() => loadConfig({ SUPPLY_DAILY_RETENTION_DAYS: "35" })).to.throw(/SUPPLY_DAILY_RETENTION_DAYS.*36/);
      expect(() => loadConfig({ SUPPLY_DAILY_RETENTION_DAYS: "40", FLOW_BASELINE_DAYS: "60" })).to.throw(/FLOW_/);
      const short = {
        SUPPLY_RATE_WINDOW_DAYS: "1",
        SUPPLY_BASELINE_DAYS: "1",
        FLOW_WINDOW_DAYS: "1",
        FLOW_BASELINE_DAYS: "1",
      };
      expect(loadConfig({ ...short, SUPPLY_DAILY_RETENTION_DAYS: "3" }).SUPPLY_DAILY_RETENTION_DAYS).to.equal(3);
    });
  });

  describe("sources and expiry", function () {
    it("suggests the regions with most cover and surplus, then the maker's batches soonest expiry first", function () {
      const product = inputs(
        [
          batch(1, [
            [2, 10],
            [3, 10],
            [4, 300],
          ]),
          batch(2, [[1, 50]], { expiresOn: ASOF + 400 * DAY }),
          batch(3, [[1, 70]], { expiresOn: ASOF + 200 * DAY }),
          batch(4, [[1, 99]], { recalled: true }),
        ],
        [
          ["Shanghai", steady(10, 40)],
          ["Guangzhou", steady(5, 40)],
        ],
      );
      const outlook = productOutlook(product, settings, ASOF, 30);
      expect(outlook.sources).to.deep.equal([
        {
          kind: "region",
          region: "Guangzhou",
          daysOfCover: 60,
          surplusUnits: 230,
          holders: [{ holderId: 4, name: "Pharm GZ", role: "pharmacy", units: 300 }],
        },
        {
          kind: "manufacturer",
          manufacturerId: 1,
          units: 120,
          batches: [
            { batchId: 3, lot: "L3", expiresOn: ASOF + 200 * DAY, units: 70 },
            { batchId: 2, lot: "L2", expiresOn: ASOF + 400 * DAY, units: 50 },
          ],
        },
      ]);
      const signals = supplySignals(outlook);
      const shortage = signals.find((s) => s.reason === "SHORTAGE_RISK")!;
      expect(shortage.region).to.equal("Shanghai");
      expect(shortage.figures).to.include({ risk: "critical", daysOfCover: 2, thresholdDays: 14 });
      expect((shortage.figures.sources as { region?: string }[])[0]!.region).to.equal("Guangzhou");
      expect(outlook.perDay).to.have.length(30);
      expect(outlook.perDay.at(-1)).to.deep.equal({ day: TODAY, units: 7.5 });
    });

    it("offers as surplus only units a region holds: stock still on its way there cannot be sent on", function () {
      // Guangzhou: 10 at its pharmacy and 300 on their way to it, 5 a day (62 days of cover counting the road).
      // It can give its 10, not the 300 still on the road; Shanghai (10 a day, 20 units) is short.
      const product = inputs(
        [
          batch(1, [
            [2, 10],
            [3, 10],
            [4, 10],
          ]),
          batch(2, [], { inTransit: 300, inTransitTo: [{ holderId: 4, units: 300 }] }),
        ],
        [
          ["Shanghai", steady(10, 40)],
          ["Guangzhou", steady(5, 40)],
        ],
      );
      const outlook = productOutlook(product, settings, ASOF, 7);
      const guangzhou = outlook.regions.find((r) => r.region === "Guangzhou")!;
      expect(guangzhou).to.include({ daysOfCover: 62, risk: "ok", surplusUnits: 10 });
      expect(outlook.sources[0]).to.deep.include({ region: "Guangzhou", surplusUnits: 10 });

      // A region whose stock is all on the road has nothing to give, however much cover it has.
      const onTheRoad = inputs(
        [batch(1, [[3, 20]]), batch(2, [], { inTransit: 300, inTransitTo: [{ holderId: 4, units: 300 }] })],
        [["Shanghai", steady(10, 40)]],
      );
      const regions = regionOutlooks(onTheRoad, settings, ASOF);
      expect(regions.find((r) => r.region === "Guangzhou")).to.include({ risk: "no_demand", surplusUnits: 0 });
      expect(productOutlook(onTheRoad, settings, ASOF, 7).sources.filter((s) => s.kind === "region")).to.deep.equal([]);
    });
    it("puts at risk what a holder's share of demand cannot sell before expiry, first-expiring first", function () {
      // Guangzhou sells 5 a day from one pharmacy: in 10 days 50 of the 80 expiring then; the later batch is
      // sold after those 50 (what expires first goes first) and has 90 days: 450 - 50 = 400 sellable of 100.
      const product = inputs(
        [
          batch(1, [[4, 80]], { expiresOn: ASOF + 10 * DAY }),
          batch(2, [[4, 100]], { expiresOn: ASOF + 90 * DAY }),
          batch(3, [[4, 1000]], { expiresOn: ASOF + 400 * DAY }),
          batch(4, [[4, 5]], { recalled: true, expiresOn: ASOF + DAY }),
        ],
        [["Guangzhou", steady(5, 40)]],
      );
      const risks = expiryRisk(product, { byRegion: new Map([["Guangzhou", 5]]), national: 5 }, ASOF, settings);
      expect(risks.map((r) => [r.batchId, r.units, r.unitsAtRisk, r.daysToExpiry])).to.deep.equal([[1, 80, 30, 10]]);
      const signal = supplySignals(productOutlook(product, settings, ASOF, 7)).find((s) => s.reason === "EXPIRY_RISK");
      expect(signal).to.include({ region: "Guangzhou" });
      expect(signal!.figures.unitsAtRisk).to.equal(30);
    });
  });
});
