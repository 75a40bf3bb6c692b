import { describe, expect, it } from 'vitest'
import YAML from 'yaml'
import {
  DEFAULT_JOURNEY_TTL_MS,
  canonicalJson,
  formatPath,
  validateConfigDocument,
  type ConfigDocument,
} from '../../src/core/config-document/index.ts'
import { OPERATORS } from '../../src/core/model.ts'

const S = 1000
const M = 60 * S
const H = 60 * M
const D = 24 * H

function valid(doc: unknown): ConfigDocument {
  const result = validateConfigDocument(doc)
  if (!result.ok) throw new Error(`expected a valid document, got:\n${result.errors.join('\n')}`)
  return result.document
}

function errorsOf(doc: unknown): string[] {
  const result = validateConfigDocument(doc)
  if (result.ok) throw new Error('expected validation errors, the document was valid')
  return result.errors
}

/** A minimal valid segment and campaign, to change one thing at a time. */
const segment = (extra: Record<string, unknown> = {}) => ({ key: 'vip', conditions: [{ attribute: 'plan', op: 'eq', value: 'pro' }], ...extra })
const campaign = (extra: Record<string, unknown> = {}) => ({ key: 'cart_recovery', ...extra })
const goal = (extra: Record<string, unknown> = {}) => ({ event: 'Order Completed', within: '7d', ...extra })
const withCondition = (condition: unknown) => ({ segments: [segment({ conditions: [condition] })] })
const withGoal = (g: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  segments: [segment()],
  campaigns: [campaign({ goal: goal(g), ...extra })],
})

const CONTRACT_EXAMPLE = `
segments:
  - key: vip
    name: VIP customers
    match: all
    conditions:
      - { attribute: plan, op: eq, value: pro }
      - { attribute: lifetime_value, op: gt, value: 1000 }
      - { event: Order Completed, count: { op: gte, value: 3 }, within: 30d,
          where: { match: all, conditions: [ { property: total, op: gt, value: 0 } ] } }
      - { segment: churned, op: not_in }
  - key: churned
    match: any
    conditions:
      - { event: Session Started, count: { op: eq, value: 0 }, within: 60d }
campaigns:
  - key: cart_recovery
    name: Cart recovery
    external_ids: ["42"]
    trigger:
      event: Cart Abandoned
      where: { match: all, conditions: [ { property: total, op: gt, value: 0 } ] }
    filters:
      match: all
      conditions: [ { attribute: country, op: eq, value: US }, { segment: vip, op: in } ]
    goal:
      event: Order Completed
      where:
        match: all
        conditions:
          - { property: total, op: gt, value: 9.99 }
          - { property: cart_id, op: eq, value: { trigger: cart_id } }
          - { property: currency, op: eq, value: { attribute: currency } }
      within: 7d
      after: delivered
      value: total
      effective_from: 2026-01-01T00:00:00Z
    exit: on_unmatch
    webhook_conversions: false
    journey_ttl: 30d
delivery_events:
  - { event: Braze Email Sent, channel: email, status: sent }
`

describe('the contract example', () => {
  it('normalises every part into the engine types (durations in ms, ValueRefs, steps)', () => {
    const doc = valid(YAML.parse(CONTRACT_EXAMPLE))
    expect(doc.segments[0]).toEqual({
      key: 'vip',
      name: 'VIP customers',
      match: 'all',
      conditions: [
        { kind: 'attribute', attribute: 'plan', op: 'eq', value: 'pro' },
        { kind: 'attribute', attribute: 'lifetime_value', op: 'gt', value: 1000 },
        {
          kind: 'event',
          event: 'Order Completed',
          count: { op: 'gte', value: 3 },
          withinMs: 30 * D,
          where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: { literal: 0 } }] },
        },
        { kind: 'segment', segment: 'churned', op: 'not_in' },
      ],
    })
    expect(doc.campaigns).toEqual([
      {
        key: 'cart_recovery',
        name: 'Cart recovery',
        externalIds: ['42'],
        trigger: {
          kind: 'event',
          event: 'Cart Abandoned',
          where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: { literal: 0 } }] },
        },
        filters: {
          match: 'all',
          conditions: [
            { kind: 'attribute', attribute: 'country', op: 'eq', value: 'US' },
            { kind: 'segment', segment: 'vip', op: 'in' },
          ],
        },
        goal: {
          kind: 'event',
          event: 'Order Completed',
          where: {
            match: 'all',
            conditions: [
              { property: 'total', op: 'gt', value: { literal: 9.99 } },
              { property: 'cart_id', op: 'eq', value: { trigger: 'cart_id' } },
              { property: 'currency', op: 'eq', value: { attribute: 'currency' } },
            ],
          },
          withinMs: 7 * D,
          after: 'delivered',
          value: 'total',
        },
        effectiveFrom: '2026-01-01T00:00:00.000Z',
        exit: 'on_unmatch',
        webhookConversions: false,
        journeyTtlMs: 30 * D,
      },
    ])
    expect(doc.deliveryEvents).toEqual([{ event: 'Braze Email Sent', channel: 'email', step: 'sent' }])
  })
})

