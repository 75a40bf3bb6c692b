/**
 * GOALPOST_RATE_LIMIT=<messages>/<seconds> (issue 9): a per-write-key limit
 * on the tracking API, counted in Redis so every serve process shares it;
 * over it a request is refused whole with 429 and Retry-After, which the real
 * analytics-node client honours, and nothing it sent is lost or doubled.
 */
import { Analytics } from '@segment/analytics-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { run, type Running } from '../../src/cli/runtime.ts'
import { parseRateLimit } from '../../src/http/rate-limit.ts'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { waitFor } from '../helpers/wait.ts'

const KEY_A = 'rate-key-a'
const KEY_B = 'rate-key-b'
let gp: TestGoalpost
let second: Running // another `serve` process's HTTP part, on the same Redis and prefix

beforeAll(async () => {
  gp = await startGoalpost({}, { GOALPOST_WRITE_KEYS: `${KEY_A},${KEY_B}`, GOALPOST_RATE_LIMIT: '50/3' })
  second = await run({ migrate: false, http: true, workers: false }, gp.config)
})
afterAll(async () => {
  await second?.close()
  await gp?.stop()
})

const auth = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`
const batchOf = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ type: 'track', event: 'Product Viewed', userId: `rl-${tag}-${i % 7}`, messageId: `rl-${tag}-${i}` }))
const post = (url: string, key: string, batch: unknown[]) =>
  fetch(`${url}/v1/batch`, { method: 'POST', headers: { authorization: auth(key), 'content-type': 'application/json' }, body: JSON.stringify({ batch }) })
const storedLike = async (prefix: string) => Number((await gp.database.db('events').where('message_id', 'like', `${prefix}%`).count({ n: '*' }))[0].n)

/** Waits for the start of a fresh window, so the test's requests share one. */
async function freshWindow() {
  await new Promise((r) => setTimeout(r, 3_100))
}

describe('GOALPOST_RATE_LIMIT', () => {
  it('parses <messages>/<seconds> and refuses anything else with the reason', () => {
    expect(parseRateLimit('1000/1')).toEqual({ messages: 1000, seconds: 1 })
    expect(parseRateLimit(' 60000 / 60 ')).toEqual({ messages: 60000, seconds: 60 })
    expect(parseRateLimit(undefined)).toBeNull()
    expect(() => loadConfig({ GOALPOST_RATE_LIMIT: 'fast' })).toThrow(/GOALPOST_RATE_LIMIT: must be <messages>\/<seconds>/)
    expect(() => loadConfig({ GOALPOST_RATE_LIMIT: '0/1' })).toThrow(/GOALPOST_RATE_LIMIT: needs at least 1 message/)
    expect(loadConfig({}).rateLimit).toBeNull()
  })

  it('answers 429 with Retry-After over the limit, shared by every serve process, per write key; the refused batch is not stored', async () => {
    await freshWindow()
    const ok = await post(gp.url, KEY_A, batchOf('a1', 30))
    expect(ok.status).toBe(200)
    // 30 + 30 > 50 within the window, and the second process sees the first one's count.
    const refused = await post(second.url!, KEY_A, batchOf('a2', 30))
    expect(refused.status).toBe(429)
    const retryAfter = Number(refused.headers.get('retry-after'))
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(3)
    expect(await refused.json()).toMatchObject({ error: { code: 'rate_limited', message: expect.stringContaining('50 messages per 3 s') } })
    // Another write key has a window of its own.
    expect((await post(second.url!, KEY_B, batchOf('b1', 30))).status).toBe(200)
    await waitFor(async () => (await storedLike('rl-a1-')) === 30 && (await storedLike('rl-b1-')) === 30, { what: 'the accepted batches stored' })
    expect(await storedLike('rl-a2-')).toBe(0)
    // After the window, the refused batch goes through.
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100))
    expect((await post(gp.url, KEY_A, batchOf('a2', 30))).status).toBe(200)
    await waitFor(async () => (await storedLike('rl-a2-')) === 30, { what: 'the retried batch stored' })
  }, 30_000)

  it('a single request larger than the whole limit takes a whole window instead of being refused forever', async () => {
    await freshWindow()
    expect((await post(gp.url, KEY_B, batchOf('big', 80))).status).toBe(200)
    expect((await post(gp.url, KEY_B, batchOf('big2', 1))).status).toBe(429)
  }, 30_000)

  it('the real analytics-node client honours Retry-After: every message stored once despite the 429s', async () => {
    await freshWindow()
    const analytics = new Analytics({ writeKey: KEY_A, host: gp.url, flushAt: 20, flushInterval: 10, maxRetries: 3 })
    const statuses: number[] = []
    const errors: unknown[] = []
    analytics.on('http_response', (r) => statuses.push(r.status))
    analytics.on('error', (e) => errors.push(e))
    for (let i = 0; i < 150; i++) analytics.track({ userId: `rl-node-${i % 9}`, event: 'Product Viewed', messageId: `rl-node-${i}` })
    await analytics.closeAndFlush({ timeout: 25_000 })
    expect(errors).toEqual([])
    expect(statuses).toContain(429) // the limit was met...
    await waitFor(async () => (await storedLike('rl-node-')) === 150, { timeoutMs: 10_000, what: '150 messages stored' }) // ...and nothing lost
    const doubled = await gp.database.db('events').where('message_id', 'like', 'rl-node-%').groupBy('message_id').havingRaw('count(*) > 1').select('message_id')
    expect(doubled).toEqual([])
  }, 40_000)
})
