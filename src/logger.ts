import { pino, type Logger } from 'pino'

export type { Logger }

/** One JSON logger per process; components take a child with their name. */
export function createLogger(level: string, name = 'goalpost'): Logger {
  return pino({ name, level })
}
