import type { FastifyInstance } from 'fastify'
import type { Queue } from 'bullmq'
import type { Config } from '../config.ts'
import { InputError } from '../errors.ts'
import type { IngestJobData } from '../jobs/queues.ts'
import { acceptMessages } from './accept.ts'
import { isSignatureValid, isWriteKeyValid, presentedWriteKey } from './auth.ts'
import { receivedAt } from './received-at.ts'

/**
 * Segment's Webhooks destinations. The signature is checked over the raw body
 * before anything else. Segment's own `receivedAt` is the processing time here
 * (R1): Segment vouches for it.
 *
 * Webhooks (Actions) batching signs only the first element of an array body;
 * a signature over one message must not vouch for the others, so such a
 * request is accepted only if it also carries a valid write key.
 */
export function registerWebhookRoute(
  app: FastifyInstance,
  queue: Queue<IngestJobData>,
  config: Pick<Config, 'webhookSecret' | 'writeKeys'>,
) {
  app.post('/webhooks/segment', async (request) => {
    const signature = request.headers['x-signature']
    const presented = Array.isArray(signature) ? signature[0] : signature
    if (!presented) throw new InputError(401, 'missing_signature', 'X-Signature header is required (hex HMAC-SHA1 of the body)')
    const raw = request.rawBody ?? Buffer.alloc(0)
    const body = request.body
    if (!isSignatureValid(config.webhookSecret, raw, presented)) {
      const firstSigned =
        Array.isArray(body) && body.length > 0 && isSignatureValid(config.webhookSecret, JSON.stringify(body[0]), presented)
      if (!firstSigned) throw new InputError(401, 'invalid_signature', 'X-Signature does not match the body signed with GOALPOST_WEBHOOK_SECRET')
      if (!isWriteKeyValid(config.writeKeys, presentedWriteKey(request)))
        throw new InputError(
          401,
          'unsigned_batch',
          'only the first message of this array is signed; add a valid write key (Authorization: Basic) so the rest is vouched for',
        )
    }
    if (typeof body !== 'object' || body === null)
      throw new InputError(400, 'invalid_body', 'the body must be a message object or an array of messages')
    const messages = Array.isArray(body) ? body : [body]
    return acceptMessages(queue, messages, { source: 'webhook', receivedAt: receivedAt(request), honourReceivedAt: true })
  })
}
