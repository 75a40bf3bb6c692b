import type { Knex } from 'knex'
import { canonicalJson, type CampaignDocument, type ConfigDocument, type ScheduleDef, type ScheduleJob, type ScheduleTiming } from '../core/config-document/index.ts'
import { formatDuration } from '../core/duration.ts'
import type { CampaignDef, DeliveryEventDef, EngineConfig, Goal, GoalVersion, SegmentDef } from '../core/model.ts'
import { planWebhooks } from './webhooks.ts'

/**
 * The configuration in Postgres: `applyConfig` saves a validated document
 * declaratively (what it leaves out is archived), `loadEngineConfig` reads
 * what the rules run on, with every goal version (R13).
 */

/** pg_advisory_xact_lock key ("gpcf"): concurrent applies run one after the other. */
const APPLY_LOCK = 0x67706366

export interface ApplyOptions {
  /** The apply's time: new goal versions without `effective_from` start here (R13). */
  now: Date
  /** Who applied it: `cli:<file>`, `http`, `startup:<file>`. */
  source: string
  /** The document as given (parsed YAML/JSON), kept for `GET /admin/config`. */
  raw: unknown
}

/** R13: inputs processed since a backdated `effective_from`, which the new version now judges. */
export interface Touched {
  inputs: number
  /** What was counted, in words. */
  what: string
}

export interface GoalVersionChange {
  campaign: string
  version: number
  effectiveFrom: string
  goal: Goal | null
  touched?: Touched
}

export interface ApplyResult {
  /** The revision now in force (unchanged when the document changed nothing). */
  revision: number
  changed: boolean
  changes: string[]
  goalVersions: GoalVersionChange[]
}

/** The tables are missing: tells the operator what to run. */
export class ConfigSchemaMissingError extends Error {
  constructor(cause: unknown) {
    super('the configuration tables do not exist in this database; run `goalpost migrate` first', { cause })
    this.name = 'ConfigSchemaMissingError'
  }
}

interface EntityRow {
  key: string
  name: string
  definition: Record<string, unknown>
  archived_at: Date | null
}

interface GoalVersionRow {
  campaign_key: string
  version: number
  goal: Goal | null
  effective_from: Date
}

type SegmentDefinition = Pick<SegmentDef, 'match' | 'conditions'>
type CampaignDefinition = Omit<CampaignDef, 'key' | 'name' | 'goals'>

const segmentDefinition = (s: SegmentDef): SegmentDefinition => ({ match: s.match, conditions: s.conditions })

function campaignDefinition(c: CampaignDocument): CampaignDefinition {
  const d: CampaignDefinition = {
    externalIds: c.externalIds,
    exit: c.exit,
    webhookConversions: c.webhookConversions,
    journeyTtlMs: c.journeyTtlMs,
  }
  if (c.trigger) d.trigger = c.trigger
  if (c.filters) d.filters = c.filters
  return d
}

/** A schedule as stored in `schedules.definition`: the document's, without its name. */
export type ScheduleDefinition = { job: ScheduleJob } & ScheduleTiming

const scheduleDefinition = ({ name: _name, ...definition }: ScheduleDef): ScheduleDefinition => definition

/** `every 1d: retention older_than 400d`, `0 3 * * * Europe/Paris: recompute campaign cart (dry run)`. */
export function describeSchedule(d: ScheduleDefinition): string {
  const when = 'everyMs' in d ? `every ${formatDuration(d.everyMs)}` : `${d.pattern} ${d.tz}`
  const what =
    d.job.kind === 'retention'
      ? `retention older_than ${formatDuration(d.job.olderThanMs)}`
      : `recompute ${d.job.campaign === undefined ? 'all campaigns' : `campaign ${d.job.campaign}`}${d.job.dryRun ? ' (dry run)' : ''}`
  return `${when}: ${what}`
}

/** The document's names for the definition fields, for change messages. */
const FIELD_NAMES: Record<string, string> = {
  match: 'match',
  conditions: 'conditions',
  externalIds: 'external_ids',
  trigger: 'trigger',
  filters: 'filters',
  exit: 'exit',
  webhookConversions: 'webhook_conversions',
  journeyTtlMs: 'journey_ttl',
}

