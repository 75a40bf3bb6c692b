/**
 * Reporting webhooks (docs/outbound.md): a receiver that fails the first
 * attempts of every change still gets every change, each retry with the same
 * id, every signature verifies with the snippet docs/outbound.md gives
 * receivers, and each webhook gets only the changes and campaigns it asked for.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { putConfig } from '../helpers/segment-webhook.ts'
import { bounce, cartCampaign, conversionRows, order, outboxRows, persisted, producer, type Call } from '../helpers/outbound.ts'
import { waitFor } from '../helpers/wait.ts'
import { messageIdOf } from '../../src/outbox/store.ts'

const SECRETS = { GP_TEST_WEBHOOK_ALL: 'all-secret-1', GP_TEST_WEBHOOK_CART: 'cart-secret-2' }
const FAILURES_FIRST = 2

interface Received {
  path: string
  headers: IncomingHttpHeaders
  raw: Buffer
  status: number
}

let gp: TestGoalpost
let receiverUrl: string
let closeReceiver: () => Promise<void>
const received: Received[] = []
let verify: (secret: string, header: unknown, raw: Buffer | string, toleranceSeconds?: number, nowMs?: number) => boolean

/** The receivers' server: /all and /cart answer 500 to the first FAILURES_FIRST attempts of each change. */
async function startReceiver() {
  const attempts = new Map<string, number>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const id = String(req.headers['goalpost-webhook-id'])
      const n = (attempts.get(`${req.url}:${id}`) ?? 0) + 1
      attempts.set(`${req.url}:${id}`, n)
      const status = n <= FAILURES_FIRST ? 500 : 204
      received.push({ path: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks), status })
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  closeReceiver = () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve())))
}

/** The snippet of docs/outbound.md, exactly as a receiver would copy it, as a module. */
async function loadDocSnippet() {
  const doc = await readFile(new URL('../../docs/outbound.md', import.meta.url), 'utf8')
  const code = /<!-- verify-snippet[^>]*-->\s*```js\n([\s\S]*?)```/.exec(doc)?.[1]
  expect(code, 'the verification snippet in docs/outbound.md').toBeTruthy()
  const file = join(await mkdtemp(join(tmpdir(), 'goalpost-snippet-')), 'verify-goalpost-signature.mjs')
  await writeFile(file, code!)
  return ((await import(pathToFileURL(file).href)) as { verifyGoalpostSignature: typeof verify }).verifyGoalpostSignature
}

const bodies = (path: string) => received.filter((r) => r.path === path).map((r) => ({ ...r, body: JSON.parse(r.raw.toString('utf8')) as Record<string, any> }))
const delivered = (path: string) => new Map(bodies(path).filter((r) => r.status < 300).map((r) => [r.body.id as string, r.body]))

beforeAll(async () => {
  Object.assign(process.env, SECRETS) // the workers' environment: secret_env names these
  verify = await loadDocSnippet()
  await startReceiver()
  gp = await startGoalpost()
  await putConfig(gp, {
    campaigns: [cartCampaign('cart', { exit: 'on_goal' }), cartCampaign('news')],
    webhooks: [
      { name: 'all', url: `${receiverUrl}/all`, events: ['conversion_recorded', 'conversion_revoked', 'journey_entered', 'journey_exited'], secret_env: 'GP_TEST_WEBHOOK_ALL' },
      { name: 'cart-entered', url: `${receiverUrl}/cart`, events: ['journey_entered'], campaigns: ['cart'], secret_env: 'GP_TEST_WEBHOOK_CART' },
    ],
  })
  const p = producer(gp)
  const people = ['w1', 'w2', 'w3']
  const phases: Call[][] = [
    [...people.map((u) => ({ kind: 'track', userId: u, event: 'Cart Abandoned', properties: {} }) as Call), { kind: 'track', userId: 'w4', event: 'news Trigger', properties: {} }],
    [...people.map((u) => ({ kind: 'track', userId: u, event: 'Email Sent', properties: { delivery_id: `${u}-d1`, campaign_id: 'cart' } }) as Call)],
    people.map((u, i) => order(u, 20 + i)),
  ]
  const ids: string[] = []
  for (const phase of phases) ids.push(...(await p.send(phase)))
  // The conversions committed before the bounce comes: stored in one transaction, w1 would never have converted.
  await persisted(gp, ids)
  await persisted(gp, await p.send([bounce('w1', 'w1-d1')]))
  await p.close()
}, 120_000)

afterAll(async () => {
  await gp?.stop()
  await closeReceiver?.()
  for (const k of Object.keys(SECRETS)) delete process.env[k]
})

