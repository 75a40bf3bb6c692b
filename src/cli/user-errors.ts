import { ConfigError } from '../errors.ts'
import { ConfigDocumentError } from '../core/config-document/document.ts'

/** A mistake in how a command was called that commander cannot see (exit 2, with the command's usage). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A failure the operator can fix, told in one clear message without a stack trace (exit 1). */
export class CommandError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CommandError'
  }
}

/** Node socket errors of a refused, lost or unresolvable connection. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
/** SQLSTATE classes Postgres answers when it will not let us in: 08 connection, 28 authorisation, 3D no such database, 57P0x shutting down/starting. */
const POSTGRES_REFUSAL = /^(08|28|3D|57P0)/

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}

function codeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    if (e instanceof AggregateError) {
      const inner = e.errors.map(codeOf).find((c) => c !== undefined)
      if (inner) return inner
    }
  }
  return undefined
}

export interface Targets {
  databaseUrl?: string
  redisUrl?: string
}

/**
 * One clear message for an error the operator can act on (bad environment,
 * invalid file, Postgres or Redis unreachable), or null for anything else:
 * a bug, whose stack trace is worth printing.
 */
export function describeUserError(err: unknown, targets: Targets = {}): string | null {
  if (err instanceof ConfigError || err instanceof ConfigDocumentError || err instanceof CommandError) return err.message
  const message = firstLine(err)
  if (/Redis was not reachable|Connection is closed|max retries per request/i.test(message))
    return `cannot reach Redis${targets.redisUrl ? ` at ${redactUrl(targets.redisUrl)}` : ''}: ${message}. Check REDIS_URL and that Redis is running.`
  if (/Postgres did not answer/.test(message))
    return `cannot use Postgres${targets.databaseUrl ? ` at ${redactUrl(targets.databaseUrl)}` : ''}: ${message}. Check DATABASE_URL and that Postgres is running.`
  const code = codeOf(err)
  if (code === undefined) return null
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return message
  const port = (err as { port?: unknown }).port
  const redisPort = targets.redisUrl ? Number(new URL(targets.redisUrl).port || 6379) : undefined
  if (NETWORK_CODES.has(code) && port !== undefined && port === redisPort)
    return `cannot reach Redis at ${redactUrl(targets.redisUrl!)}: ${message}. Check REDIS_URL and that Redis is running.`
  if (NETWORK_CODES.has(code) || POSTGRES_REFUSAL.test(code))
    return `cannot use Postgres${targets.databaseUrl ? ` at ${redactUrl(targets.databaseUrl)}` : ''}: ${message}. Check DATABASE_URL and that Postgres is running.`
  return null
}
