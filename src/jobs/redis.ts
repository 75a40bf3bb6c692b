import { Redis, type RedisOptions } from 'ioredis'

/**
 * Redis connections. Producers (HTTP, plugin) fail fast while Redis is away so
 * the caller can answer 503 and the client retries; workers wait and reconnect
 * (BullMQ requires maxRetriesPerRequest: null on them).
 */
export function createRedis(url: string, role: 'producer' | 'worker', queuePrefix?: string): Redis {
  // Named after the role and the installation's queue prefix, so CLIENT LIST
  // tells which goalpost a connection belongs to (as the plugin's do).
  const common: RedisOptions = { lazyConnect: false, connectionName: queuePrefix ? `goalpost-${role}:${queuePrefix}` : `goalpost-${role}` }
  const options: RedisOptions =
    role === 'producer'
      ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 5_000 }
      : { ...common, maxRetriesPerRequest: null }
  const redis = new Redis(url, options)
  // ioredis reconnects by itself; an unhandled 'error' event would crash the process.
  redis.on('error', () => {})
  return redis
}

/** Resolves once the connection is ready (BullMQ queues must not be built on a producer connection before that). */
export function waitUntilReady(redis: Redis, timeoutMs = 30_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady)
      reject(new Error(`Redis was not reachable within ${timeoutMs} ms`))
    }, timeoutMs)
    const onReady = () => {
      clearTimeout(timer)
      resolve()
    }
    redis.once('ready', onReady)
  })
}
