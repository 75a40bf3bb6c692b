/**
 * Recompute (R3) end to end: `POST /admin/recompute` with `GET /admin/jobs/:id`,
 * and the `goalpost recompute` CLI. The log is a generated scenario (people,
 * deliveries with random lifecycles, identity merges, goal events) plus a few
 * hand-made conversions, sent through the signed webhook in shuffled,
 * concurrent requests; what the workers derived while streaming must be what
 * a recompute derives.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGoalpost, stopWakeUps, testEnv, type TestGoalpost } from '../helpers/goalpost.ts'
import { rng, scenarioConfig, scenarioMessages } from '../helpers/scenario.ts'
import { admin, lifecycle, mar, putConfig, send, track, type Message } from '../helpers/segment-webhook.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
const run = promisify(execFile)

/** Hand-made conversions in two campaigns (cart: external id 101, news: 303), so there is something to lose. */
function handMade(): Message[] {
  return [1, 2, 3].flatMap((i) => {
    const u = `hand${i}`
    return [
      track(u, 'Cart Abandoned', { cart_id: 'c1', total: 20 }, mar(20, '10:00', i)),
      lifecycle(u, 'Email Link Clicked', `${u}-cart`, '101', mar(20, '10:05', i)),
      lifecycle(u, 'Email Sent', `${u}-news`, '303', mar(20, '10:06', i)),
      lifecycle(u, 'Email Link Clicked', `${u}-news`, '303', mar(20, '10:07', i)),
      track(u, 'Order Completed', { cart_id: 'c1', total: 40 + i }, mar(20, '11:00', i)),
    ]
  })
}

beforeAll(async () => {
  gp = await startGoalpost()
  const r = rng(Number(process.env.RECOMPUTE_SEED ?? 7)) // another scenario: RECOMPUTE_SEED=<n>
  await putConfig(gp, scenarioConfig(r)[0])
  const messages = [...scenarioMessages(r, 12).map((m) => m.message as Message), ...handMade()]
  // Shuffled, in concurrent requests: persist order differs from processing-time order (R2, R3).
  const chunks = r.shuffle(messages).reduce<Message[][]>((acc, m, i) => (i % 7 === 0 ? [...acc, [m]] : (acc[acc.length - 1].push(m), acc)), [])
  await Promise.all(chunks.map((c) => send(gp, c)))
  const ids = messages.map((m) => m.messageId)
  await waitFor(async () => Number((await gp.database.db('events').whereIn('message_id', ids).count({ n: '*' }))[0].n) === ids.length, {
    what: 'the scenario persisted',
    timeoutMs: 30_000,
  })
  // These tests edit derived rows by hand and count what a recompute restores:
  // the scheduled wake-up (which re-evaluates people on its own) must not get
  // there first. Recompute jobs still run: only the scheduler is removed.
  await stopWakeUps(gp)
}, 90_000)
afterAll(async () => {
  await gp?.stop()
})

const SNAPSHOT = {
  journeys: `SELECT journey_id, campaign_key, person_id, entered_at, entry_cause, entry_message_id, goal_version, exited_at, exit_reason, completed_at, converted_at FROM journeys ORDER BY journey_id`,
  conversions: `SELECT journey_id, campaign_key, person_id, delivery_id, goal_version, goal_type, event_message_id, converted_at, anchor_at, attributed_via, channel, value FROM conversions ORDER BY journey_id`,
  memberships: `SELECT segment_key, person_id, joined_at, left_at, join_message_id, leave_message_id FROM segment_memberships ORDER BY person_id, segment_key, joined_at`,
  deliveries: `SELECT delivery_id, campaign_key, journey_id, after_exit, converted_at FROM deliveries ORDER BY delivery_id`,
}
async function snapshot() {
  const out: Record<string, unknown[]> = {}
  for (const [k, sql] of Object.entries(SNAPSHOT)) out[k] = (await gp.database.db.raw(sql)).rows
  return out
}
const count = async (sql: string, bindings: string[] = []) => Number((await gp.database.db.raw(`SELECT count(*)::int AS n FROM ${sql}`, bindings)).rows[0].n)

/** Queues a recompute over HTTP and waits for its job to finish; returns what GET /admin/jobs/:id shows then. */
async function recomputeOverHttp(body: object = {}) {
  const queued = await admin(gp, 'POST', '/admin/recompute', body)
  expect(queued.status).toBe(202)
  expect(Object.keys(queued.body)).toEqual(['job_id'])
  return waitFor(async () => {
    const res = await admin(gp, 'GET', `/admin/jobs/${queued.body.job_id}`)
    expect(res.status).toBe(200)
    return res.body.state === 'completed' && res.body
  }, { what: 'the recompute job', timeoutMs: 30_000 })
}

