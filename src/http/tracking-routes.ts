import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InputError } from '../errors.ts'
import type { IngestProducer } from '../jobs/queues.ts'
import type { MessageType } from '../segment/normalise.ts'
import { acceptMessages, type AcceptObserver } from './accept.ts'
import { isWriteKeyValid, presentedWriteKey } from './auth.ts'
import { receivedAt } from './received-at.ts'
import type { IngestRateLimiter } from './rate-limit.ts'

const SINGLE_CALLS: readonly MessageType[] = ['track', 'identify', 'page', 'screen', 'group', 'alias']

/** The request's write key, once it is one of `keys`. */
export function requireWriteKey(keys: readonly string[], request: FastifyRequest): string {
  const presented = presentedWriteKey(request)
  if (presented === null)
    throw new InputError(401, 'missing_write_key', 'send the write key as "Authorization: Basic base64(<writeKey>:)" or as "writeKey" in the body')
  if (!isWriteKeyValid(keys, presented)) throw new InputError(401, 'invalid_write_key', 'the write key is not one of GOALPOST_WRITE_KEYS')
  return presented
}

export function requireObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new InputError(400, 'invalid_body', 'the body must be a JSON object')
  return body as Record<string, unknown>
}

/** The Segment tracking API (`/v1/batch` and the single calls), with write-key auth and the optional per-key rate limit. */
export function registerTrackingRoutes(
  app: FastifyInstance,
  producer: IngestProducer,
  writeKeys: readonly string[],
  observe?: AcceptObserver,
  limiter?: IngestRateLimiter,
) {
  app.post('/v1/batch', async (request) => {
    const writeKey = requireWriteKey(writeKeys, request)
    const body = requireObject(request.body)
    if (!Array.isArray(body.batch)) throw new InputError(400, 'invalid_body', 'batch: must be an array of messages')
    await limiter?.take(writeKey, body.batch.length)
    const context = body.context
    if (context !== undefined && (typeof context !== 'object' || context === null || Array.isArray(context)))
      throw new InputError(400, 'invalid_body', 'context: must be an object')
    return acceptMessages(producer, body.batch, {
      source: 'api',
      observe,
      receivedAt: receivedAt(request),
      batchContext: context as Record<string, unknown> | undefined,
    })
  })

  for (const type of SINGLE_CALLS) {
    app.post(`/v1/${type}`, async (request) => {
      const writeKey = requireWriteKey(writeKeys, request)
      const body = requireObject(request.body)
      await limiter?.take(writeKey, 1)
      return acceptMessages(producer, [body], { source: 'api', observe, receivedAt: receivedAt(request), typeFromPath: type })
    })
  }
}
