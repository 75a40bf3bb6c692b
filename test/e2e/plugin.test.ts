/**
 * The in-process plugin exactly as CONTRACT.md ("In-process plugin") shows it:
 * a real `@segment/analytics-node` client with `goalpostDestination` registered,
 * queueing into a running goalpost's BullMQ queue.
 */
import { randomUUID } from 'node:crypto'
import { connect, createServer, type Socket } from 'node:net'
import { Analytics } from '@segment/analytics-node'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { goalpostDestination, type GoalpostPluginError } from '../../src/plugin/index.ts'
import { REDIS_URL } from '../helpers/env.ts'
import { clientConnections } from '../helpers/redis.ts'
import { WRITE_KEY, startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import fc from 'fast-check'
import { fuzzRuns, hostileMessage } from '../helpers/hostile.ts'
import { waitFor } from '../helpers/wait.ts'

let gp: TestGoalpost
/** A local URL where nothing listens: the Segment.io destination fails fast there. */
let deadHost: string

/** A port nobody listens on: bound, noted, released. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

beforeAll(async () => {
  gp = await startGoalpost({ http: false, workers: true })
  deadHost = `http://127.0.0.1:${await freePort()}`
})
afterAll(async () => {
  await gp?.stop()
})

/** The app's analytics client: Segment.io delivery goes nowhere (and fails after one try), goalpost gets every call. */
function app() {
  const analytics = new Analytics({ writeKey: WRITE_KEY, host: deadHost, maxRetries: 0, flushInterval: 20 })
  const segmentErrors: { code: string; messageId?: string }[] = []
  analytics.on('error', (e) => segmentErrors.push({ code: e.code, messageId: e.ctx?.event.messageId }))
  return { analytics, segmentErrors }
}

const within = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)),
  ])

/** Redis clients named as plugin connections feeding this file's goalpost (its queue prefix). */
async function pluginConnections(): Promise<string[]> {
  const redis = new Redis(REDIS_URL)
  try {
    return (await clientConnections(redis)).filter((c) => c.name === `goalpost-plugin:${gp.config.queuePrefix}`).map((c) => c.id)
  } finally {
    redis.disconnect()
  }
}

