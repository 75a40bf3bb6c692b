import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import YAML from 'yaml'
import { run } from '../../src/cli/runtime.ts'
import { loadConfig } from '../../src/config.ts'
import { ConfigDocumentError, validateConfigDocument, type ConfigDocument } from '../../src/core/config-document/index.ts'
import { applyConfig, ConfigSchemaMissingError, getConfigDocument, loadEngineConfig } from '../../src/db/config.ts'
import type { Knex } from '../../src/db/knex.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { PG_SERVER_URL, databaseUrl, uniqueSuffix } from '../helpers/env.ts'
import { ADMIN_TOKEN, startGoalpost, testEnv, type TestGoalpost } from '../helpers/goalpost.ts'
import { testQueuePrefix } from '../helpers/redis.ts'

const REPO = path.resolve(import.meta.dirname, '../..')
const NOW = new Date('2026-11-27T10:00:00.000Z')
const LATER = new Date('2026-11-28T10:00:00.000Z')

/** CONTRACT.md's example document, as a value to vary. */
const example = () => ({
  segments: [
    {
      key: 'vip',
      name: 'VIP customers',
      match: 'all',
      conditions: [
        { attribute: 'plan', op: 'eq', value: 'pro' },
        { event: 'Order Completed', count: { op: 'gte', value: 3 }, within: '30d' },
        { segment: 'churned', op: 'not_in' },
      ],
    },
    { key: 'churned', conditions: [{ event: 'Session Started', count: { op: 'eq', value: 0 }, within: '60d' }] },
  ],
  campaigns: [
    {
      key: 'cart_recovery',
      name: 'Cart recovery',
      external_ids: ['42'],
      trigger: { event: 'Cart Abandoned' },
      filters: { match: 'all', conditions: [{ segment: 'vip', op: 'in' }] },
      goal: {
        event: 'Order Completed',
        where: { match: 'all', conditions: [{ property: 'cart_id', op: 'eq', value: { trigger: 'cart_id' } }] },
        within: '7d',
        after: 'delivered',
        value: 'total',
        effective_from: '2026-01-01T00:00:00Z',
      },
      exit: 'on_unmatch',
      journey_ttl: '30d',
    },
  ],
  delivery_events: [{ event: 'Braze Email Sent', channel: 'email', status: 'sent' }],
})

type Doc = ReturnType<typeof example>

function validated(raw: unknown): ConfigDocument {
  const result = validateConfigDocument(raw)
  if (!result.ok) throw new Error(result.errors.join('\n'))
  return result.document
}

const apply = (db: Knex, raw: unknown, now = NOW) => applyConfig(db, validated(raw), { now, source: 'test', raw })

const CONFIG_TABLES = ['config_revisions', 'segments', 'campaigns', 'campaign_goal_versions', 'config_delivery_events']

/** Every row of the configuration tables, to show that something changed nothing. */
async function snapshot(db: Knex): Promise<string> {
  const all: Record<string, unknown[]> = {}
  for (const table of CONFIG_TABLES) all[table] = await db(table).select('*').orderByRaw('1, 2')
  return JSON.stringify(all)
}

const goalVersions = (db: Knex, campaign = 'cart_recovery') =>
  db('campaign_goal_versions').where({ campaign_key: campaign }).orderBy('version').select('version', 'goal', 'effective_from', 'revision')

/** A fresh database per test: the configuration is global to a database. */
const databases: TestDatabase[] = []
async function freshDb(): Promise<Knex> {
  const database = await createTestDatabase()
  databases.push(database)
  return database.db
}
afterEach(async () => {
  await Promise.all(databases.splice(0).map((d) => d.drop()))
})

