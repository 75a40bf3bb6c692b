import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

const digest = (value: string | Buffer) => createHash('sha256').update(value).digest()

/** Constant-time string comparison (hashing first makes lengths equal). */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

/**
 * The write key a Segment library sent: `Authorization: Basic base64(key:)`
 * (what every Segment library does), else the body's `writeKey`.
 */
export function presentedWriteKey(request: FastifyRequest): string | null {
  const header = request.headers.authorization
  if (header && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    const key = colon === -1 ? decoded : decoded.slice(0, colon)
    if (key) return key
  }
  const body = request.body as { writeKey?: unknown } | undefined
  if (body && typeof body === 'object' && !Array.isArray(body) && typeof body.writeKey === 'string' && body.writeKey)
    return body.writeKey
  return null
}

export function isWriteKeyValid(keys: readonly string[], presented: string | null): boolean {
  if (presented === null) return false
  let ok = false
  for (const key of keys) ok = safeEqual(key, presented) || ok // no early exit: same time for every key
  return ok
}

/** Segment's webhook signature: hex HMAC-SHA1 of the payload with the shared secret. */
export function webhookSignature(secret: string, payload: string | Buffer): string {
  return createHmac('sha1', secret).update(payload).digest('hex')
}

export function isSignatureValid(secret: string, payload: string | Buffer, presented: string | undefined): boolean {
  if (!presented) return false
  return safeEqual(webhookSignature(secret, payload), presented.trim().toLowerCase())
}

/** Admin endpoints: `Authorization: Bearer <token>`. */
export function isAdminAuthorised(token: string, request: FastifyRequest): boolean {
  const header = request.headers.authorization
  if (!header || !/^bearer /i.test(header)) return false
  return safeEqual(token, header.slice(7).trim())
}
