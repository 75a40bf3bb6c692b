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

/** The connections a Redis server lists (CLIENT LIST), with their ids and names. */
export async function clientConnections(redis: Redis): Promise<{ id: string; name: string }[]> {
  const list = (await redis.client('LIST')) as string
  return list
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => ({ id: /(?:^| )id=(\d+)/.exec(line)?.[1] ?? '', name: / name=(\S*)/.exec(line)?.[1] ?? '' }))
}