function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
  return keys.filter((k) => canonicalJson(before[k] ?? null) !== canonicalJson(after[k] ?? null)).map((k) => FIELD_NAMES[k] ?? k)
}

const sameGoal = (a: Goal | null, b: Goal | null) => canonicalJson(a) === canonicalJson(b)

function describeGoal(goal: Goal): string {
  const what = goal.kind === 'event' ? `event "${goal.event}"` : `${goal.on} segment ${goal.segment}`
  return `${what} within ${formatDuration(goal.withinMs)} after ${goal.after}`
}

async function countTouched(trx: Knex.Transaction, goal: Goal, since: Date): Promise<Touched> {
  if (goal.kind === 'event') {
    const [{ n }] = await trx('events').where({ name: goal.event }).andWhere('received_at', '>=', since).count({ n: '*' })
    return { inputs: Number(n), what: `events named "${goal.event}"` }
  }
  // Segment goals are met by membership changes (R23), kept by the engine.
  const { rows } = await trx.raw<{ rows: Array<{ exists: boolean }> }>(`SELECT to_regclass('segment_memberships') IS NOT NULL AS exists`)
  const column = goal.on === 'join' ? 'joined_at' : 'left_at'
  const what = `${goal.on === 'join' ? 'joins of' : 'leaves from'} segment ${goal.segment}`
  if (!rows[0].exists) return { inputs: 0, what }
  const [{ n }] = await trx('segment_memberships')
    .where({ segment_key: goal.segment })
    .andWhere(column, '>=', since)
    .count({ n: '*' })
  return { inputs: Number(n), what }
}

const isMissingTable = (err: unknown) => (err as { code?: string }).code === '42P01'

/**
 * Saves a validated document as the whole configuration, in one transaction
 * (serialised with other applies by an advisory lock):
 * - segments and campaigns it leaves out are archived (kept), those it names
 *   are created, restored and updated;
 * - a campaign whose goal content changed gets a new goal version (R13),
 *   effective from the document's `effective_from` when that differs from the
 *   current version's, else from `now`; a removed goal gets a version with
 *   goal null;
 * - a document that changes nothing writes nothing, not even a revision.
 */
export async function applyConfig(db: Knex, doc: ConfigDocument, opts: ApplyOptions): Promise<ApplyResult> {
  try {
    return await db.transaction((trx) => applyIn(trx, doc, opts))
  } catch (err) {
    if (isMissingTable(err)) throw new ConfigSchemaMissingError(err)
    throw err
  }
}