async function cli(...args: string[]) {
  const env = { ...process.env, ...testEnv(gp.database, gp.config.queuePrefix) }
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'recompute', ...args], { env, cwd: process.cwd() })
  return stdout
}

const zero = { added: 0, changed: 0, removed: 0 }
const noChanges = { journeys: zero, conversions: zero, memberships: zero, deliveries: zero }

describe('recompute (R3)', () => {
  it('R3: a recompute of the streamed database changes nothing (streaming == recompute); the job shows its progress and result', async () => {
    expect(await count(`conversions WHERE campaign_key IN ('cart', 'news')`)).toBeGreaterThanOrEqual(6)
    const before = await snapshot()
    const job = await recomputeOverHttp()
    const people = await count(`(SELECT person_id FROM people UNION SELECT person_id FROM journeys UNION SELECT person_id FROM segment_memberships) p`)
    expect(job).toMatchObject({ kind: 'recompute', state: 'completed', progress: { done: people, total: people }, error: null })
    expect(job.result).toEqual({ people, changes: noChanges })
    expect(await snapshot()).toEqual(before)
  })

  it('R3: rows deleted and edited by hand are restored exactly by POST /admin/recompute', async () => {
    const before = await snapshot()
    const lost = await count('conversions')
    await gp.database.db('conversions').delete()
    await gp.database.db('deliveries').whereNotNull('converted_at').update({ converted_at: null })
    const edited = await gp.database.db('journeys').where({ person_id: 'hand1' }).update({ exited_at: new Date(mar(1, '00:00')) })
    expect(edited).toBeGreaterThan(0)
    const job = await recomputeOverHttp()
    expect(job.result.changes.conversions).toEqual({ added: lost, changed: 0, removed: 0 })
    expect(job.result.changes.journeys).toEqual({ added: 0, changed: edited, removed: 0 })
    expect(job.result.changes.deliveries.changed).toBe(before.deliveries.filter((d: any) => d.converted_at !== null).length)
    expect(await snapshot()).toEqual(before)
  })

  it('R3: `goalpost recompute --dry-run` prints what it would change and changes nothing', async () => {
    const before = await snapshot()
    const removed = await gp.database.db('conversions').where({ campaign_key: 'news' }).delete()
    expect(removed).toBeGreaterThanOrEqual(3)
    const stdout = await cli('--dry-run')
    expect(stdout).toMatch(/^dry run: would change \d+ people:/)
    expect(stdout).toMatch(new RegExp(`conversions +\\+${removed} added +~0 changed +-0 removed`))
    expect(stdout).toMatch(/journeys +\+0 added +~0 changed +-0 removed/)
    expect(await count(`conversions WHERE campaign_key = 'news'`)).toBe(0)
    await cli() // put them back for the next test
    expect(await snapshot()).toEqual(before)
  }, 60_000)

  it('R3: `goalpost recompute --campaign cart` restores that campaign only; the other keeps its hand edits', async () => {
    const before = await snapshot()
    const cart = await gp.database.db('conversions').where({ campaign_key: 'cart' }).delete()
    const news = await gp.database.db('conversions').where({ campaign_key: 'news' }).delete()
    await gp.database.db('deliveries').where({ campaign_key: 'news' }).whereNotNull('converted_at').update({ converted_at: null })
    expect([cart, news].every((n) => n >= 3)).toBe(true)
    const stdout = await cli('--campaign', 'cart')
    expect(stdout).toMatch(/^recomputed \d+ people for campaign cart:/)
    expect(stdout).toMatch(new RegExp(`conversions +\\+${cart} added +~0 changed +-0 removed`))
    expect(stdout).toMatch(/deliveries +\+0 added +~0 changed +-0 removed/) // news deliveries are not cart's to fix
    expect(await count(`conversions WHERE campaign_key = 'cart'`)).toBe(cart)
    expect(await count(`conversions WHERE campaign_key = 'news'`)).toBe(0)
    expect(await count(`deliveries WHERE campaign_key = 'news' AND converted_at IS NOT NULL`)).toBe(0)
    const all = await recomputeOverHttp()
    expect(all.result.changes.conversions).toEqual({ added: news, changed: 0, removed: 0 })
    expect(await snapshot()).toEqual(before)
  }, 60_000)

  it('refuses a recompute of an unknown campaign (404) and an unknown job id (404), with JSON errors', async () => {
    const res = await admin(gp, 'POST', '/admin/recompute', { campaign: 'no_such_campaign' })
    expect([res.status, res.body.error?.code]).toEqual([404, 'unknown_campaign'])
    const job = await admin(gp, 'GET', '/admin/jobs/999999')
    expect([job.status, job.body.error?.code]).toEqual([404, 'unknown_job'])
    const bad = await admin(gp, 'POST', '/admin/recompute', { campaign: 42 })
    expect(bad.status).toBe(400)
  })
})
