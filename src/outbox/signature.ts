import { createHmac } from 'node:crypto'
import { safeEqual } from '../http/auth.ts'

/**
 * Reporting webhook signatures (docs/outbound.md): `Goalpost-Signature:
 * t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, as Stripe signs.
 * The timestamp is the attempt's, so a receiver can refuse old requests
 * (replays) while the `Goalpost-Webhook-Id` of a change stays the same.
 */
export const SIGNATURE_HEADER = 'goalpost-signature'
export const WEBHOOK_ID_HEADER = 'goalpost-webhook-id'

export function signWebhook(secret: string, timestampSeconds: number, body: string): string {
  const v1 = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex')
  return `t=${timestampSeconds},v1=${v1}`
}

/** Whether `header` signs `body` with `secret`, at most `toleranceSeconds` from `nowSeconds`. */
export function verifyWebhook(secret: string, header: string, body: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const parts = new Map<string, string[]>()
  for (const item of header.split(',')) {
    const eq = item.indexOf('=')
    if (eq > 0) parts.set(item.slice(0, eq).trim(), [...(parts.get(item.slice(0, eq).trim()) ?? []), item.slice(eq + 1).trim()])
  }
  const t = Number(parts.get('t')?.[0])
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds) return false
  const expected = signWebhook(secret, t, body).split('v1=')[1]
  return (parts.get('v1') ?? []).some((v) => safeEqual(v, expected))
}