async function applyIn(trx: Knex.Transaction, doc: ConfigDocument, { now, source, raw }: ApplyOptions): Promise<ApplyResult> {
  await trx.raw('SELECT pg_advisory_xact_lock(?)', [APPLY_LOCK])
  // One after the other: a transaction is one connection, which runs one query at a time.
  const segments = await trx<EntityRow>('segments').select('key', 'name', 'definition', 'archived_at')
  const campaigns = await trx<EntityRow>('campaigns').select('key', 'name', 'definition', 'archived_at')
  const versions = await trx.raw<{ rows: GoalVersionRow[] }>(
    `SELECT DISTINCT ON (campaign_key) campaign_key, version, goal, effective_from
       FROM campaign_goal_versions ORDER BY campaign_key, version DESC`,
  )
  const deliveryEvents = await trx<DeliveryEventDef>('config_delivery_events').select('event', 'channel', 'step')
  const [latest] = await trx('config_revisions').max({ revision: 'revision' })
  const current = Number(latest?.revision ?? 0)
  const changes: string[] = []
  const writes: Array<(revision: number) => Promise<unknown>> = []
  const goalVersions: GoalVersionChange[] = []
  const stamp = now.toISOString()

  // Segments and campaigns: the same declarative rule for both.
  const reconcile = <T extends { key: string; name: string }>(
    table: 'segments' | 'campaigns',
    noun: string,
    rows: EntityRow[],
    wanted: readonly T[],
    definitionOf: (item: T) => Record<string, unknown>,
  ) => {
    const existing = new Map(rows.map((r) => [r.key, r]))
    for (const item of wanted) {
      const definition = definitionOf(item)
      const json = JSON.stringify(definition)
      const row = existing.get(item.key)
      if (!row) {
        changes.push(`${noun} ${item.key}: added`)
        writes.push((revision) =>
          trx(table).insert({ key: item.key, name: item.name, definition: json, archived_at: null, created_at: stamp, updated_at: stamp, revision }),
        )
        continue
      }
      const fields = changedFields(row.definition, definition)
      if (row.name !== item.name) fields.unshift('name')
      if (row.archived_at === null && fields.length === 0) continue
      const verb = row.archived_at !== null ? 'restored' : 'updated'
      changes.push(`${noun} ${item.key}: ${verb}${fields.length > 0 ? ` (${fields.join(', ')} changed)` : ''}`)
      writes.push((revision) =>
        trx(table).where({ key: item.key }).update({ name: item.name, definition: json, archived_at: null, updated_at: stamp, revision }),
      )
    }
    const named = new Set(wanted.map((w) => w.key))
    for (const row of rows)
      if (row.archived_at === null && !named.has(row.key)) {
        changes.push(`${noun} ${row.key}: archived`)
        writes.push((revision) => trx(table).where({ key: row.key }).update({ archived_at: stamp, updated_at: stamp, revision }))
      }
  }
  reconcile('segments', 'segment', segments, doc.segments, segmentDefinition)
  reconcile('campaigns', 'campaign', campaigns, doc.campaigns, campaignDefinition)

  // R13: goal versions.
  const currentVersion = new Map(versions.rows.map((v) => [v.campaign_key, v]))
  for (const campaign of doc.campaigns) {
    const before = currentVersion.get(campaign.key)
    const goal = campaign.goal ?? null
    if (sameGoal(before?.goal ?? null, goal)) continue
    const explicit =
      goal !== null && campaign.effectiveFrom !== undefined && campaign.effectiveFrom !== before?.effective_from.toISOString()
    const effectiveFrom = explicit ? campaign.effectiveFrom! : stamp
    const version = (before?.version ?? 0) + 1
    const change: GoalVersionChange = { campaign: campaign.key, version, effectiveFrom, goal }
    if (goal !== null && Date.parse(effectiveFrom) < now.getTime()) change.touched = await countTouched(trx, goal, new Date(effectiveFrom))
    goalVersions.push(change)
    const verb = goal === null ? 'removed' : before === undefined || before.goal === null ? 'set' : 'changed'
    let line = `campaign ${campaign.key}: goal ${verb} -> version ${version}, effective ${effectiveFrom}`
    if (goal !== null) line += ` (${describeGoal(goal)})`
    if (change.touched)
      line += `; backdated: ${change.touched.inputs} ${change.touched.what} processed since then are judged by it (R13)`
    changes.push(line)
    writes.push((revision) =>
      trx('campaign_goal_versions').insert({
        campaign_key: campaign.key,
        version,
        // A bare JSON null would be stored as the jsonb value 'null', not SQL NULL.
        goal: goal === null ? null : JSON.stringify(goal),
        effective_from: effectiveFrom,
        created_at: stamp,
        revision,
      }),
    )
  }

  // Delivery events: the document's list replaces the previous one.
  const knownEvents = new Map(deliveryEvents.map((d) => [d.event, d]))
  const wantedEvents = new Map(doc.deliveryEvents.map((d) => [d.event, d]))
  let eventsChanged = false
  for (const [event, d] of wantedEvents) {
    const before = knownEvents.get(event)
    if (!before) changes.push(`delivery event "${event}": added (${d.channel} ${d.step})`)
    else if (before.channel !== d.channel || before.step !== d.step)
      changes.push(`delivery event "${event}": changed (${before.channel} ${before.step} -> ${d.channel} ${d.step})`)
    else continue
    eventsChanged = true
  }
  for (const event of knownEvents.keys())
    if (!wantedEvents.has(event)) {
      changes.push(`delivery event "${event}": removed`)
      eventsChanged = true
    }
  if (eventsChanged)
    writes.push(async (revision) => {
      await trx('config_delivery_events').delete()
      if (wantedEvents.size > 0)
        await trx('config_delivery_events').insert([...wantedEvents.values()].map((d) => ({ ...d, revision })))
    })

  // Webhooks (docs/outbound.md): the document's list replaces the previous one, like campaigns.
  const webhooks = await planWebhooks(trx, doc.webhooks ?? [], stamp)
  changes.push(...webhooks.changes)
  writes.push(...webhooks.writes)

  // Schedules: the document's list replaces the previous one (the workers make BullMQ's schedulers follow).
  const schedules = await trx<{ name: string; definition: ScheduleDefinition }>('schedules').select('name', 'definition')
  const knownSchedules = new Map(schedules.map((r) => [r.name, r.definition]))
  const wantedSchedules = new Map((doc.schedules ?? []).map((d) => [d.name, scheduleDefinition(d)]))
  for (const [name, definition] of wantedSchedules) {
    const before = knownSchedules.get(name)
    if (before && canonicalJson(before) === canonicalJson(definition)) continue
    changes.push(`schedule ${name}: ${before ? 'changed' : 'added'} (${describeSchedule(definition)})`)
    const json = JSON.stringify(definition)
    writes.push((revision) =>
      trx('schedules')
        .insert({ name, definition: json, created_at: stamp, updated_at: stamp, revision })
        .onConflict('name')
        .merge(['definition', 'updated_at', 'revision']),
    )
  }
  for (const name of knownSchedules.keys())
    if (!wantedSchedules.has(name)) {
      changes.push(`schedule ${name}: removed`)
      writes.push(() => trx('schedules').where({ name }).delete())
    }

  if (changes.length === 0) return { revision: current, changed: false, changes, goalVersions }
  const [{ revision }] = await trx('config_revisions')
    .insert({ document: JSON.stringify(raw ?? {}), source, applied_at: stamp, changes: JSON.stringify(changes) })
    .returning('revision')
  // In order: campaigns exist before their goal versions reference them.
  for (const write of writes) await write(revision)
  return { revision, changed: true, changes, goalVersions }
}

