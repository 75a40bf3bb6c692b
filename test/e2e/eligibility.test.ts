/**
 * R21 `POST /v1/eligibility {campaign, userId}` (CONTRACT.md): may the person
 * still receive the campaign's next message? Inputs arrive through the signed
 * webhook with Segment's receivedAt (R1), close to now, so journeys are
 * still running when the question is asked.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WRITE_KEY, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import { MIN, SEC, admin, identify, iso, journeys, memberships, putConfig, sendAndWait, track } from '../helpers/segment-webhook.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
const US = { match: 'all', conditions: [{ attribute: 'country', op: 'eq', value: 'US' }] }
const goal = { event: 'Order Completed', within: '1d', effective_from: '2026-01-01T00:00:00Z' }
const FLASH_WITHIN = 6 * SEC

beforeAll(async () => {
  gp = await startGoalpost()
  await putConfig(gp, {
    segments: [{ key: 'flash', conditions: [{ event: 'Flash Sale Bought', within: `${FLASH_WITHIN / SEC}s` }] }],
    campaigns: [
      { key: 'onboarding', external_ids: ['77'], trigger: { event: 'Signed Up' }, filters: US, goal, journey_ttl: '30d' },
      { key: 'flash_followup', trigger: { segment: 'flash' }, goal },
    ],
  })
})
afterAll(async () => {
  await gp?.stop()
})

const user = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`

async function ask(body: unknown, authorization: string | null = gp.basicAuth, raw?: string) {
  const res = await fetch(`${gp.url}/v1/eligibility`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: raw ?? JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

describe('POST /v1/eligibility (R21)', () => {
  it('R21: a person in an active journey is eligible, with its journey_id (the campaign named by key or external id)', async () => {
    const u = user('active')
    const now = Date.now()
    await sendAndWait(gp, [identify(u, { country: 'US' }, now - 60 * MIN), track(u, 'Signed Up', {}, now - 50 * MIN)])
    const [j] = await journeys(gp, u, 'onboarding')
    for (const campaign of ['onboarding', '77'])
      expect(await ask({ campaign, userId: u })).toEqual({ status: 200, body: { eligible: true, journey_id: j.journey_id, reason: 'journey-active' } })
  })

  it('R21: a person whose journey exited is not eligible; exited_at is the processing time of the input that made the exit due, not the question', async () => {
    const u = user('exited')
    const now = Date.now()
    await sendAndWait(gp, [
      identify(u, { country: 'US' }, now - 60 * MIN), track(u, 'Signed Up', {}, now - 50 * MIN), identify(u, { country: 'FR' }, now - 40 * MIN),
    ])
    const [j] = await journeys(gp, u, 'onboarding')
    const answer = await ask({ campaign: 'onboarding', userId: u })
    expect(answer).toEqual({
      status: 200,
      body: { eligible: false, journey_id: j.journey_id, reason: 'journey-exited', exited_at: iso(now - 40 * MIN), exit_reason: 'unmatch' },
    })
    expect((await journeys(gp, u, 'onboarding')).map((r) => [r.exited_at, r.exit_reason])).toEqual([[iso(now - 40 * MIN), 'unmatch']])
  })

  it('R21, R23: a time-caused unmatch that is due is recorded by the question at the instant it became due (received_at + within), not at the question', async () => {
    const u = user('flash')
    const t = Date.now()
    const due = t + FLASH_WITHIN
    await sendAndWait(gp, [track(u, 'Flash Sale Bought', {}, t)])
    const [j] = await journeys(gp, u, 'flash_followup')
    expect([j.entry_cause, j.entered_at, j.exited_at]).toEqual(['segment_trigger', iso(t), null])
    expect(await ask({ campaign: 'flash_followup', userId: u })).toMatchObject({ status: 200, body: { eligible: true, reason: 'journey-active' } })

    await waitFor(() => Date.now() > due + 20, { what: 'the flash window to pass', timeoutMs: FLASH_WITHIN + 5 * SEC })
    const answer = await ask({ campaign: 'flash_followup', userId: u })
    expect(answer).toEqual({
      status: 200,
      body: { eligible: false, journey_id: j.journey_id, reason: 'journey-exited', exited_at: iso(due), exit_reason: 'unmatch' },
    })
    expect((await journeys(gp, u, 'flash_followup')).map((r) => [r.exited_at, r.exit_reason])).toEqual([[iso(due), 'unmatch']])
    expect((await memberships(gp, u, 'flash')).map((m) => [m.left_at, m.leave_message_id])).toEqual([[iso(due), null]])
  })

  it('R21: with no journey, the answer is whether the person matches the audience filters now (a person never seen has an empty profile)', async () => {
    const [us, fr] = [user('us'), user('fr')]
    await sendAndWait(gp, [identify(us, { country: 'US' }, Date.now() - MIN), identify(fr, { country: 'FR' }, Date.now() - MIN)])
    const expected = (eligible: boolean) => ({ status: 200, body: { eligible, journey_id: null, reason: eligible ? 'matches-audience' : 'outside-audience' } })
    expect(await ask({ campaign: 'onboarding', userId: us })).toEqual(expected(true))
    expect(await ask({ campaign: 'onboarding', userId: fr })).toEqual(expected(false))
    const stranger = user('never-seen')
    expect(await ask({ campaign: 'onboarding', userId: stranger })).toEqual(expected(false))
    expect(await ask({ campaign: 'flash_followup', userId: stranger })).toEqual(expected(true)) // no filters: everyone matches
    expect(await gp.database.db('person_evaluations').where({ person_id: stranger })).toEqual([]) // a question about a stranger writes nothing
  })

  it('R21, R3: the answers add nothing a recompute would not reproduce (a dry-run recompute afterwards finds no change)', async () => {
    const queued = await admin(gp, 'POST', '/admin/recompute', { dry_run: true })
    expect(queued.status).toBe(202)
    const job = await waitFor(async () => {
      const res = await admin(gp, 'GET', `/admin/jobs/${queued.body.job_id}`)
      return res.body.state === 'completed' && res.body
    }, { what: 'the dry-run recompute', timeoutMs: 20_000 })
    const zero = { added: 0, changed: 0, removed: 0 }
    expect(job.result.changes).toEqual({ journeys: zero, conversions: zero, memberships: zero, deliveries: zero })
    expect(job.result.people).toBeGreaterThan(0)
  })

  it('answers 404 for an unknown campaign, 400 for a bad body, 401 without a valid write key, each with a JSON error (CONTRACT.md)', async () => {
    const unknown = await ask({ campaign: 'no_such_campaign', userId: 'u1' })
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toMatchObject({ code: 'unknown_campaign', message: expect.stringContaining('no_such_campaign') })
    for (const [body, raw] of [[{ campaign: 'onboarding' }], [{ userId: 'u1' }], [{ campaign: 'onboarding', userId: '' }], [[1, 2]], [null, '{"campaign":']] as const) {
      const res = await ask(body, gp.basicAuth, raw)
      expect(res.status, JSON.stringify(body ?? raw)).toBe(400)
      expect(typeof res.body.error.message).toBe('string')
    }
    const missing = await ask({ campaign: 'onboarding', userId: 'u1' }, null)
    expect([missing.status, missing.body.error.code]).toEqual([401, 'missing_write_key'])
    const wrong = await ask({ campaign: 'onboarding', userId: 'u1' }, `Basic ${Buffer.from(`${WRITE_KEY}-not:`).toString('base64')}`)
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'invalid_write_key'])
  })

  it('R21: a campaign saved by PUT /admin/config is known to the very next eligibility question (the server reloads its configuration at once)', async () => {
    const u = user('late')
    // The server's configuration is cached (and checked at most once a second): warm it.
    expect((await ask({ campaign: 'onboarding', userId: u })).status).toBe(200)
    expect((await ask({ campaign: 'late_campaign', userId: u })).status).toBe(404)
    const res = await admin(gp, 'PUT', '/admin/config', {
      segments: [{ key: 'flash', conditions: [{ event: 'Flash Sale Bought', within: `${FLASH_WITHIN / SEC}s` }] }],
      campaigns: [
        { key: 'onboarding', external_ids: ['77'], trigger: { event: 'Signed Up' }, filters: US, goal, journey_ttl: '30d' },
        { key: 'flash_followup', trigger: { segment: 'flash' }, goal },
        { key: 'late_campaign', trigger: { event: 'Signed Up' }, goal },
      ],
    })
    expect(res.status).toBe(200)
    const answer = await ask({ campaign: 'late_campaign', userId: u })
    expect(answer.status).toBe(200)
    expect(typeof answer.body.eligible).toBe('boolean')
  })
})
