import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import { InputError } from '../errors.ts'
import type { IngestProducer } from '../jobs/queues.ts'
import { acceptMessages, type AcceptObserver } from './accept.ts'
import { isSignatureValid, isWriteKeyValid, presentedWriteKey } from './auth.ts'
import { decode, parseJsonBody, registerRawBody } from './body.ts'
import { receivedAt } from './received-at.ts'

const invalidSignature = () =>
  new InputError(401, 'invalid_signature', 'X-Signature does not match the body signed with GOALPOST_WEBHOOK_SECRET')

/**
 * Segment's Webhooks destinations. The signature is checked over the raw
 * (decoded) body before the body is parsed or anything else happens. Segment's
 * own `receivedAt` is the processing time here (R1): Segment vouches for it.
 *
 * Webhooks (Actions) batching signs only the first element of an array body.
 * A signature over one message must not vouch for the others, so such a
 * request is accepted only with a valid write key too, and only the signed
 * element's `receivedAt` is honoured (the others get the server's time: a
 * replayed signature must not let a write-key holder backdate messages).
 */
export function registerWebhookRoute(
  app: FastifyInstance,
  producer: IngestProducer,
  config: Pick<Config, 'webhookSecret' | 'writeKeys'>,
  observe?: AcceptObserver,
) {
  app.register(async (scope) => {
    registerRawBody(scope)
    scope.post('/webhooks/segment', async (request) => {
      const signature = request.headers['x-signature']
      const presented = Array.isArray(signature) ? signature[0] : signature
      if (!presented) throw new InputError(401, 'missing_signature', 'X-Signature header is required (hex HMAC-SHA1 of the body)')
      const raw = await decode(request, (request.body as Buffer | undefined) ?? Buffer.alloc(0))
      request.rawBody = raw
      const fullySigned = isSignatureValid(config.webhookSecret, raw, presented)
      let body: unknown
      try {
        body = parseJsonBody(raw)
      } catch (err) {
        if (fullySigned) throw err
        throw invalidSignature() // unsigned garbage learns nothing about why
      }
      let messages: unknown[]
      if (fullySigned) {
        if (typeof body !== 'object' || body === null)
          throw new InputError(400, 'invalid_body', 'the body must be a message object or an array of messages')
        messages = Array.isArray(body) ? body : [body]
      } else {
        const firstSigned =
          Array.isArray(body) && body.length > 0 && isSignatureValid(config.webhookSecret, JSON.stringify(body[0]), presented)
        if (!firstSigned) throw invalidSignature()
        if (!isWriteKeyValid(config.writeKeys, presentedWriteKey(request)))
          throw new InputError(
            401,
            'unsigned_batch',
            'only the first message of this array is signed; add a valid write key (Authorization: Basic) so the rest is vouched for',
          )
        messages = (body as unknown[]).map((m, i) => (i === 0 ? m : withoutReceivedAt(m)))
      }
      return acceptMessages(producer, messages, { source: 'webhook', observe, receivedAt: receivedAt(request), honourReceivedAt: true })
    })
  })
}

function withoutReceivedAt(message: unknown): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message) || !('receivedAt' in message)) return message
  const { receivedAt: _ignored, ...rest } = message as Record<string, unknown>
  return rest
}