describe('goalpostDestination registered on analytics-node (CONTRACT.md: In-process plugin)', () => {
  it('queues every call type to goalpost, stored with source plugin and the call as processing time (R1)', async () => {
    const run = randomUUID().slice(0, 8)
    const user = `pl-${run}`
    const { analytics, segmentErrors } = app()
    const errors: GoalpostPluginError[] = []
    const plugin = goalpostDestination({ redisUrl: REDIS_URL, queuePrefix: gp.config.queuePrefix, onError: (e) => errors.push(e) })
    await analytics.register(plugin)

    const before = Date.now()
    analytics.track({ userId: user, event: 'Order Completed', properties: { total: 30 }, timestamp: '2020-02-02T02:02:02.000Z', messageId: `t-${run}` })
    analytics.identify({ userId: user, anonymousId: `anon-${run}`, traits: { plan: 'pro' }, messageId: `i-${run}` })
    analytics.page({ userId: user, name: 'Pricing', messageId: `p-${run}` })
    analytics.screen({ userId: user, name: 'Home', messageId: `s-${run}` })
    analytics.group({ userId: user, groupId: `org-${run}`, traits: { name: 'Acme' }, messageId: `g-${run}` })
    analytics.alias({ userId: user, previousId: `old-${run}`, messageId: `a-${run}` })
    await within(analytics.closeAndFlush(), 20_000, 'closeAndFlush')
    const after = Date.now()

    expect(errors).toEqual([])
    expect(plugin.stats).toEqual({ queued: 6, invalid: 0, failed: 0 })
    // The app's Segment.io delivery failed (nothing listens there); goalpost's did not depend on it.
    expect(segmentErrors.map((e) => e.code)).toEqual(Array(6).fill('delivery_failure'))

    const ids = ['t', 'i', 'p', 's', 'g', 'a'].map((p) => `${p}-${run}`)
    const rows = (await waitFor(async () => {
      const r = await gp.database.db('events').whereIn('message_id', ids)
      return r.length === 6 && r
    })) as Record<string, any>[]
    const byId = new Map(rows.map((r) => [r.message_id as string, r]))
    const row = (id: string) => byId.get(id)!
    expect(ids.map((id) => [row(id).type, row(id).name, row(id).person_id, row(id).source])).toEqual([
      ['track', 'Order Completed', user, 'plugin'],
      ['identify', null, user, 'plugin'],
      ['page', 'Page Viewed', user, 'plugin'],
      ['screen', 'Screen Viewed', user, 'plugin'],
      ['group', null, user, 'plugin'],
      ['alias', null, user, 'plugin'],
    ])
    for (const r of rows) {
      expect(r.received_at.getTime()).toBeGreaterThanOrEqual(before)
      expect(r.received_at.getTime()).toBeLessThanOrEqual(after)
    }
    expect(row(`t-${run}`).sent_timestamp.toISOString()).toBe('2020-02-02T02:02:02.000Z')
    expect(row(`t-${run}`).properties).toEqual({ total: 30 })
    expect((await gp.database.db('people').where({ person_id: user }).first()).attributes).toEqual({ plan: 'pro' })

    // close() releases the plugin's own Redis connection, so the app can exit.
    expect(await pluginConnections()).toHaveLength(1)
    await plugin.close()
    expect(await pluginConnections()).toEqual([])
  })

  it('hostile calls (fast-check): each is refused by analytics-node, reported to onError, or stored; never two of these, never thrown into the app', async () => {
    const { analytics } = app()
    const errors: GoalpostPluginError[] = []
    const plugin = goalpostDestination({ redisUrl: REDIS_URL, queuePrefix: gp.config.queuePrefix, onError: (e) => errors.push(e) })
    await analytics.register(plugin)
    const run = randomUUID().slice(0, 8)
    let n = 0
    const refusedByClient = new Set<string>()
    const sent: string[] = []
    fc.assert(
      fc.property(hostileMessage, (m) => {
        const messageId = `fz-${run}-${++n}`
        const a = m as any
        const common = { userId: a.userId, anonymousId: a.anonymousId, timestamp: a.timestamp, context: a.context, messageId }
        sent.push(messageId)
        try {
          // analytics-node checks some things itself and throws before any plugin sees the call.
          if (a.type === 'identify') analytics.identify({ ...common, traits: a.traits })
          else if (a.type === 'page') analytics.page({ ...common, name: a.name, category: a.category, properties: a.properties })
          else if (a.type === 'screen') analytics.screen({ ...common, name: a.name, properties: a.properties })
          else if (a.type === 'group') analytics.group({ ...common, groupId: a.groupId, traits: a.traits })
          else if (a.type === 'alias') analytics.alias({ userId: a.userId, previousId: a.previousId, timestamp: a.timestamp, messageId })
          else analytics.track({ ...common, event: a.event, properties: a.properties })
        } catch {
          refusedByClient.add(messageId)
        }
      }),
      fuzzRuns(150),
    )
    await within(analytics.closeAndFlush(), 30_000, 'closeAndFlush')
    await plugin.close()

    // Every call analytics-node let through was either queued or reported, once.
    for (const e of errors) expect(e.kind).toBe('invalid_message')
    const reported = errors.flatMap((e) => e.messageIds)
    const reachedPlugin = sent.filter((id) => !refusedByClient.has(id))
    expect(plugin.stats.queued + plugin.stats.invalid).toBe(reachedPlugin.length)
    expect(reported.length).toBe(plugin.stats.invalid)
    expect(plugin.stats.failed).toBe(0)
    expect(plugin.stats.queued).toBeGreaterThan(10) // the generator does make valid calls
    // What was queued is stored, under the call's own messageId. (Reported ids
    // are not all ours: analytics-core drops an alias's options, messageId
    // included, when it has no userId, which goalpost then refuses.)
    const stored = async () => gp.database.db('events').where('message_id', 'like', `fz-${run}-%`).pluck('message_id')
    await waitFor(async () => (await stored()).length === plugin.stats.queued, { timeoutMs: 30_000, what: 'every queued call to be stored' })
    const storedIds = await stored()
    const reportedIds = new Set(reported)
    expect(storedIds.filter((id) => reportedIds.has(id) || refusedByClient.has(id) || !sent.includes(id))).toEqual([])
    expect(await gp.database.db('rejected_messages').where('message_id', 'like', `fz-${run}-%`).pluck('message_id')).toEqual([])
  })

  it("queues through an ioredis connection of the app's own and leaves it open on close (CONTRACT.md: In-process plugin)", async () => {
    const run = randomUUID().slice(0, 8)
    const connection = new Redis(REDIS_URL) // still connecting when the first call comes
    try {
      const { analytics } = app()
      const plugin = goalpostDestination({ connection, queuePrefix: gp.config.queuePrefix })
      await analytics.register(plugin)
      analytics.track({ userId: `pl-${run}`, event: 'Shared Connection', messageId: `shared-${run}` })
      await within(analytics.closeAndFlush(), 20_000, 'closeAndFlush')
      expect(plugin.stats).toEqual({ queued: 1, invalid: 0, failed: 0 })
      await plugin.close()
      expect(connection.status).toBe('ready')
      expect(await connection.ping()).toBe('PONG')
      await waitFor(async () => (await gp.database.db('events').where({ message_id: `shared-${run}`, source: 'plugin' })).length === 1)
    } finally {
      connection.disconnect()
    }
  })

  it('counts calls goalpost would refuse in stats.invalid and reports each to onError, never to the app (CONTRACT.md: plugin error hook)', async () => {
    const run = randomUUID().slice(0, 8)
    const { analytics } = app()
    const errors: GoalpostPluginError[] = []
    const plugin = goalpostDestination({ redisUrl: REDIS_URL, queuePrefix: gp.config.queuePrefix, onError: (e) => errors.push(e) })
    await analytics.register(plugin)

    // Each passes analytics-node's own validation but not goalpost's.
    analytics.track({ userId: `pl-${run}`, event: 'x'.repeat(1025), messageId: `long-name-${run}` })
    analytics.track({ userId: `pl-${run}`, event: '', messageId: `empty-name-${run}` })
    analytics.track({ userId: 'u'.repeat(256), event: 'Signed Up', messageId: `long-user-${run}` })
    analytics.track({ userId: `pl-${run}`, event: 'Note Saved', properties: { text: 'a\u0000b' }, messageId: `nul-${run}` })
    // analytics-node accepts a group call with only a groupId; goalpost needs a person.
    analytics.group({ groupId: `org-${run}`, messageId: `no-person-${run}` } as never)
    // A BigInt makes the call unserialisable; analytics-node's own destinations would just throw, unseen.
    analytics.track({ userId: `pl-${run}`, event: 'Big Number', properties: { n: 10n }, messageId: `bigint-${run}` })
    analytics.track({ userId: `pl-${run}`, event: 'Valid One', messageId: `valid-${run}` })
    await within(analytics.closeAndFlush(), 20_000, 'closeAndFlush')

    expect(plugin.stats).toEqual({ queued: 1, invalid: 6, failed: 0 })
    expect(errors).toHaveLength(6)
    for (const e of errors) expect(e.kind).toBe('invalid_message')
    const byId = new Map(errors.map((e) => [e.messageIds[0], e.message]))
    expect(byId.get(`long-name-${run}`)).toMatch(/^event: must be at most 1024 characters/)
    expect(byId.get(`empty-name-${run}`)).toMatch(/^event: is required/)
    expect(byId.get(`long-user-${run}`)).toMatch(/^userId: must be at most 255 characters/)
    expect(byId.get(`nul-${run}`)).toMatch(/NUL character/)
    expect(byId.get(`no-person-${run}`)).toMatch(/needs a userId or an anonymousId/)
    expect(byId.get(`bigint-${run}`)).toMatch(/not JSON-serialisable/)

    await waitFor(async () => (await gp.database.db('events').where({ message_id: `valid-${run}` })).length === 1)
    expect(await gp.database.db('events').where('message_id', 'like', `%-${run}`).pluck('message_id')).toEqual([`valid-${run}`])

    // analytics-node's way to remove a plugin also releases the plugin's Redis connection.
    expect(await pluginConnections()).toHaveLength(1)
    await analytics.deregister('goalpost')
    expect(await pluginConnections()).toEqual([])
  })

  it('reports queue_failed through onError and stats.failed when Redis is unreachable, without throwing into the app or hanging closeAndFlush (CONTRACT.md: plugin error hook)', async () => {
    const run = randomUUID().slice(0, 8)
    const { analytics } = app()
    const errors: GoalpostPluginError[] = []
    const plugin = goalpostDestination({ redisUrl: 'redis://127.0.0.1:1', queuePrefix: gp.config.queuePrefix, onError: (e) => errors.push(e) })
    await analytics.register(plugin)

    const started = Date.now()
    expect(() => {
      analytics.track({ userId: `pl-${run}`, event: 'Lost One', messageId: `lost-1-${run}` })
      analytics.identify({ userId: `pl-${run}`, traits: { plan: 'pro' }, messageId: `lost-2-${run}` })
    }).not.toThrow()
    await within(analytics.closeAndFlush(), 20_000, 'closeAndFlush')
    expect(Date.now() - started).toBeLessThan(20_000)

    expect(plugin.stats).toEqual({ queued: 0, invalid: 0, failed: 2 })
    expect(errors.every((e) => e.kind === 'queue_failed')).toBe(true)
    expect(errors.flatMap((e) => e.messageIds).sort()).toEqual([`lost-1-${run}`, `lost-2-${run}`])
    await within(plugin.close(), 5_000, 'plugin.close()')
    expect(await pluginConnections()).toEqual([])
  })

  it('recovers once Redis is back, and never queues a call it already reported as failed (CONTRACT.md: plugin error hook)', { timeout: 30_000 }, async () => {
    const run = randomUUID().slice(0, 8)
    // A TCP relay to the real Redis that the test switches on: Redis "comes back".
    const port = await freePort()
    const redis = new URL(REDIS_URL)
    const sockets = new Set<Socket>()
    const relay = createServer((client) => {
      const upstream = connect(Number(redis.port || 6379), redis.hostname)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('error', () => s.destroy())
        s.on('close', () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
    })
    const { analytics } = app()
    const errors: GoalpostPluginError[] = []
    const plugin = goalpostDestination({
      redisUrl: `redis://127.0.0.1:${port}`,
      queuePrefix: gp.config.queuePrefix,
      queueTimeoutMs: 3_000,
      onError: (e) => errors.push(e),
    })
    await analytics.register(plugin)
    try {
      analytics.track({ userId: `pl-${run}`, event: 'While Down', messageId: `down-${run}` })
      await within(analytics.flush(), 15_000, 'flush while Redis is away')
      expect(plugin.stats).toEqual({ queued: 0, invalid: 0, failed: 1 })
      expect(errors.map((e) => [e.kind, e.messageIds])).toEqual([['queue_failed', [`down-${run}`]]])

      await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve))
      analytics.track({ userId: `pl-${run}`, event: 'After Return', messageId: `up-${run}` })
      await within(analytics.closeAndFlush(), 15_000, 'closeAndFlush once Redis is back')
      expect(plugin.stats).toEqual({ queued: 1, invalid: 0, failed: 1 })
      expect(errors).toHaveLength(1)

      await waitFor(async () => (await gp.database.db('events').where({ message_id: `up-${run}` })).length === 1)
      expect(await gp.database.db('events').where({ person_id: `pl-${run}` }).pluck('message_id')).toEqual([`up-${run}`])
    } finally {
      await plugin.close()
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => relay.close(resolve))
    }
  })
})
