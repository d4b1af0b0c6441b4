import type { ScanHint } from "./hints";

/** Why a scan was refused: stable codes that clients may switch on. */
export type CodeErrorReason =
  | "EMPTY"
  | "TOO_LONG"
  | "NUL_BYTE"
  | "CONTROL_CHARACTER"
  | "BAD_CHARACTERS"
  | "GS1_UNKNOWN_AI"
  | "GS1_VALUE_TOO_LONG"
  | "GS1_VALUE_TOO_SHORT"
  | "GS1_BAD_CHARACTERS"
  | "GS1_BAD_VALUE"
  | "GS1_BAD_DATE"
  | "GS1_CHECK_DIGIT"
  | "GS1_DUPLICATE_AI"
  | "GS1_MISSING_GTIN"
  | "GS1_MISSING_SERIAL"
  | "GS1_BAD_SYNTAX"
  | "GS1_BAD_DIGITAL_LINK";

export const CODE_ERROR_REASONS: readonly CodeErrorReason[] = [
  "EMPTY",
  "TOO_LONG",
  "NUL_BYTE",
  "CONTROL_CHARACTER",
  "BAD_CHARACTERS",
  "GS1_UNKNOWN_AI",
  "GS1_VALUE_TOO_LONG",
  "GS1_VALUE_TOO_SHORT",
  "GS1_BAD_CHARACTERS",
  "GS1_BAD_VALUE",
  "GS1_BAD_DATE",
  "GS1_CHECK_DIGIT",
  "GS1_DUPLICATE_AI",
  "GS1_MISSING_GTIN",
  "GS1_MISSING_SERIAL",
  "GS1_BAD_SYNTAX",
  "GS1_BAD_DIGITAL_LINK",
];

interface ProblemDetails {
  /** The GS1 Application Identifier at fault, when there is one. */
  field?: string;
  /** 0-based index into the normalised code of the offending character, when there is one. */
  position?: number;
  hints?: ScanHint[];
}

/**
 * What went wrong, found deep inside the parser. A plain value (no stack trace to capture), so that trying a
 * reading and dropping it costs nothing; {@link parseCode} turns the one that stands into a CodeFormatError.
 */
export class Problem {
  readonly field?: string;
  readonly position?: number;
  readonly hints: ScanHint[];

  constructor(
    readonly reason: CodeErrorReason,
    readonly message: string,
    details: ProblemDetails = {},
  ) {
    if (details.field !== undefined) this.field = details.field;
    if (details.position !== undefined) this.position = details.position;
    this.hints = details.hints ?? [];
  }

  /** The same problem with hints noticed before it (while normalising the input) in front of its own. */
  after(hints: ScanHint[]): Problem {
    if (hints.length === 0) return this;
    return new Problem(this.reason, this.message, {
      ...(this.field !== undefined ? { field: this.field } : {}),
      ...(this.position !== undefined ? { position: this.position } : {}),
      hints: [...hints, ...this.hints],
    });
  }
}

/** A scan that is not a code the ledger can know, with the reason, the field at fault and hints for the person. */
export class CodeFormatError extends Error {
  readonly reason: CodeErrorReason;
  readonly field?: string;
  readonly position?: number;
  readonly hints: ScanHint[];

  constructor(
    message: string,
    /** The raw input, exactly as received. */
    readonly input: string,
    reason: CodeErrorReason,
    details: ProblemDetails = {},
  ) {
    super(message);
    this.name = "CodeFormatError";
    this.reason = reason;
    if (details.field !== undefined) this.field = details.field;
    if (details.position !== undefined) this.position = details.position;
    this.hints = details.hints ?? [];
  }

  static from(problem: Problem, input: string): CodeFormatError {
    return new CodeFormatError(problem.message, input, problem.reason, {
      ...(problem.field !== undefined ? { field: problem.field } : {}),
      ...(problem.position !== undefined ? { position: problem.position } : {}),
      hints: problem.hints,
    });
  }

  /** The body an API answers with: everything but the raw input, which may be long or hostile. */
  toJSON(): { reason: CodeErrorReason; message: string; field?: string; position?: number; hints: ScanHint[] } {
    return {
      reason: this.reason,
      message: this.message,
      ...(this.field !== undefined ? { field: this.field } : {}),
      ...(this.position !== undefined ? { position: this.position } : {}),
      hints: this.hints,
    };
  }
}
