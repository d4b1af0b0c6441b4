/**
 * The operators' commands share one shape: `util.parseArgs` options, `--help` printing the usage, errors printed
 * as one line on stderr (never a stack trace for a mistake of the operator's) and distinct exit codes, so that a
 * shell script can tell a usage mistake from refused input from a failure.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export const EXIT = { ok: 0, failed: 1, usage: 2, invalidInput: 3, interrupted: 130 } as const;

/** A mistake in how the command was called: exit 2 with the usage. */
export class UsageError extends Error {}
/** Input the command refuses (bad CSV lines, an unknown organisation): exit 3. */
export class InvalidInputError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Command<O extends Options> {
  /** First line of the help: `npm run x -- --flag <value>`. */
  usage: string;
  /** What the command does, and what each option means. */
  help: string;
  options: O;
  /** Positional arguments allowed (a sub-command). */
  positionals?: boolean;
  run(
    values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true }>>["values"],
    positionals: string[],
  ): Promise<void>;
}

/** Parses the arguments and runs the command, mapping its outcome to an exit code. */
export function runCommand<O extends Options>(command: Command<O>, argv = process.argv.slice(2)): void {
  const helpText = `usage: ${command.usage}\n\n${command.help.trim()}\n`;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${helpText}`);
    process.exitCode = EXIT.usage;
    return;
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(helpText);
    return;
  }
  if (!command.positionals && parsed.positionals.length > 0) {
    process.stderr.write(`unexpected argument ${parsed.positionals[0]}\n\n${helpText}`);
    process.exitCode = EXIT.usage;
    return;
  }
  command
    .run(parsed.values as never, parsed.positionals)
    .then(() => {
      process.exitCode ??= EXIT.ok;
    })
    .catch((err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`${err.message}\n\n${helpText}`);
        process.exitCode = EXIT.usage;
      } else if (err instanceof InvalidInputError) {
        process.stderr.write(`${err.message}\n`);
        process.exitCode = EXIT.invalidInput;
      } else {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        if (process.env.DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
        process.exitCode = EXIT.failed;
      }
    });
}

/** A required string option, or a usage error naming it. */
export function required(value: string | undefined, name: string): string {
  if (value === undefined || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

/** A positive integer option. */
export function positiveInt(value: string | undefined, name: string): number {
  const n = Number(required(value, name));
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got ${value}`);
  return n;
}
