import Mocha from "mocha";

/**
 * Mocha's spec reporter, closing with one plain `N passed, N failed, N skipped` line that CI reads to know how
 * many tests ran.
 */
class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const { passes, failures, pending } = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
      console.log(`\n${passes} passed, ${failures} failed, ${pending} skipped`);
    });
  }
}

export = SpecWithSummary;
