/**
 * Retention (docs/operations.md, "Retention") end to end: old people, new
 * people (every input inside the retained range) and a person with both,
 * sent through the signed webhook with Segment's receivedAt as processing
 * time (R1). Retention deletes only the old events (identify kept), in
 * batches; a recompute afterwards gives every in-range person exactly the
 * rows it gave before (R3), and leaves the shortened people's rows as the
 * whole log made them. Both runs are in job_runs and GET /admin/jobs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigCache } from '../../src/jobs/config-cache.ts'
import { recompute, UnknownCampaignError } from '../../src/jobs/recompute.ts'
import { runRetention } from '../../src/jobs/retention.ts'
import { lockPeople } from '../../src/db/events.ts'
import type { Knex } from '../../src/db/knex.ts'
import { goalpostCli } from '../helpers/cli.ts'
import { startGoalpost, stopWakeUps, testEnv, type TestGoalpost } from '../helpers/goalpost.ts'
import { DAY, HOUR, admin, identify, lifecycle, putConfig, sendAndWait, track, type Message } from '../helpers/segment-webhook.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
const now = Date.now()
const OLD = now - 200 * DAY
const NEW = now - 10 * DAY
const OLDER_THAN = 100 * DAY

const config = {
  segments: [{ key: 'buyers', conditions: [{ event: 'Order Completed', count: { op: 'gte', value: 1 }, within: '60d' }] }],
  campaigns: [
    {
      key: 'cart',
      external_ids: ['101'],
      trigger: { event: 'Cart Abandoned' },
      // R14: in force before the backdated journeys entered.
      goal: { event: 'Order Completed', within: '7d', value: 'total', effective_from: '2020-01-01T00:00:00Z' },
      journey_ttl: '30d',
    },
  ],
}

/** A cart abandoned, an email sent and delivered, an order: one conversion (R10, R11). */
function story(user: string, at: number, tag: string): Message[] {
  return [
    track(user, 'Cart Abandoned', { cart_id: tag }, at),
    lifecycle(user, 'Email Sent', `${user}-${tag}`, '101', at + HOUR),
    lifecycle(user, 'Email Delivered', `${user}-${tag}`, '101', at + HOUR + 60_000),
    track(user, 'Order Completed', { total: 30 }, at + 2 * HOUR),
  ]
}

const OLD_PEOPLE = ['old1', 'old2']
const NEW_PEOPLE = ['new1', 'new2', 'new3']
const MIXED = 'mixed'

const ROWS = {
  journeys: `SELECT journey_id, campaign_key, person_id, entered_at, entry_cause, entry_message_id, goal_version, exited_at, exit_reason, completed_at, converted_at FROM journeys WHERE person_id = ANY(?) ORDER BY journey_id`,
  conversions: `SELECT journey_id, campaign_key, person_id, delivery_id, goal_version, goal_type, event_message_id, converted_at, anchor_at, attributed_via, channel, value FROM conversions WHERE person_id = ANY(?) ORDER BY journey_id`,
  memberships: `SELECT segment_key, person_id, joined_at, left_at, join_message_id, leave_message_id FROM segment_memberships WHERE person_id = ANY(?) ORDER BY person_id, segment_key, joined_at`,
  deliveries: `SELECT delivery_id, campaign_key, journey_id, after_exit, converted_at FROM deliveries WHERE person_id = ANY(?) ORDER BY delivery_id`,
}
async function rowsOf(people: string[]) {
  const out: Record<string, unknown[]> = {}
  for (const [k, sql] of Object.entries(ROWS)) out[k] = (await gp.database.db.raw(sql, [people])).rows
  return out
}
const count = async (sql: string, bindings: Array<string | Date | string[]> = []) => Number((await gp.database.db.raw(`SELECT count(*)::int AS n FROM ${sql}`, bindings)).rows[0].n)

