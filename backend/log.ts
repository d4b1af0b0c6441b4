import pino from "pino";

/** Structured JSON logs; `LOG_LEVEL` from the environment (see .env.example). */
export function createLogger(level = process.env.LOG_LEVEL ?? "info", name = "drugtrace"): pino.Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

export type Logger = pino.Logger;