describe('applyConfig and loadEngineConfig', () => {
  it('saves a document: revision 1, every entity added, goal version 1 from its effective_from (R13)', async () => {
    const db = await freshDb()
    const result = await apply(db, example())
    expect(result.revision).toBe(1)
    expect(result.changed).toBe(true)
    expect(result.changes).toEqual([
      'segment vip: added',
      'segment churned: added',
      'campaign cart_recovery: added',
      'campaign cart_recovery: goal set -> version 1, effective 2026-01-01T00:00:00.000Z (event "Order Completed" within 7d after delivered); backdated: 0 events named "Order Completed" processed since then are judged by it (R13)',
      'delivery event "Braze Email Sent": added (email sent)',
    ])
    expect(result.goalVersions).toEqual([
      {
        campaign: 'cart_recovery',
        version: 1,
        effectiveFrom: '2026-01-01T00:00:00.000Z',
        goal: validated(example()).campaigns[0].goal,
        touched: { inputs: 0, what: 'events named "Order Completed"' },
      },
    ])

    const { revision, config } = await loadEngineConfig(db)
    const doc = validated(example())
    expect(revision).toBe(1)
    expect(config.segments).toEqual([...doc.segments].sort((a, b) => a.key.localeCompare(b.key)))
    const { goal, effectiveFrom: _e, ...campaign } = doc.campaigns[0]
    expect(config.campaigns).toEqual([{ ...campaign, goals: [{ version: 1, effectiveFrom: '2026-01-01T00:00:00.000Z', goal }] }])
    expect(config.deliveryEvents).toEqual([{ event: 'Braze Email Sent', channel: 'email', step: 'sent' }])

    const [row] = await db('config_revisions').select('*')
    expect(row).toMatchObject({ revision: 1, source: 'test', document: example(), changes: result.changes })
    expect(row.applied_at.toISOString()).toBe(NOW.toISOString())
    expect(await getConfigDocument(db)).toEqual({ revision: 1, appliedAt: NOW.toISOString(), source: 'test', document: example() })
  })

  it('re-applying the same content changes nothing and says so, whatever its form', async () => {
    const db = await freshDb()
    await apply(db, example())
    const before = await snapshot(db)
    expect(await apply(db, example(), LATER)).toEqual({ revision: 1, changed: false, changes: [], goalVersions: [] })
    // Same meaning, other form: defaults written out, keys reordered, numbers for ids.
    const reordered = YAML.parse(YAML.stringify({ ...example(), delivery_events: [{ status: 'sent', channel: 'email', event: 'Braze Email Sent' }] }))
    reordered.segments[1].match = 'all'
    reordered.campaigns[0].webhook_conversions = false
    reordered.campaigns[0].external_ids = [42]
    expect((await apply(db, reordered, LATER)).changes).toEqual([])
    expect(await snapshot(db)).toBe(before)
  })

  it('a goal change makes version 2, effective now when effective_from is the current version\'s (R13)', async () => {
    const db = await freshDb()
    await apply(db, example())
    const doc: Doc = example()
    doc.campaigns[0].goal.within = '3d'
    const result = await apply(db, doc, LATER)
    expect(result.revision).toBe(2)
    expect(result.changes).toEqual([
      `campaign cart_recovery: goal changed -> version 2, effective ${LATER.toISOString()} (event "Order Completed" within 3d after delivered)`,
    ])
    expect(result.goalVersions).toMatchObject([{ campaign: 'cart_recovery', version: 2, effectiveFrom: LATER.toISOString() }])
    expect(result.goalVersions[0].touched).toBeUndefined()
    const versions = await goalVersions(db)
    expect(versions.map((v) => [v.version, v.goal.withinMs, v.effective_from.toISOString(), v.revision])).toEqual([
      [1, 7 * 86_400_000, '2026-01-01T00:00:00.000Z', 1],
      [2, 3 * 86_400_000, LATER.toISOString(), 2],
    ])
    const { config } = await loadEngineConfig(db)
    expect(config.campaigns[0].goals.map((g) => [g.version, g.effectiveFrom, g.goal?.withinMs])).toEqual([
      [1, '2026-01-01T00:00:00.000Z', 7 * 86_400_000],
      [2, LATER.toISOString(), 3 * 86_400_000],
    ])
  })

  it('a goal changed with a new past effective_from starts then, and says how many inputs that touches (R13)', async () => {
    const db = await freshDb()
    await apply(db, example())
    const at = (iso: string, name: string, id: string) => ({
      message_id: id,
      person_id: 'u1',
      type: 'track',
      name,
      properties: '{}',
      received_at: iso,
      source: 'test',
    })
    await db('events').insert([
      at('2026-11-01T00:00:00Z', 'Order Completed', 'before'),
      at('2026-11-20T00:00:00Z', 'Order Completed', 'since-1'),
      at('2026-11-21T00:00:00Z', 'Order Completed', 'since-2'),
      at('2026-11-27T09:00:00Z', 'Order Completed', 'since-3'),
      at('2026-11-21T00:00:00Z', 'Cart Abandoned', 'other-name'),
    ])
    const doc: Doc = example()
    doc.campaigns[0].goal.within = '2d'
    doc.campaigns[0].goal.effective_from = '2026-11-20T00:00:00Z'
    const result = await apply(db, doc)
    expect(result.goalVersions).toEqual([
      expect.objectContaining({
        version: 2,
        effectiveFrom: '2026-11-20T00:00:00.000Z',
        touched: { inputs: 3, what: 'events named "Order Completed"' },
      }),
    ])
    expect(result.changes).toEqual([
      'campaign cart_recovery: goal changed -> version 2, effective 2026-11-20T00:00:00.000Z (event "Order Completed" within 2d after delivered); backdated: 3 events named "Order Completed" processed since then are judged by it (R13)',
    ])

    // A future effective_from touches nothing yet.
    doc.campaigns[0].goal.within = '1d'
    doc.campaigns[0].goal.effective_from = '2027-01-01T00:00:00+01:00'
    const future = await apply(db, doc)
    expect(future.goalVersions).toEqual([{ campaign: 'cart_recovery', version: 3, effectiveFrom: '2026-12-31T23:00:00.000Z', goal: expect.any(Object) }])
  })

  it('a removed goal gets a version with goal null; setting one again makes the next version (R13, R14)', async () => {
    const db = await freshDb()
    await apply(db, example())
    const doc = example()
    const { goal, ...withoutGoal } = doc.campaigns[0]
    const removed = await apply(db, { ...doc, campaigns: [withoutGoal] }, LATER)
    expect(removed.changes).toEqual([`campaign cart_recovery: goal removed -> version 2, effective ${LATER.toISOString()}`])
    expect(removed.goalVersions).toEqual([{ campaign: 'cart_recovery', version: 2, effectiveFrom: LATER.toISOString(), goal: null }])
    const stored = await db.raw('SELECT goal IS NULL AS sql_null FROM campaign_goal_versions WHERE version = 2')
    expect(stored.rows).toEqual([{ sql_null: true }])
    expect((await loadEngineConfig(db)).config.campaigns[0].goals.map((g) => g.goal && g.version)).toEqual([1, null])

    // Removing it again changes nothing; setting it again (same effective_from as v1 in the file) starts now.
    expect((await apply(db, { ...doc, campaigns: [withoutGoal] }, LATER)).changed).toBe(false)
    const again = await apply(db, { ...doc, campaigns: [{ ...withoutGoal, goal }] }, LATER)
    expect(again.changes).toEqual([
      `campaign cart_recovery: goal set -> version 3, effective 2026-01-01T00:00:00.000Z (event "Order Completed" within 7d after delivered); backdated: 0 events named "Order Completed" processed since then are judged by it (R13)`,
    ])
    expect((await goalVersions(db)).map((v) => v.version)).toEqual([1, 2, 3])
  })

  it('what the document leaves out is archived, kept with its history, and restored when named again', async () => {
    const db = await freshDb()
    await apply(db, example())
    const doc = example()
    const withChurnedRemoved = {
      segments: [{ ...doc.segments[0], conditions: doc.segments[0].conditions.slice(0, 2) }],
      delivery_events: [],
    }
    const archived = await apply(db, withChurnedRemoved, LATER)
    expect(archived.changes).toEqual([
      'segment vip: updated (conditions changed)',
      'segment churned: archived',
      'campaign cart_recovery: archived',
      'delivery event "Braze Email Sent": removed',
    ])
    expect(archived.goalVersions).toEqual([])
    const rows = await db('campaigns').select('key', 'archived_at')
    expect(rows).toEqual([{ key: 'cart_recovery', archived_at: LATER }])
    expect(await db('segments').where({ key: 'churned' }).first('archived_at')).toEqual({ archived_at: LATER })
    expect(await goalVersions(db)).toHaveLength(1)
    const loaded = await loadEngineConfig(db)
    expect(loaded.config.segments.map((s) => s.key)).toEqual(['vip'])
    expect(loaded.config.campaigns).toEqual([])
    expect(loaded.config.deliveryEvents).toEqual([])

    const restored = await apply(db, example(), new Date('2026-11-29T00:00:00Z'))
    expect(restored.changes).toEqual([
      'segment vip: updated (conditions changed)',
      'segment churned: restored',
      'campaign cart_recovery: restored',
      'delivery event "Braze Email Sent": added (email sent)',
    ])
    // The goal did not change while archived: no new version.
    expect(restored.goalVersions).toEqual([])
    const back = await loadEngineConfig(db)
    expect(back.revision).toBe(3)
    expect(back.config.campaigns.map((c) => [c.key, c.goals.length])).toEqual([['cart_recovery', 1]])
    expect(await db('campaigns').first('archived_at')).toEqual({ archived_at: null })
  })

  it('the empty document archives everything', async () => {
    const db = await freshDb()
    await apply(db, example())
    const result = await apply(db, {})
    expect(result.changes).toEqual([
      'segment vip: archived',
      'segment churned: archived',
      'campaign cart_recovery: archived',
      'delivery event "Braze Email Sent": removed',
    ])
    expect((await loadEngineConfig(db)).config).toEqual({ segments: [], campaigns: [], deliveryEvents: [] })
  })

  it('names what changed in an entity', async () => {
    const db = await freshDb()
    await apply(db, example())
    const doc: Doc & { campaigns: Array<Doc['campaigns'][0] & { webhook_conversions?: boolean }> } = example()
    doc.segments[1].conditions[0].within = '30d'
    Object.assign(doc.campaigns[0], { name: 'Abandoned carts', exit: 'never', webhook_conversions: true })
    doc.delivery_events[0].status = 'delivered'
    expect((await apply(db, doc)).changes).toEqual([
      'segment churned: updated (conditions changed)',
      'campaign cart_recovery: updated (name, exit, webhook_conversions changed)',
      'delivery event "Braze Email Sent": changed (email sent -> email delivered)',
    ])
  })

  it('concurrent applies run one after the other (advisory lock): distinct revisions and goal versions', async () => {
    const db = await freshDb()
    const docs = [1, 2, 3].map((days) => {
      const doc = example()
      doc.campaigns[0].goal.within = `${days}d`
      delete (doc.campaigns[0].goal as { effective_from?: string }).effective_from
      return doc
    })
    const results = await Promise.all(docs.map((doc) => apply(db, doc)))
    expect(results.map((r) => r.revision).sort()).toEqual([1, 2, 3])
    expect(results.flatMap((r) => r.goalVersions.map((v) => v.version)).sort()).toEqual([1, 2, 3])
    expect(Number((await db('config_revisions').count({ n: '*' }))[0].n)).toBe(3)
  })

  it('a database without the configuration tables gets a message saying to migrate', async () => {
    const db = await freshDb()
    await db.schema.dropTable('config_delivery_events')
    await expect(apply(db, example())).rejects.toThrow(ConfigSchemaMissingError)
    await expect(apply(db, example())).rejects.toThrow('run `goalpost migrate` first')
  })
})

