/**
 * The configuration document's `schedules` (docs/configuration.md): what a
 * valid one becomes, and every refusal with its reason: bad cron patterns,
 * unknown time zones, unknown campaigns, and retention ages that do not
 * outlive a goal window (R10), a journey_ttl (R22) or a segment event window (R24).
 */
import { describe, expect, it } from 'vitest'
import { validateConfigDocument } from '../../src/core/config-document/index.ts'

const campaign = { key: 'cart', trigger: { event: 'Cart Abandoned' }, goal: { event: 'Order Completed', within: '7d' }, journey_ttl: '30d' }
const errorsOf = (doc: object) => {
  const r = validateConfigDocument(doc)
  if (r.ok) throw new Error('expected the document to be refused')
  return r.errors
}

describe('schedules in the configuration document', () => {
  it('normalises cron (tz defaults to UTC) and interval schedules of recompute and retention jobs', () => {
    const r = validateConfigDocument({
      campaigns: [campaign],
      schedules: [
        { name: 'nightly', pattern: '0  3 * * *', tz: 'Europe/Paris', recompute: { campaign: 'cart', dry_run: true } },
        { name: 'hourly', pattern: '0 * * * *', recompute: null },
        { name: 'purge', every: '1d', retention: { older_than: '400d' } },
      ],
    })
    expect(r.ok && r.document.schedules).toEqual([
      { name: 'nightly', pattern: '0 3 * * *', tz: 'Europe/Paris', job: { kind: 'recompute', campaign: 'cart', dryRun: true } },
      { name: 'hourly', pattern: '0 * * * *', tz: 'UTC', job: { kind: 'recompute', dryRun: false } },
      { name: 'purge', everyMs: 86_400_000, job: { kind: 'retention', olderThanMs: 400 * 86_400_000 } },
    ])
  })

  it('a document without schedules has none (and says nothing of them)', () => {
    const r = validateConfigDocument({ campaigns: [campaign] })
    expect(r.ok && 'schedules' in r.document).toBe(false)
  })

  it('refuses bad cron patterns, unknown time zones and unknown campaigns, each at its path', () => {
    expect(
      errorsOf({
        campaigns: [campaign],
        schedules: [
          { name: 'words', pattern: 'every night', recompute: {} },
          { name: 'range', pattern: '61 * * * *', recompute: {} },
          { name: 'mars', pattern: '0 3 * * *', tz: 'Mars/Olympus_Mons', recompute: {} },
          { name: 'other', every: '1h', recompute: { campaign: 'newsletter' } },
        ],
      }),
    ).toEqual([
      'schedules[0].pattern: must be a cron pattern of 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got 2',
      'schedules[1].pattern: is not a valid cron pattern: Constraint error, got value 61 expected range 0-59',
      'schedules[2].tz: unknown time zone "Mars/Olympus_Mons"; use an IANA name like Europe/Paris, America/New_York or UTC',
      'schedules[3].recompute.campaign: unknown campaign "newsletter"; defined campaigns: cart',
    ])
  })

  it('refuses a schedule with both or neither timing, no or two jobs, a tz without pattern, a duplicate name', () => {
    expect(
      errorsOf({
        schedules: [
          { name: 'both', every: '1d', pattern: '0 3 * * *', recompute: {} },
          { name: 'idle', every: '1d' },
          { name: 'greedy', every: '1d', recompute: {}, retention: { older_than: '400d' } },
          { name: 'zoned', every: '1d', tz: 'UTC', recompute: {} },
          { name: 'idle', every: '2d', recompute: {} },
          { name: 'Bad Name', every: '1d', recompute: {} },
        ],
      }),
    ).toEqual([
      'schedules[0]: must have one of pattern (cron, with tz) or every (an interval like 15m), not both',
      'schedules[1]: must have one of recompute, retention',
      'schedules[2]: must have only one of recompute, retention (found recompute and retention)',
      'schedules[3].tz: applies to pattern only; an every interval has no time zone',
      'schedules[4].name: duplicate name "idle" (also schedules[1])',
      'schedules[5].name: must be 1-64 characters of a-z, 0-9, _ and -',
    ])
  })

  it('refuses a retention age no longer than the longest goal window, journey_ttl or segment event window, saying which', () => {
    const purge = (older_than: string) => [{ name: 'purge', every: '1d', retention: { older_than } }]
    expect(errorsOf({ campaigns: [campaign], schedules: purge('30d') })).toEqual([
      'schedules[0].retention.older_than: must be longer than the journey_ttl of campaign cart (30d): events younger than that can still open, convert, complete or count towards something (docs/operations.md, "Retention")',
    ])
    // A campaign without journey_ttl has the default, 90d.
    const { journey_ttl: _ttl, ...untimed } = campaign
    expect(errorsOf({ campaigns: [untimed], schedules: purge('60d') })[0]).toMatch(/longer than the journey_ttl of campaign cart \(90d\)/)
    const goal = { ...campaign, goal: { ...campaign.goal, within: '90d' } }
    expect(errorsOf({ campaigns: [goal], schedules: purge('90d') })[0]).toMatch(/longer than the goal window of campaign cart \(within: 90d\)/)
    const segments = [{ key: 'buyers', conditions: [{ event: 'Order Completed', count: { op: 'gte', value: 3 }, within: '365d' }] }]
    expect(errorsOf({ segments, campaigns: [campaign], schedules: purge('200d') })[0]).toMatch(/longer than the event window of segment buyers \(within: 365d\)/)
    expect(validateConfigDocument({ segments, campaigns: [campaign], schedules: purge('366d') }).ok).toBe(true)
  })
})
