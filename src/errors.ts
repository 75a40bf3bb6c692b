/** The environment is unusable; lists every problem so one restart fixes them all. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}\nSet these environment variables and start again.`)
    this.name = 'ConfigError'
  }
}

/**
 * A client sent something goalpost will not accept. Carries the HTTP status and
 * the machine-readable code of the JSON error body (CONTRACT.md, HTTP).
 */
export class InputError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
    this.name = 'InputError'
  }
}

/** Redis could not durably take the input: the client should retry (HTTP 503). */
export class QueueUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the queue is unavailable, retry later: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'QueueUnavailableError'
  }
}