describe('empty documents configure nothing (and archive everything when applied)', () => {
  it.each([
    ['null (an empty YAML file)', null],
    ['undefined', undefined],
    ['{}', {}],
    ['empty lists', { segments: [], campaigns: [], delivery_events: [] }],
    ['null lists (YAML keys with nothing under them)', YAML.parse('segments:\ncampaigns:\n')],
  ])('%s', (_name, doc) => {
    expect(valid(doc)).toEqual({ segments: [], campaigns: [], deliveryEvents: [] })
  })
})

describe('defaults', () => {
  it('segment: name = key, match all; event condition: count {gte 1}, all history; segment reference: op in', () => {
    const doc = valid({
      segments: [
        { key: 'a', conditions: [{ event: 'Login' }, { segment: 'b' }] },
        { key: 'b', conditions: [{ attribute: 'x', op: 'exists' }] },
      ],
    })
    expect(doc.segments[0]).toEqual({
      key: 'a',
      name: 'a',
      match: 'all',
      conditions: [
        { kind: 'event', event: 'Login', count: { op: 'gte', value: 1 } },
        { kind: 'segment', segment: 'b', op: 'in' },
      ],
    })
    expect(doc.segments[1].conditions).toEqual([{ kind: 'attribute', attribute: 'x', op: 'exists' }])
  })

  it('campaign: name = key, no external ids, exit on_unmatch, webhook_conversions false, journey_ttl 90d, no goal', () => {
    expect(valid({ campaigns: [{ key: 'c' }] }).campaigns).toEqual([
      { key: 'c', name: 'c', externalIds: [], exit: 'on_unmatch', webhookConversions: false, journeyTtlMs: DEFAULT_JOURNEY_TTL_MS },
    ])
    expect(DEFAULT_JOURNEY_TTL_MS).toBe(90 * D)
  })

  it('goal: after delivered, no effective_from; segment goals: on join', () => {
    const doc = valid({
      segments: [segment()],
      campaigns: [campaign({ goal: { event: 'Order Completed', within: '1h' } }), { key: 'b', goal: { segment: 'vip', within: '2d' } }],
    })
    expect(doc.campaigns[0].goal).toEqual({ kind: 'event', event: 'Order Completed', withinMs: H, after: 'delivered' })
    expect(doc.campaigns[0].effectiveFrom).toBeUndefined()
    expect(doc.campaigns[1].goal).toEqual({ kind: 'segment', segment: 'vip', on: 'join', withinMs: 2 * D, after: 'delivered' })
  })

  it('filters and where: match all', () => {
    const doc = valid({
      campaigns: [campaign({ trigger: { event: 'E', where: { conditions: [{ property: 'p', op: 'exists' }] } }, filters: { conditions: [{ attribute: 'a', op: 'exists' }] } })],
    })
    expect(doc.campaigns[0].trigger).toEqual({ kind: 'event', event: 'E', where: { match: 'all', conditions: [{ property: 'p', op: 'exists' }] } })
    expect(doc.campaigns[0].filters).toEqual({ match: 'all', conditions: [{ kind: 'attribute', attribute: 'a', op: 'exists' }] })
  })
})

