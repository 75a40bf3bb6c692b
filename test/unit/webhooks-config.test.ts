/**
 * The `webhooks` section of the configuration document (docs/outbound.md,
 * docs/configuration.md), the routing of changes to destinations, and the
 * signature goalpost puts on each request.
 */
import { describe, expect, it } from 'vitest'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'
import { destinationsOf, outboundRouting } from '../../src/outbox/routing.ts'
import { signWebhook, verifyWebhook } from '../../src/outbox/signature.ts'
import { isForwardedCall } from '../../src/outbox/forwarded.ts'

const hook = (extra: Record<string, unknown> = {}) => ({
  name: 'crm',
  url: 'https://crm.example.com/hooks',
  events: ['conversion_recorded'],
  secret_env: 'CRM_SECRET',
  ...extra,
})

const errorsOf = (doc: unknown) => {
  const r = validateConfigDocument(doc)
  return r.ok ? [] : r.errors
}

describe('webhooks in the configuration document', () => {
  it('normalises a valid webhook; no section is no webhooks', () => {
    const r = validateConfigDocument({ webhooks: [hook({ events: ['journey_entered', 'journey_entered', 'conversion_revoked'], campaigns: ['cart'] })] })
    expect(r.ok && r.document.webhooks).toEqual([
      { name: 'crm', url: 'https://crm.example.com/hooks', events: ['journey_entered', 'conversion_revoked'], campaigns: ['cart'], secretEnv: 'CRM_SECRET' },
    ])
    const none = validateConfigDocument({})
    expect(none.ok && none.document.webhooks).toBeUndefined()
  })

  it('lists every problem with its path', () => {
    expect(
      errorsOf({
        webhooks: [
          hook({ url: 'ftp://x', events: [], secret: 'inline' }),
          hook({ name: 'Bad Name', url: 'https://u:p@x.example', events: ['conversion_made'], secret_env: 'not-a-name' }),
          hook(),
        ],
      }),
    ).toEqual([
      'webhooks[0].url: must be an http:// or https:// URL, got ftp://…',
      'webhooks[0].events: must list at least one of conversion_recorded, conversion_revoked, journey_entered, journey_exited',
      expect.stringMatching(/^webhooks\[0\]\.secret: unknown key/),
      'webhooks[1].name: must be 1-64 characters of a-z, 0-9, _ and -',
      'webhooks[1].url: must not carry credentials; receivers check the signature instead',
      expect.stringMatching(/^webhooks\[1\]\.events\[0\]: unknown change "conversion_made"/),
      'webhooks[1].secret_env: must be the name of an environment variable (letters, digits and _), e.g. GOALPOST_WEBHOOK_CRM_SECRET',
      'webhooks[2].name: duplicate name "crm" (also webhooks[0])',
    ])
  })
})

describe('routing changes to destinations', () => {
  const routing = outboundRouting(true, [
    { name: 'all', url: 'https://a', events: ['conversion_recorded', 'journey_entered'], secretEnv: 'A' },
    { name: 'cart', url: 'https://b', events: ['conversion_revoked'], campaigns: ['cart'], secretEnv: 'B' },
  ])!
  it('sends conversions to Segment and each change to the webhooks that asked for it and its campaign', () => {
    expect(destinationsOf(routing, 'conversion_recorded', 'news')).toEqual(['segment', 'webhook:all'])
    expect(destinationsOf(routing, 'conversion_revoked', 'cart')).toEqual(['segment', 'webhook:cart'])
    expect(destinationsOf(routing, 'conversion_revoked', 'news')).toEqual(['segment'])
    expect(destinationsOf(routing, 'journey_entered', 'cart')).toEqual(['webhook:all'])
    expect(destinationsOf(routing, 'journey_exited', 'cart')).toEqual([])
  })
  it('is null when nothing is configured (the write path adds nothing)', () => {
    expect(outboundRouting(false, [])).toBeNull()
  })
})

describe('signatures and forwarded calls', () => {
  it('signs t.body with HMAC-SHA256 and verifies within the tolerance only', () => {
    const header = signWebhook('s3cret', 1_800_000_000, '{"a":1}')
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/)
    expect(verifyWebhook('s3cret', header, '{"a":1}', 1_800_000_100)).toBe(true)
    expect(verifyWebhook('s3cret', header, '{"a":2}', 1_800_000_100)).toBe(false)
    expect(verifyWebhook('other', header, '{"a":1}', 1_800_000_100)).toBe(false)
    expect(verifyWebhook('s3cret', header, '{"a":1}', 1_800_000_301)).toBe(false)
  })
  it('recognises goalpost\'s own forwarded conversions by name and mark, nothing else', () => {
    const call = (name: string, context: Record<string, unknown> | null) => ({ type: 'track', name, context })
    expect(isForwardedCall(call('Conversion Recorded', { goalpost: { forwarded: true } }))).toBe(true)
    expect(isForwardedCall(call('Conversion Revoked', { goalpost: { forwarded: true } }))).toBe(true)
    expect(isForwardedCall(call('Conversion Recorded', null))).toBe(false)
    expect(isForwardedCall(call('Conversion Recorded', { goalpost: 'yes' }))).toBe(false)
    expect(isForwardedCall(call('Order Completed', { goalpost: { forwarded: true } }))).toBe(false)
  })
})