async function recomputeOverHttp() {
  const queued = await admin(gp, 'POST', '/admin/recompute', {})
  expect(queued.status).toBe(202)
  return waitFor(async () => {
    const res = await admin(gp, 'GET', `/admin/jobs/${queued.body.job_id}`)
    return res.body.state === 'completed' && res.body
  }, { what: 'the recompute job', timeoutMs: 30_000 })
}

const zero = { added: 0, changed: 0, removed: 0 }
const noChanges = { journeys: zero, conversions: zero, memberships: zero, deliveries: zero }

beforeAll(async () => {
  gp = await startGoalpost()
  await putConfig(gp, config)
  const messages = [
    ...OLD_PEOPLE.flatMap((u) => [identify(u, { plan: 'pro' }, OLD - HOUR), ...story(u, OLD, 'a')]),
    ...NEW_PEOPLE.flatMap((u) => [identify(u, { plan: 'pro' }, NEW - HOUR), ...story(u, NEW, 'b')]),
    identify(MIXED, { plan: 'pro' }, OLD - HOUR),
    ...story(MIXED, OLD, 'a'),
    ...story(MIXED, NEW, 'b'),
  ]
  // In processing-time order, one request: the streamed rows are the reference.
  await sendAndWait(gp, messages)
  // The scheduled wake-up re-evaluates people on its own: keep it out of what is compared.
  await stopWakeUps(gp)
}, 90_000)
afterAll(async () => {
  await gp?.stop()
})