describe('values: literals and references (R9)', () => {
  const goalWhere = (conditions: unknown[]) => ({
    campaigns: [campaign({ trigger: { event: 'Cart Abandoned' }, goal: goal({ where: { match: 'any', conditions } }) })],
  })
  it.each([
    ['a string literal', { property: 'p', op: 'eq', value: 'x' }, { literal: 'x' }],
    ['a number literal', { property: 'p', op: 'neq', value: 3 }, { literal: 3 }],
    ['a boolean literal', { property: 'p', op: 'eq', value: true }, { literal: true }],
    ['a numeric string for a numeric operator', { property: 'p', op: 'gte', value: '10.5' }, { literal: '10.5' }],
    ['a list for in', { property: 'p', op: 'in', value: ['a', 1, false] }, { literal: ['a', 1, false] }],
    ['a list for not_in', { property: 'p', op: 'not_in', value: ['a'] }, { literal: ['a'] }],
    ['{attribute: name}', { property: 'p', op: 'eq', value: { attribute: 'currency' } }, { attribute: 'currency' }],
    ['{trigger: name}', { property: 'p', op: 'eq', value: { trigger: 'cart_id' } }, { trigger: 'cart_id' }],
    ['a reference with a numeric operator', { property: 'p', op: 'lt', value: { trigger: 'total' } }, { trigger: 'total' }],
  ])('%s', (_name, condition, value) => {
    expect(valid(goalWhere([condition])).campaigns[0].goal).toMatchObject({ where: { match: 'any', conditions: [{ property: 'p', value }] } })
  })

  it('exists and not_exists carry no value', () => {
    const doc = valid(goalWhere([{ property: 'a', op: 'exists' }, { property: 'b', op: 'not_exists' }]))
    expect(doc.campaigns[0].goal).toMatchObject({ where: { conditions: [{ property: 'a', op: 'exists' }, { property: 'b', op: 'not_exists' }] } })
    expect((doc.campaigns[0].goal as { where: { conditions: object[] } }).where.conditions[0]).not.toHaveProperty('value')
  })

  it('every operator of the contract is accepted', () => {
    const conditions = OPERATORS.map((op) =>
      op === 'exists' || op === 'not_exists' ? { property: 'p', op } : op === 'in' || op === 'not_in' ? { property: 'p', op, value: [1] } : { property: 'p', op, value: 1 },
    )
    expect((valid(goalWhere(conditions)).campaigns[0].goal as { where: { conditions: unknown[] } }).where.conditions).toHaveLength(OPERATORS.length)
  })
})

describe('other normalisations', () => {
  it('external_ids: numbers become strings, repeats are dropped', () => {
    expect(valid({ campaigns: [campaign({ external_ids: [42, '42', 'abc'] })] }).campaigns[0].externalIds).toEqual(['42', 'abc'])
  })

  it('effective_from: any ISO date-time with a zone, stored as UTC', () => {
    expect(valid(withGoal({ effective_from: '2026-03-01T12:00:00+02:00' })).campaigns[0].effectiveFrom).toBe('2026-03-01T10:00:00.000Z')
    expect(valid(withGoal({ effective_from: '2026-03-01T12:00:00.123Z' })).campaigns[0].effectiveFrom).toBe('2026-03-01T12:00:00.123Z')
  })

  it.each([
    ['1s', S],
    ['59m', 59 * M],
    ['24h', D],
    ['90d', 90 * D],
  ])('goal within %s is %i ms (R10 bounds included)', (within, ms) => {
    expect(valid(withGoal({ within })).campaigns[0].goal?.withinMs).toBe(ms)
  })

  it.each([
    ['drafted', 'drafted'],
    ['attempted', 'attempted'],
    ['sent', 'sent'],
    ['delivered', 'delivered'],
    ['opened', 'opened'],
    ['clicked', 'clicked'],
    ['revoked', 'revoked'],
    ['bounced', 'revoked'],
    ['failed', 'revoked'],
    ['suppressed', 'revoked'],
    ['dropped', 'revoked'],
    ['recorded', 'recorded'],
  ])('delivery_events status %s records step %s (R4, R5)', (status, step) => {
    expect(valid({ delivery_events: [{ event: 'X', channel: 'sms', status }] }).deliveryEvents).toEqual([{ event: 'X', channel: 'sms', step }])
  })

  it('segment and campaign keys are separate namespaces', () => {
    expect(valid({ segments: [segment({ key: 'same' })], campaigns: [campaign({ key: 'same' })] }).campaigns[0].key).toBe('same')
  })
})