describe('GET and PUT /admin/config', () => {
  let gp: TestGoalpost
  beforeAll(async () => {
    gp = await startGoalpost({ workers: false })
  })
  afterAll(async () => {
    await gp?.stop()
  })

  const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const put = (body: string | Buffer, headers: Record<string, string>) =>
    fetch(`${gp.url}/admin/config`, {
      method: 'PUT',
      headers: { ...bearer, ...headers },
      body: typeof body === 'string' ? body : new Blob([new Uint8Array(body)]),
    })

  it.each([
    ['no Authorization header', {}, 'missing_admin_token'],
    ['a wrong token', { authorization: 'Bearer not-the-token' }, 'invalid_admin_token'],
    ['a write key instead', { authorization: `Basic ${Buffer.from('test-write-key:').toString('base64')}` }, 'missing_admin_token'],
  ])('401 with %s, for GET and PUT, saving nothing', async (_name, headers, code) => {
    const before = await snapshot(gp.database.db)
    for (const method of ['GET', 'PUT']) {
      const res = await fetch(`${gp.url}/admin/config`, {
        method,
        headers: { ...headers, 'content-type': 'application/json' },
        body: method === 'PUT' ? JSON.stringify(example()) : undefined,
      })
      expect(res.status).toBe(401)
      const body = await res.json()
      expect(body).toEqual({ error: { code, message: expect.stringContaining('GOALPOST_ADMIN_TOKEN') } })
    }
    expect(await snapshot(gp.database.db)).toBe(before)
  })

  it('GET before any apply answers the empty document, revision 0', async () => {
    const res = await fetch(`${gp.url}/admin/config`, { headers: bearer })
    expect(res.status).toBe(200)
    expect(res.headers.get('goalpost-config-revision')).toBe('0')
    expect(await res.json()).toEqual({})
  })

  it('PUT with JSON saves it (200 with the changes); GET gives it back; the same PUT again changes nothing', async () => {
    const res = await put(JSON.stringify(example()), { 'content-type': 'application/json' })
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body).toMatchObject({ revision: 1, changed: true })
    expect(body.changes).toContain('campaign cart_recovery: added')
    expect(body.goal_versions).toEqual([
      { campaign: 'cart_recovery', version: 1, effective_from: '2026-01-01T00:00:00.000Z', goal_removed: false, touched: { inputs: 0, what: 'events named "Order Completed"' } },
    ])

    const got = await fetch(`${gp.url}/admin/config`, { headers: bearer })
    expect(got.headers.get('goalpost-config-revision')).toBe('1')
    expect(await got.json()).toEqual(example())

    const again = await put(JSON.stringify(example()), { 'content-type': 'application/json' })
    expect(await again.json()).toEqual({ revision: 1, changed: false, changes: [], goal_versions: [] })
  })

  it('PUT with YAML (application/yaml, text/yaml, application/x-yaml; gzip too) applies like JSON', async () => {
    const doc: Doc = example()
    doc.campaigns[0].goal.within = '5d'
    const res = await put(YAML.stringify(doc), { 'content-type': 'application/yaml' })
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.revision).toBe(2)
    expect(body.changes).toEqual([expect.stringMatching(/^campaign cart_recovery: goal changed -> version 2, effective \d{4}-\d\d-\d\dT/)])
    // R13: without a new effective_from, the version starts when saved.
    expect(Math.abs(Date.parse(body.goal_versions[0].effective_from) - Date.now())).toBeLessThan(60_000)

    doc.campaigns[0].goal.within = '6d'
    expect((await (await put(YAML.stringify(doc), { 'content-type': 'text/yaml; charset=utf-8' })).json()).revision).toBe(3)
    doc.campaigns[0].goal.within = '4d'
    const gz = zlib.gzipSync(YAML.stringify(doc))
    const zipped = await put(gz, { 'content-type': 'application/x-yaml', 'content-encoding': 'gzip' })
    expect((await zipped.json()).changes).toEqual([expect.stringContaining('goal changed -> version 4')])

    const yamlBack = await fetch(`${gp.url}/admin/config`, { headers: { ...bearer, accept: 'application/yaml' } })
    expect(yamlBack.headers.get('content-type')).toMatch(/^application\/yaml/)
    expect(YAML.parse(await yamlBack.text())).toEqual(doc)
    const versions = await goalVersions(gp.database.db)
    expect(versions.map((v) => v.goal.withinMs / 86_400_000)).toEqual([7, 5, 6, 4])
  })

  it('422 invalid_config lists every error and saves nothing', async () => {
    const before = await snapshot(gp.database.db)
    const doc: any = example()
    doc.campaigns[0].goal.within = '100d'
    doc.segments[0].conditions[0].op = 'equals'
    doc.segments[0].conditions.push({ segment: 'nope' })
    const res = await put(YAML.stringify(doc), { 'content-type': 'application/yaml' })
    expect(res.status).toBe(422)
    const body = await res.json()
    expect(body.error.code).toBe('invalid_config')
    expect(body.error.message).toBe('the configuration document has 3 errors; nothing was saved')
    expect(body.error.details.errors).toEqual([
      expect.stringMatching(/^segments\[0\]\.conditions\[0\]\.op: unknown operator "equals"; use one of eq, neq/),
      'segments[0].conditions[3].segment: unknown segment "nope"; defined segments: vip, churned',
      'campaigns[0].goal.within: must be at most 90d',
    ])
    expect(await snapshot(gp.database.db)).toBe(before)
  })

  it.each([
    ['YAML that does not parse', 'segments: [a', 'application/yaml', 'invalid_yaml'],
    ['an empty YAML body', '  \n', 'application/yaml', 'invalid_yaml'],
    ['JSON that does not parse', '{"segments": ', 'application/json', 'invalid_json'],
  ])('400 for %s, saving nothing', async (_name, text, type, code) => {
    const before = await snapshot(gp.database.db)
    const res = await put(text, { 'content-type': type })
    expect(res.status).toBe(400)
    expect((await res.json()).error.code).toBe(code)
    expect(await snapshot(gp.database.db)).toBe(before)
  })
})