describe('reporting webhooks', () => {
  it('deliver every change despite failed first attempts, each retry with the same id', async () => {
    const rows = await outboxRows(gp, { destination: 'webhook:all' })
    // 4 journeys entered, 3 exited on the goal, 3 conversions, w1's revoked by its bounce (R5).
    const story = JSON.stringify(rows.map((r) => [r.id, r.change, r.person_id, r.campaign_key, r.sent_at]))
    expect(rows.map((r) => r.change).sort(), story).toEqual([
      'conversion_recorded', 'conversion_recorded', 'conversion_recorded', 'conversion_revoked',
      'journey_entered', 'journey_entered', 'journey_entered', 'journey_entered',
      'journey_exited', 'journey_exited', 'journey_exited',
    ])
    await waitFor(() => delivered('/all').size === rows.length, { what: 'every change delivered to /all', timeoutMs: 60_000 })
    expect([...delivered('/all').keys()].sort()).toEqual(rows.map((r) => messageIdOf({ ...r, id: String(r.id) })).sort())
    for (const [id, body] of delivered('/all')) {
      const attempts = bodies('/all').filter((r) => r.body.id === id)
      expect(attempts.map((a) => a.status), `${id}: ${story}`).toEqual([500, 500, 204])
      expect(new Set(attempts.map((a) => a.headers['goalpost-webhook-id']))).toEqual(new Set([id]))
      expect(attempts.every((a) => JSON.stringify(a.body) === JSON.stringify(body))).toBe(true)
    }
    const converted = await conversionRows(gp)
    const recorded = [...delivered('/all').values()].filter((b) => b.type === 'conversion_recorded')
    expect(recorded.map((b) => b.data.person_id).sort()).toEqual(['w1', 'w2', 'w3'])
    expect(converted.map((c) => c.person_id)).toEqual(expect.arrayContaining(['w2', 'w3']))
    for (const c of converted)
      expect(recorded.find((b) => b.data.journey_id === c.journey_id)?.data).toMatchObject({
        delivery_id: c.delivery_id,
        value: c.value,
        converted_at: c.converted_at.toISOString(),
        anchor_at: c.anchor_at.toISOString(),
      })
    const revoked = [...delivered('/all').values()].filter((b) => b.type === 'conversion_revoked')
    expect(revoked.map((b) => [b.data.person_id, b.data.delivery_id])).toEqual([['w1', 'w1-d1']])
    await waitFor(async () => (await outboxRows(gp)).every((r) => r.sent_at !== null), { what: 'every outbox row marked sent', timeoutMs: 30_000 })
  })

  it('sign every attempt so that the documented snippet verifies it, and nothing else', async () => {
    await waitFor(() => delivered('/cart').size === 3, { what: 'the cart webhook done', timeoutMs: 60_000 })
    expect(received.length).toBeGreaterThan(0)
    for (const r of received) {
      const secret = r.path === '/all' ? SECRETS.GP_TEST_WEBHOOK_ALL : SECRETS.GP_TEST_WEBHOOK_CART
      expect(r.headers['goalpost-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
      const t = Number(/t=(\d+)/.exec(String(r.headers['goalpost-signature']))![1])
      expect(verify(secret, r.headers['goalpost-signature'], r.raw, 300, t * 1000)).toBe(true)
      expect(verify(secret, r.headers['goalpost-signature'], Buffer.concat([r.raw, Buffer.from(' ')]), 300, t * 1000)).toBe(false)
      expect(verify('another-secret', r.headers['goalpost-signature'], r.raw, 300, t * 1000)).toBe(false)
      expect(verify(secret, r.headers['goalpost-signature'], r.raw, 300, (t + 301) * 1000)).toBe(false) // a replay, later
    }
  })

  it('send a webhook only the changes and campaigns it asked for', async () => {
    await waitFor(() => delivered('/cart').size === 3, { what: 'the cart webhook done', timeoutMs: 60_000 })
    const got = [...delivered('/cart').values()]
    expect(got.map((b) => [b.type, b.webhook, b.data.campaign_key, b.data.person_id]).sort()).toEqual([
      ['journey_entered', 'cart-entered', 'cart', 'w1'],
      ['journey_entered', 'cart-entered', 'cart', 'w2'],
      ['journey_entered', 'cart-entered', 'cart', 'w3'],
    ])
    expect(bodies('/all').some((r) => r.body.data.campaign_key === 'news' && r.body.type === 'journey_entered')).toBe(true)
  })
})