const OPS = OPERATORS.join(', ')

/** [rule, document, every error expected, in order] */
const INVALID: Array<[string, unknown, string[]]> = [
  // document
  ['a list is not a document', [], ['document: must be a mapping with segments, campaigns and delivery_events (all optional), got a list']],
  ['a string is not a document', 'segments', ['document: must be a mapping with segments, campaigns and delivery_events (all optional), got "segments"']],
  ['unknown top-level key', { segment: [] }, ['segment: unknown key; did you mean "segments"?']],
  ['segments must be a list', { segments: { vip: {} } }, ['segments: must be a list, got a mapping']],
  // keys
  ['key with capitals', { segments: [segment({ key: 'VIP' })] }, ['segments[0].key: must be 1-64 characters of a-z, 0-9, _ and -']],
  ['key of 65 characters', { campaigns: [campaign({ key: 'a'.repeat(65) })] }, ['campaigns[0].key: must be 1-64 characters of a-z, 0-9, _ and -']],
  ['empty key', { campaigns: [campaign({ key: '' })] }, ['campaigns[0].key: must be 1-64 characters of a-z, 0-9, _ and -']],
  ['missing key', { campaigns: [{ name: 'x' }] }, ['campaigns[0].key: is required']],
  ['key not a string', { campaigns: [{ key: 5 }] }, ['campaigns[0].key: must be a string, got 5']],
  ['duplicate segment key', { segments: [segment(), segment()] }, ['segments[1].key: duplicate key "vip" (also segments[0])']],
  ['duplicate campaign key', { campaigns: [campaign(), campaign(), campaign()] }, [
    'campaigns[1].key: duplicate key "cart_recovery" (also campaigns[0])',
    'campaigns[2].key: duplicate key "cart_recovery" (also campaigns[0])',
  ]],
  ['empty name', { segments: [segment({ name: '  ' })] }, ['segments[0].name: must not be empty']],
  // durations
  ['goal within over 90d (R10)', withGoal({ within: '91d' }), ['campaigns[0].goal.within: must be at most 90d']],
  ['goal within 2160h is 90d, 2161h is over', withGoal({ within: '2161h' }), ['campaigns[0].goal.within: must be at most 90d']],
  ['goal within under 1s', withGoal({ within: '0s' }), ['campaigns[0].goal.within: must be at least 1s']],
  ['goal within missing', { campaigns: [campaign({ goal: { event: 'E' } })] }, ['campaigns[0].goal.within: is required']],
  ['goal within without unit', withGoal({ within: 7 }), ['campaigns[0].goal.within: must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got 7']],
  ['goal within in words', withGoal({ within: '7 days' }), ['campaigns[0].goal.within: must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got "7 days"']],
  ['goal within with a fraction', withGoal({ within: '1.5d' }), ['campaigns[0].goal.within: must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got "1.5d"']],
  ['journey_ttl over 3650d', { campaigns: [campaign({ journey_ttl: '3651d' })] }, ['campaigns[0].journey_ttl: must be at most 3650d']],
  ['journey_ttl 0', { campaigns: [campaign({ journey_ttl: '0d' })] }, ['campaigns[0].journey_ttl: must be at least 1s']],
  ['segment event within over 3650d', withCondition({ event: 'E', within: '3651d' }), ['segments[0].conditions[0].within: must be at most 3650d']],
  // operators and values
  ['unknown operator', withCondition({ attribute: 'plan', op: 'equals', value: 'pro' }), [`segments[0].conditions[0].op: unknown operator "equals"; use one of ${OPS}`]],
  ['operator close to a known one', withCondition({ attribute: 'plan', op: 'gtee', value: 1 }), ['segments[0].conditions[0].op: unknown operator "gtee"; did you mean "gte"?']],
  ['missing operator', withCondition({ attribute: 'plan', value: 1 }), ['segments[0].conditions[0].op: is required']],
  ['exists takes no value', withCondition({ attribute: 'plan', op: 'exists', value: true }), ['segments[0].conditions[0].value: op exists takes no value; remove it']],
  ['not_exists takes no value', withCondition({ attribute: 'plan', op: 'not_exists', value: null }), ['segments[0].conditions[0].value: op not_exists takes no value; remove it']],
  ['eq needs a value', withCondition({ attribute: 'plan', op: 'eq' }), ['segments[0].conditions[0].value: is required for op eq']],
  ['in takes a list', withCondition({ attribute: 'plan', op: 'in', value: 'pro' }), ['segments[0].conditions[0].value: must be a list for op in, got "pro"']],
  ['not_in takes a non-empty list', withCondition({ attribute: 'plan', op: 'not_in', value: [] }), ['segments[0].conditions[0].value: must not be empty for op not_in']],
  ['in lists scalars', withCondition({ attribute: 'plan', op: 'in', value: ['a', { b: 1 }, null] }), [
    'segments[0].conditions[0].value[1]: must be a string, number or boolean, got a mapping',
    'segments[0].conditions[0].value[2]: must be a string, number or boolean, got null',
  ]],
  ['gt needs a number', withCondition({ attribute: 'ltv', op: 'gt', value: 'lots' }), ['segments[0].conditions[0].value: must be a number (or a numeric string) for op gt, got "lots"']],
  ['lte needs a number, not a boolean', withCondition({ attribute: 'ltv', op: 'lte', value: true }), ['segments[0].conditions[0].value: must be a number (or a numeric string) for op lte, got true']],
  ['eq takes one value', withCondition({ attribute: 'plan', op: 'eq', value: ['a', 'b'] }), ['segments[0].conditions[0].value: must be a single value for op eq; use op in for a list']],
  ['eq takes no mapping', withCondition({ attribute: 'plan', op: 'eq', value: { x: 1 } }), ['segments[0].conditions[0].value: must be a string, number or boolean, got a mapping']],
  ['eq takes no null', withCondition({ attribute: 'plan', op: 'eq', value: null }), ['segments[0].conditions[0].value: must be a string, number or boolean, got null']],
  ['attribute conditions take literals only (R24)', withCondition({ attribute: 'plan', op: 'eq', value: { attribute: 'other' } }), ['segments[0].conditions[0].value: must be a literal value: segment and audience conditions compare with literals (R24)']],
  ['a reference names something', withGoal({ where: { conditions: [{ property: 'p', op: 'eq', value: { attribute: '' } }] } }), ['campaigns[0].goal.where.conditions[0].value.attribute: {attribute: …} must name a property (a non-empty string)']],
  ['a reference has one key', withGoal({ where: { conditions: [{ property: 'p', op: 'eq', value: { attribute: 'a', trigger: 'b' } }] } }), ['campaigns[0].goal.where.conditions[0].value: a reference is {attribute: name} or {trigger: name}, with nothing else']],
  // {trigger: …}
  ['{trigger} in a segment event where', withCondition({ event: 'E', where: { conditions: [{ property: 'p', op: 'eq', value: { trigger: 'p' } }] } }), ["segments[0].conditions[0].where.conditions[0].value: {trigger: …} is only valid in a campaign goal's where"]],
  ['{trigger} in a trigger where', { campaigns: [campaign({ trigger: { event: 'E', where: { conditions: [{ property: 'p', op: 'eq', value: { trigger: 'p' } }] } } })] }, ["campaigns[0].trigger.where.conditions[0].value: {trigger: …} is only valid in a campaign goal's where"]],
  ['{trigger} in a goal of a campaign without trigger', withGoal({ where: { conditions: [{ property: 'p', op: 'eq', value: { trigger: 'p' } }] } }), ['campaigns[0].goal.where.conditions[0].value: {trigger: …} needs the campaign to have an event trigger; this campaign has no trigger']],
  ['{trigger} in a goal of a segment-triggered campaign', withGoal({ where: { conditions: [{ property: 'p', op: 'eq', value: { trigger: 'p' } }] } }, { trigger: { segment: 'vip' } }), ["campaigns[0].goal.where.conditions[0].value: {trigger: …} needs the campaign to have an event trigger; this campaign's trigger is a segment"]],
  // condition kinds
  ['a condition of no kind', withCondition({ op: 'eq', value: 1 }), ['segments[0].conditions[0]: must have one of attribute, event, segment']],
  ['a condition of two kinds', withCondition({ attribute: 'a', event: 'E', op: 'exists' }), ['segments[0].conditions[0]: must have only one of attribute, event, segment (found attribute and event)']],
  ['a condition that is not a mapping', withCondition('plan = pro'), ['segments[0].conditions[0]: must be a mapping with one of attribute, event, segment, got "plan = pro"']],
  ['no conditions', { segments: [segment({ conditions: [] })] }, ['segments[0].conditions: must not be empty']],
  ['match all or any', { segments: [segment({ match: 'some' })] }, ['segments[0].match: unknown value "some"; use one of all, any']],
  ['count value negative', withCondition({ event: 'E', count: { op: 'gte', value: -1 } }), ['segments[0].conditions[0].count.value: must be a non-negative integer']],
  ['count value fractional', withCondition({ event: 'E', count: { op: 'gte', value: 1.5 } }), ['segments[0].conditions[0].count.value: must be a non-negative integer']],
  ['count operator', withCondition({ event: 'E', count: { op: 'in', value: 1 } }), ['segments[0].conditions[0].count.op: unknown count operator "in"; use one of eq, neq, gt, gte, lt, lte']],
  ['segment reference op', withCondition({ segment: 'vip', op: 'eq' }), [
    'segments[0].conditions[0].op: unknown segment operator "eq"; use one of in, not_in',
    'segments[0].conditions[0].segment: cycle vip -> vip',
  ]],
  ['segment reference with a value', { segments: [segment(), { key: 'b', conditions: [{ segment: 'vip', op: 'in', value: 1 }] }] }, ['segments[1].conditions[0].value: unknown key; use one of segment, op']],
  // unknown references
  ['unknown segment in a segment condition', withCondition({ segment: 'vpi', op: 'in' }), ['segments[0].conditions[0].segment: unknown segment "vpi"; defined segments: vip']],
  ['unknown segment in campaign filters', { campaigns: [campaign({ filters: { conditions: [{ segment: 'vip' }] } })] }, ['campaigns[0].filters.conditions[0].segment: unknown segment "vip"; defined segments: none']],
  ['unknown segment as trigger', { segments: [segment()], campaigns: [campaign({ trigger: { segment: 'churned' } })] }, ['campaigns[0].trigger.segment: unknown segment "churned"; defined segments: vip']],
  ['unknown segment as goal', { segments: [segment()], campaigns: [campaign({ goal: { segment: 'churned', within: '1d' } })] }, ['campaigns[0].goal.segment: unknown segment "churned"; defined segments: vip']],
  // cycles (R24)
  ['a two-segment cycle, named where it starts', {
    segments: [
      { key: 'churned', conditions: [{ segment: 'vip', op: 'not_in' }] },
      { key: 'vip', conditions: [{ attribute: 'plan', op: 'exists' }, { segment: 'churned', op: 'in' }] },
    ],
  }, ['segments[0].conditions[0].segment: cycle churned -> vip -> churned']],
  ['a segment that references itself', { segments: [segment({ conditions: [{ segment: 'vip' }] })] }, ['segments[0].conditions[0].segment: cycle vip -> vip']],
  ['a three-segment cycle behind a non-cyclic reference', {
    segments: [
      { key: 'a', conditions: [{ segment: 'b' }] },
      { key: 'b', conditions: [{ segment: 'c' }] },
      { key: 'c', conditions: [{ segment: 'd' }] },
      { key: 'd', conditions: [{ segment: 'b' }] },
    ],
  }, ['segments[1].conditions[0].segment: cycle b -> c -> d -> b']],
  // goals (R8) and triggers
  ['a goal of both kinds', withGoal({ segment: 'vip' }), ['campaigns[0].goal: must have only one of event, segment (found event and segment)']],
  ['a goal of no kind', { campaigns: [campaign({ goal: { within: '1d' } })] }, ['campaigns[0].goal: must have one of event, segment']],
  ['on is for segment goals', withGoal({ on: 'join' }), ['campaigns[0].goal.on: only segment goals take "on"']],
  ['where and value are for event goals', { segments: [segment()], campaigns: [campaign({ goal: { segment: 'vip', within: '1d', value: 'total', where: { conditions: [] } } })] }, [
    'campaigns[0].goal.where: only event goals take "where"',
    'campaigns[0].goal.value: only event goals take "value"',
  ]],
  ['on join or leave', { segments: [segment()], campaigns: [campaign({ goal: { segment: 'vip', within: '1d', on: 'enter' } })] }, ['campaigns[0].goal.on: unknown value "enter"; use one of join, leave']],
  ['after delivered, opened or clicked', withGoal({ after: 'sent' }), ['campaigns[0].goal.after: unknown value "sent"; use one of delivered, opened, clicked']],
  ['a typo in a goal key', withGoal({ withn: '1d' }), ['campaigns[0].goal.withn: unknown key; did you mean "within"?']],
  ['effective_from in words', withGoal({ effective_from: 'yesterday' }), ['campaigns[0].goal.effective_from: must be an ISO 8601 date-time with a time zone, like 2026-01-01T00:00:00Z, got "yesterday"']],
  ['effective_from without a time', withGoal({ effective_from: '2026-01-01' }), ['campaigns[0].goal.effective_from: must be an ISO 8601 date-time with a time zone, like 2026-01-01T00:00:00Z, got "2026-01-01"']],
  ['effective_from without a zone', withGoal({ effective_from: '2026-01-01T00:00:00' }), ['campaigns[0].goal.effective_from: must be an ISO 8601 date-time with a time zone, like 2026-01-01T00:00:00Z, got "2026-01-01T00:00:00"']],
  ['a trigger of no kind', { campaigns: [campaign({ trigger: { where: { conditions: [{ property: 'p', op: 'exists' }] } } })] }, ['campaigns[0].trigger: must have one of event, segment']],
  ['a trigger of both kinds', { segments: [segment()], campaigns: [campaign({ trigger: { event: 'E', segment: 'vip' } })] }, ['campaigns[0].trigger: must have only one of event, segment (found event and segment)']],
  // campaign settings
  ['exit setting', { campaigns: [campaign({ exit: 'on_conversion' })] }, ['campaigns[0].exit: unknown exit setting "on_conversion"; use one of on_unmatch, on_goal, on_goal_or_unmatch, never']],
  ['webhook_conversions is a boolean', { campaigns: [campaign({ webhook_conversions: 'yes' })] }, ['campaigns[0].webhook_conversions: must be true or false, got "yes"']],
  ['external_ids are strings or numbers', { campaigns: [campaign({ external_ids: ['', { id: 1 }] })] }, [
    'campaigns[0].external_ids[0]: must be a non-empty string (or a number), got ""',
    'campaigns[0].external_ids[1]: must be a non-empty string (or a number), got a mapping',
  ]],
  ['an external id names one campaign (R4)', { campaigns: [campaign({ external_ids: ['42'] }), { key: 'other', external_ids: [42, 'cart_recovery'] }] }, [
    'campaigns[1].external_ids[0]: "42" already names campaign cart_recovery; a campaign_id must identify one campaign',
    'campaigns[1].external_ids[1]: "cart_recovery" already names campaign cart_recovery; a campaign_id must identify one campaign',
  ]],
  ['unknown campaign key', { campaigns: [campaign({ goals: [] })] }, ['campaigns[0].goals: unknown key; did you mean "goal"?']],
  // R24 and the operators' run-time semantics
  ['R24: a segment event condition compares with literals only', { segments: [segment({ conditions: [{ event: 'E', where: { conditions: [{ property: 'p', op: 'eq', value: { attribute: 'plan' } }] } }] })] }, ['segments[0].conditions[0].where.conditions[0].value: must be a literal value: segment and audience conditions compare with literals (R24)']],
  ['R9: a numeric operator needs a number the rules read as one (no padding, no hex)', withGoal({ where: { conditions: [{ property: 'total', op: 'gt', value: '0x10' }] } }), ['campaigns[0].goal.where.conditions[0].value: must be a number (or a numeric string) for op gt, got "0x10"']],
  // delivery events
  ['delivery event channel', { delivery_events: [{ event: 'Fax Sent', channel: 'fax', status: 'sent' }] }, ['delivery_events[0].channel: unknown channel "fax"; use one of email, sms, push, in_app, webhook, slack']],
  ['delivery event status', { delivery_events: [{ event: 'X', channel: 'email', status: 'read' }] }, ['delivery_events[0].status: unknown status "read"; use one of drafted, attempted, sent, delivered, opened, clicked, revoked, bounced, failed, suppressed, dropped, recorded']],
  ['delivery event fields are required', { delivery_events: [{ channel: 'email' }] }, ['delivery_events[0].event: is required', 'delivery_events[0].status: is required']],
  ['delivery event names are unique', { delivery_events: [{ event: 'X', channel: 'email', status: 'sent' }, { event: 'X', channel: 'sms', status: 'sent' }] }, ['delivery_events[1].event: duplicate event "X" (also delivery_events[0])']],
]