/** The configuration the rules run on: what is not archived, with every goal version oldest first (R13). */
export async function loadEngineConfig(db: Knex): Promise<{ revision: number; config: EngineConfig }> {
  // One snapshot, so a concurrent apply is seen whole or not at all.
  return db.transaction(
    async (trx) => {
      const [latest] = await trx('config_revisions').max({ revision: 'revision' })
      const segments = await trx<EntityRow>('segments').whereNull('archived_at').orderBy('key').select('key', 'name', 'definition')
      const campaigns = await trx<EntityRow>('campaigns').whereNull('archived_at').orderBy('key').select('key', 'name', 'definition')
      const versions = await trx<GoalVersionRow>('campaign_goal_versions')
        .whereIn('campaign_key', trx('campaigns').whereNull('archived_at').select('key'))
        .orderBy([{ column: 'campaign_key' }, { column: 'version' }])
        .select('campaign_key', 'version', 'goal', 'effective_from')
      const deliveryEvents = await trx<DeliveryEventDef>('config_delivery_events').orderBy('event').select('event', 'channel', 'step')
      const goals = new Map<string, GoalVersion[]>()
      for (const v of versions) {
        const list = goals.get(v.campaign_key) ?? []
        list.push({ version: v.version, effectiveFrom: v.effective_from.toISOString(), goal: v.goal })
        goals.set(v.campaign_key, list)
      }
      return {
        revision: Number(latest?.revision ?? 0),
        config: {
          segments: segments.map((s) => ({ key: s.key, name: s.name, ...(s.definition as SegmentDefinition) })),
          campaigns: campaigns.map((c) => ({
            key: c.key,
            name: c.name,
            ...(c.definition as CampaignDefinition),
            goals: goals.get(c.key) ?? [],
          })),
          deliveryEvents,
        },
      }
    },
    { isolationLevel: 'repeatable read' },
  )
}

export interface StoredDocument {
  revision: number
  appliedAt: string
  source: string
  document: unknown
}

/** The last applied document as it was given (for `GET /admin/config`), or null before the first apply. */
export async function getConfigDocument(db: Knex): Promise<StoredDocument | null> {
  const row = await db('config_revisions').orderBy('revision', 'desc').first('revision', 'document', 'source', 'applied_at')
  if (!row) return null
  return { revision: row.revision, appliedAt: (row.applied_at as Date).toISOString(), source: row.source, document: row.document }
}
