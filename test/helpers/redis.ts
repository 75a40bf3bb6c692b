import { Redis } from 'ioredis'
import { REDIS_URL, uniqueSuffix } from './env.ts'

/** A queue prefix of the test file's own. */
export const testQueuePrefix = () => `gpt_${uniqueSuffix()}`

/** Deletes the keys under a test's own prefix (never FLUSHDB: the Redis is shared). */
export async function deleteQueuePrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}