describe('validation errors: every one, with its path', () => {
  it.each(INVALID)('%s', (_rule, doc, expected) => {
    expect(errorsOf(doc)).toEqual(expected)
  })

  it('lists every error of a document at once, grouped by entry', () => {
    const errors = errorsOf({
      segments: [segment({ key: 'Bad' }), segment({ conditions: [{ attribute: 'plan', op: 'equals', value: 'pro' }, { segment: 'nope' }] })],
      campaigns: [campaign({ exit: 'x', goal: goal({ within: '100d' }) }), { key: 'b', journey_ttl: 'forever', trigger: {} }],
      delivery_events: [{ event: 'X', channel: 'fax', status: 'sent' }],
      extra: true,
    })
    expect(errors).toEqual([
      // The top-level sections, however many later versions add (schedules, …).
      expect.stringMatching(/^extra: unknown key; use one of segments, campaigns, delivery_events\b/),
      'segments[0].key: must be 1-64 characters of a-z, 0-9, _ and -',
      `segments[1].conditions[0].op: unknown operator "equals"; use one of ${OPS}`,
      'segments[1].conditions[1].segment: unknown segment "nope"; defined segments: vip',
      'campaigns[0].goal.within: must be at most 90d',
      'campaigns[0].exit: unknown exit setting "x"; use one of on_unmatch, on_goal, on_goal_or_unmatch, never',
      'campaigns[1].trigger: must have one of event, segment',
      'campaigns[1].journey_ttl: must be a duration like 30m, 12h or 7d (an integer and one of s, m, h, d), got "forever"',
      'delivery_events[0].channel: unknown channel "fax"; use one of email, sms, push, in_app, webhook, slack',
    ])
  })

  it('rejects __proto__ and other unexpected keys rather than letting them through', () => {
    expect(errorsOf(YAML.parse('__proto__: { polluted: true }\nsegments: []'))).toEqual(['__proto__: unknown key'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('rejects strings and keys Postgres cannot store (NUL, unpaired surrogates) wherever they are, with their path', () => {
    expect(errorsOf({ segments: [segment({ name: 'VIP\u0000' })] })).toEqual([
      'segments[0].name: contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored',
    ])
    expect(errorsOf({ segments: [segment({ conditions: [{ attribute: 'plan', op: 'in', value: ['pro', 'x\ud800'] }] })] })).toEqual([
      'segments[0].conditions[0].value[1]: contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored',
    ])
    expect(errorsOf({ segments: [segment({ notes: { 'k\udc00': 1 } })] })).toContain(
      'segments[0].notes.k\udc00: key contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored',
    )
    // A surrogate pair (an emoji) is fine.
    expect(valid({ segments: [segment({ name: 'VIP \ud83d\ude00' })] }).segments[0].key).toBe('vip')
  })
})

describe('helpers', () => {
  it('formatPath writes list indexes in brackets and keys with dots', () => {
    expect(formatPath(['campaigns', 2, 'goal', 'within'])).toBe('campaigns[2].goal.within')
    expect(formatPath(['segments', 0, 'conditions', 1, 'value', 3])).toBe('segments[0].conditions[1].value[3]')
    expect(formatPath([])).toBe('document')
  })

  it('canonicalJson ignores key order and keeps list order (goal comparison, R13)', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }))
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }))
  })
})