describe('retention', () => {
  it('deletes only events older than older_than (identify and alias kept), in batches; a recompute after it changes no row of in-range people', async () => {
    expect(await count(`conversions WHERE person_id = ANY(?)`, [[...OLD_PEOPLE, ...NEW_PEOPLE, MIXED]])).toBe(OLD_PEOPLE.length + NEW_PEOPLE.length + 2)
    // Streaming == recompute before retention (R3): the reference rows.
    expect((await recomputeOverHttp()).result).toEqual({ people: expect.any(Number), changes: noChanges })
    const inRange = await rowsOf(NEW_PEOPLE)
    const shortened = await rowsOf([...OLD_PEOPLE, MIXED])
    const horizon = now - OLDER_THAN
    const oldTracks = await count(`events WHERE received_at < ? AND type NOT IN ('identify', 'alias')`, [new Date(horizon)])
    const youngEvents = await count(`events WHERE received_at >= ?`, [new Date(horizon)])
    const identifies = await count(`events WHERE type = 'identify'`)
    expect(oldTracks).toBe(12) // 4 for each of old1, old2 and mixed

    const ctx = await new ConfigCache(gp.database.db).get()
    const result = await runRetention(gp.database.db, ctx.config, { olderThanMs: OLDER_THAN, now, batchSize: 4 })
    expect(result).toMatchObject({ horizon: new Date(horizon).toISOString(), eventsDeleted: oldTracks, people: 3 })
    expect(result.batches).toBeGreaterThan(1)
    expect(await count(`events WHERE received_at < ? AND type NOT IN ('identify', 'alias')`, [new Date(horizon)])).toBe(0)
    expect(await count(`events WHERE received_at >= ?`, [new Date(horizon)])).toBe(youngEvents)
    expect(await count(`events WHERE type = 'identify'`)).toBe(identifies)
    const horizons = await gp.database.db('retention_horizons').orderBy('person_id').select('person_id', 'events_deleted')
    expect(horizons.map((h) => [h.person_id, Number(h.events_deleted)])).toEqual([['mixed', 4], ['old1', 4], ['old2', 4]])

    // A recompute after retention: in-range people get exactly their rows; the shortened ones keep theirs.
    const after = await recomputeOverHttp()
    expect(after.result).toEqual({ people: expect.any(Number), changes: noChanges, kept: 3 })
    expect(await rowsOf(NEW_PEOPLE)).toEqual(inRange)
    expect(await rowsOf([...OLD_PEOPLE, MIXED])).toEqual(shortened)

    // Still rebuilt from the log: rows of an in-range person deleted by hand come back exactly.
    const lost = await gp.database.db('conversions').where({ person_id: 'new1' }).delete()
    expect(lost).toBe(1)
    const restored = await recomputeOverHttp()
    expect(restored.result.changes.conversions).toEqual({ added: 1, changed: 0, removed: 0 })
    expect(await rowsOf(NEW_PEOPLE)).toEqual(inRange)

    // A second run finds nothing more to delete.
    expect(await runRetention(gp.database.db, ctx.config, { olderThanMs: OLDER_THAN, now, batchSize: 4 })).toMatchObject({ eventsDeleted: 0, people: 0 })
  }, 90_000)

  it('`goalpost recompute` after retention says how many people it left as they are, and is recorded with trigger cli', async () => {
    const env = testEnv(gp.database, gp.config.queuePrefix)
    const json = await goalpostCli(['recompute', '--json'], env)
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ dry_run: false, campaign: null, changes: noChanges, kept: 3 })
    const text = await goalpostCli(['recompute'], env)
    expect(text.stdout).toMatch(/^left as they are: 3 people whose log retention shortened/m)
    const runs = await gp.database.db('job_runs').where({ kind: 'recompute', trigger: 'cli' }).whereNotNull('finished_at')
    expect(runs).toHaveLength(2)
    expect(runs[0]).toMatchObject({ scope: 'all', job_id: null, error: null, conversions_added: 0 })
  }, 60_000)

  it('refuses an age the configuration in force does not allow, deleting nothing, and records the refusal', async () => {
    const ctx = await new ConfigCache(gp.database.db).get()
    const before = await count('events')
    await expect(runRetention(gp.database.db, ctx.config, { olderThanMs: 45 * DAY, now })).rejects.toThrow(
      /retention older_than 45d is not longer than the event window of segment buyers \(within: 60d\); nothing was deleted/,
    )
    expect(await count('events')).toBe(before)
    const refused = await gp.database.db('job_runs').where({ kind: 'retention' }).whereNotNull('error').first()
    expect(refused).toMatchObject({ scope: 'older_than:45d', trigger: 'cli', events_deleted: null })
  })

  it('a queued or scheduled recompute of a campaign archived since fails, and the failure is recorded in job_runs', async () => {
    const ctx = await new ConfigCache(gp.database.db).get()
    await expect(recompute(gp.database.db, ctx, { campaign: 'archived_since', now: Date.now(), trigger: 'schedule', schedule: 'nightly' })).rejects.toThrow(
      UnknownCampaignError,
    )
    const failed = await gp.database.db('job_runs').where({ kind: 'recompute', trigger: 'schedule' }).first()
    expect(failed).toMatchObject({ scope: 'campaign:archived_since', schedule: 'nightly', people: null })
    expect(failed.finished_at).not.toBeNull()
    expect(failed.error).toMatch(/no active campaign "archived_since"/)
  })

  it('PUT /admin/config refuses a retention schedule shorter than the longest window, with the reason', async () => {
    const res = await admin(gp, 'PUT', '/admin/config', { ...config, schedules: [{ name: 'purge', every: '1d', retention: { older_than: '30d' } }] })
    expect(res.status).toBe(422)
    expect(res.body.error.details.errors).toEqual([
      'schedules[0].retention.older_than: must be longer than the event window of segment buyers (within: 60d): events younger than that can still open, convert, complete or count towards something (docs/operations.md, "Retention")',
    ])
  })

  it('GET /admin/jobs lists the runs newest first, with their trigger, scope and counts; the admin token is required', async () => {
    const res = await admin(gp, 'GET', '/admin/jobs?limit=10')
    expect(res.status).toBe(200)
    const runs = res.body.runs as Array<Record<string, any>>
    expect(runs.map((r) => r.run_id)).toEqual([...runs.map((r) => r.run_id)].sort((a, b) => b - a))
    const retention = runs.filter((r) => r.kind === 'retention' && r.state === 'completed')
    expect(retention[retention.length - 1]).toMatchObject({ scope: 'older_than:100d', trigger: 'cli', events_deleted: 12, people: 3, changes: null, error: null })
    expect(runs.filter((r) => r.kind === 'recompute' && r.trigger === 'cli')).toHaveLength(2)
    const recomputes = runs.filter((r) => r.kind === 'recompute' && r.trigger === 'api')
    expect(recomputes.length).toBe(3)
    expect(recomputes[0]).toMatchObject({ scope: 'all', dry_run: false, trigger: 'api', state: 'completed', error: null })
    expect(recomputes[0].changes.conversions).toEqual({ added: 1, changed: 0, removed: 0 })
    expect(recomputes[0].job_id).toEqual(expect.any(String))
    expect(runs.find((r) => r.state === 'failed' && r.kind === 'retention')).toMatchObject({ error: expect.stringMatching(/not longer than/) })

    const only = await admin(gp, 'GET', '/admin/jobs?kind=retention&trigger=cli')
    expect(only.body.runs.every((r: any) => r.kind === 'retention' && r.trigger === 'cli')).toBe(true)
    const bad = await admin(gp, 'GET', '/admin/jobs?kind=wake')
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_filter'])
    const anonymous = await fetch(`${gp.url}/admin/jobs`)
    expect(anonymous.status).toBe(401)
  })

  it('a person merged (R25) with an anonymous id whose log retention shortened is left as they are by a recompute too', async () => {
    const anon = { anonymousId: 'anon-old' }
    await sendAndWait(gp, [
      track(anon, 'Cart Abandoned', { cart_id: 'c' }, OLD),
      lifecycle(anon, 'Email Sent', 'anon-old-c', '101', OLD + HOUR),
      track(anon, 'Order Completed', { total: 30 }, OLD + 2 * HOUR),
    ])
    const ctx = await new ConfigCache(gp.database.db).get()
    await runRetention(gp.database.db, ctx.config, { olderThanMs: OLDER_THAN, now })
    expect(await gp.database.db('retention_horizons').where({ person_id: 'anon-old' }).first()).toBeDefined()
    // The merge moves what is left of the anonymous log to the known person.
    await sendAndWait(gp, [identify({ userId: 'known-late', anonymousId: 'anon-old' }, { plan: 'pro' }, now - HOUR)])
    // A row a replay of what is left would change: the recompute must not touch it.
    await gp.database.db('deliveries').where({ delivery_id: 'anon-old-c' }).update({ campaign_key: 'cart', after_exit: true })
    const before = await rowsOf(['known-late', 'anon-old'])
    expect(before.deliveries).toEqual([{ delivery_id: 'anon-old-c', campaign_key: 'cart', journey_id: null, after_exit: true, converted_at: null }])
    const result = await recompute(gp.database.db, ctx, { now: Date.now() })
    expect(result.changes).toEqual(noChanges)
    expect(await rowsOf(['known-late', 'anon-old'])).toEqual(before)
  })

  it("retention deletes a person's events only under their lock: an evaluation holding it sees the whole log until it commits", async () => {
    await sendAndWait(gp, story('old3', OLD, 'd'))
    const ctx = await new ConfigCache(gp.database.db).get()
    const db = gp.database.db
    const logOf = async (q: typeof db | Knex.Transaction) => Number((await q('events').where({ person_id: 'old3' }).whereNot({ type: 'identify' }).count({ n: '*' }))[0].n)
    let seenUnderLock = -1
    let retention: Promise<unknown> | undefined
    await db.transaction(async (trx) => {
      await lockPeople(trx, ['old3'])
      retention = runRetention(db, ctx.config, { olderThanMs: OLDER_THAN, now })
      // Until retention waits for old3's lock (Postgres says so), then the log as this transaction reads it.
      await waitFor(
        async () => (await db.raw(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                    WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`)).rows[0].n > 0,
        { what: 'retention waiting for the lock' },
      )
      seenUnderLock = await logOf(trx)
    })
    await retention
    expect(seenUnderLock).toBe(4)
    expect(await logOf(db)).toBe(0)
    expect(await db('retention_horizons').where({ person_id: 'old3' }).first()).toMatchObject({ events_deleted: 4 })
  })
})