describe('goalpost apply FILE (the CLI, as a child process)', () => {
  let dir: string
  let database: TestDatabase
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'goalpost-apply-'))
    database = await createTestDatabase()
    env = { ...process.env, ...testEnv(database, testQueuePrefix()) }
  })
  afterAll(async () => {
    await database?.drop()
    await rm(dir, { recursive: true, force: true })
  })

  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    promisify(execFile)('node', ['--import', 'tsx', 'src/cli/index.ts', ...args], { cwd: REPO, env: { ...env, ...extraEnv }, timeout: 60_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    )

  const file = async (name: string, content: string) => {
    const target = path.join(dir, name)
    await writeFile(target, content)
    return target
  }

  it('applies a YAML file and prints what changed; then a goal change as version 2; then nothing', { timeout: 120_000 }, async () => {
    const first = await file('goalpost.yaml', YAML.stringify(example()))
    const applied = await cli(['apply', first])
    expect(applied.stderr).toBe('')
    expect(applied.code).toBe(0)
    expect(applied.stdout).toContain(`applied ${first} as revision 1:`)
    expect(applied.stdout).toContain('  segment vip: added\n')
    expect(applied.stdout).toContain('  campaign cart_recovery: goal set -> version 1, effective 2026-01-01T00:00:00.000Z')

    const doc: Doc = example()
    doc.campaigns[0].goal.within = '2d'
    const second = await file('goalpost.json', JSON.stringify(doc))
    const changed = await cli(['apply', second])
    expect(changed.code).toBe(0)
    expect(changed.stdout).toMatch(/^ {2}campaign cart_recovery: goal changed -> version 2, effective \d{4}-\d\d-\d\dT[\d:.]+Z \(event "Order Completed" within 2d after delivered\)$/m)

    const same = await cli(['apply', second])
    expect(same.code).toBe(0)
    expect(same.stdout.trim()).toBe(`${second} changes nothing: the configuration in force (revision 2) already says the same`)
    expect((await getConfigDocument(database.db))?.source).toBe(`cli:${second}`)
  })

  it('exits 1 listing every error, one per line with its path, and saves nothing', { timeout: 60_000 }, async () => {
    const before = await snapshot(database.db)
    const bad = await file('bad.yml', 'campaigns:\n  - key: Cart\n    goal: { event: X, within: 91d }\n    exit: sometimes\n')
    const result = await cli(['apply', bad])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    const lines = result.stderr.trim().split('\n')
    expect(lines[0]).toBe(`goalpost apply: ${bad} is invalid (3 errors); nothing was saved:`)
    expect(lines.slice(1).map((l) => l.trim())).toEqual([
      'campaigns[0].key: must be 1-64 characters of a-z, 0-9, _ and -',
      'campaigns[0].goal.within: must be at most 90d',
      'campaigns[0].exit: unknown exit setting "sometimes"; use one of on_unmatch, on_goal, on_goal_or_unmatch, never',
    ])
    const unreadable = await cli(['apply', path.join(dir, 'missing.yaml')])
    expect(unreadable.code).toBe(1)
    expect(unreadable.stderr).toContain('document: cannot read the file: ENOENT')
    expect(await snapshot(database.db)).toBe(before)
  })

  it('migrates first: applies to a database that does not exist yet', { timeout: 120_000 }, async () => {
    const name = `goalpost_t_${uniqueSuffix()}`
    try {
      const target = await file('fresh.yaml', YAML.stringify(example()))
      const result = await cli(['apply', target], { DATABASE_URL: databaseUrl(name) })
      expect(result.stderr).toBe('')
      expect(result.stdout).toContain('as revision 1:')
      const client = new pg.Client({ connectionString: databaseUrl(name) })
      await client.connect()
      const { rows } = await client.query('SELECT key FROM campaigns')
      await client.end()
      expect(rows).toEqual([{ key: 'cart_recovery' }])
    } finally {
      const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
      await admin.connect()
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)
      await admin.end()
    }
  })

  it('`serve` with an invalid GOALPOST_CONFIG exits non-zero listing the errors', { timeout: 60_000 }, async () => {
    const bad = await file('startup-bad.yaml', 'segments:\n  - key: vip\n    conditions: []\n')
    const result = await cli(['serve'], { GOALPOST_CONFIG: bad, PORT: '0' })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`${bad} is invalid (1 error); nothing was saved:\n  segments[0].conditions: must not be empty`)
  })
})

