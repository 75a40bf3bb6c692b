import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { InputError } from '../errors.ts'

/**
 * Optional per-write-key limits on what the tracking API takes
 * (GOALPOST_RATE_LIMIT=<messages>/<seconds>): a fixed window of `seconds`
 * in which one write key may send `messages` messages, counted in Redis so
 * every `serve` process shares it. A request over the limit is refused whole
 * with 429 and `Retry-After` (the seconds until the window ends), which the
 * Segment libraries honour by retrying the batch later; nothing of it is
 * queued, so nothing is half-accepted.
 */

export interface RateLimit {
  messages: number
  seconds: number
}

/** "1000/1" or "60000/60"; null for an empty value (no limit). Throws a readable message on anything else. */
export function parseRateLimit(value: string | undefined): RateLimit | null {
  if (value === undefined || value.trim() === '') return null
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value)
  if (!m) throw new Error('must be <messages>/<seconds>, e.g. 1000/1')
  const limit = { messages: Number(m[1]), seconds: Number(m[2]) }
  if (limit.messages < 1 || limit.seconds < 1 || limit.seconds > 86_400) throw new Error('needs at least 1 message per 1 to 86400 seconds')
  return limit
}

/** The request is over its write key's limit: 429, retry after `retryAfterSeconds`. */
export class RateLimitedError extends InputError {
  constructor(
    readonly retryAfterSeconds: number,
    limit: RateLimit,
  ) {
    super(429, 'rate_limited', `this write key may send ${limit.messages} messages per ${limit.seconds} s; retry after ${retryAfterSeconds} s`)
    this.name = 'RateLimitedError'
  }
}

export class IngestRateLimiter {
  private readonly limiter: RateLimiterRedis

  constructor(
    redis: Redis,
    queuePrefix: string,
    private readonly limit: RateLimit,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${queuePrefix}:ratelimit`,
      points: limit.messages,
      duration: limit.seconds,
      // Redis away: do not wait for it here; the queue answers 503 anyway.
      rejectIfRedisNotReady: true,
    })
  }

  /**
   * Counts `messages` against the key's window, or throws RateLimitedError.
   * The key is stored hashed (a write key is a secret). When Redis cannot
   * count, the request goes on: enqueueing it fails the same way and answers
   * 503, and a limit must never refuse what the queue could take.
   */
  async take(writeKey: string, messages: number): Promise<void> {
    if (messages <= 0) return
    const key = createHash('sha256').update(writeKey).digest('hex').slice(0, 24)
    try {
      // A request larger than the whole limit takes a whole window, not forever.
      await this.limiter.consume(key, Math.min(messages, this.limit.messages))
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) return
      throw new RateLimitedError(Math.max(1, Math.ceil(res.msBeforeNext / 1000)), this.limit)
    }
  }
}