describe('GOALPOST_CONFIG at startup', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'goalpost-startup-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('serve applies the file before taking requests', async () => {
    const target = path.join(dir, 'goalpost.yaml')
    await writeFile(target, YAML.stringify(example()))
    const gp = await startGoalpost({ workers: false }, { GOALPOST_CONFIG: target })
    try {
      const stored = await getConfigDocument(gp.database.db)
      expect(stored).toMatchObject({ revision: 1, source: `startup:${target}`, document: example() })
      expect((await loadEngineConfig(gp.database.db)).config.campaigns.map((c) => c.key)).toEqual(['cart_recovery'])
    } finally {
      await gp.stop()
    }
  })

  it('an invalid file stops the start with every error, nothing saved', async () => {
    const target = path.join(dir, 'bad.yaml')
    await writeFile(target, YAML.stringify({ campaigns: [{ key: 'a', goal: { event: 'X', within: '0s' } }], extra: 1 }))
    const database = await createTestDatabase()
    databases.push(database)
    const config = loadConfig(testEnv(database, testQueuePrefix(), { GOALPOST_CONFIG: target }))
    const started = run({ migrate: false, http: true, workers: false }, config)
    await expect(started).rejects.toThrow(ConfigDocumentError)
    await expect(started).rejects.toMatchObject({
      errors: [expect.stringMatching(/^extra: unknown key; use one of segments, campaigns, delivery_events\b/), 'campaigns[0].goal.within: must be at least 1s'],
    })
    expect(Number((await database.db('config_revisions').count({ n: '*' }))[0].n)).toBe(0)
  })
})
