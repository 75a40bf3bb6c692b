/**
 * The conversion rules (SEMANTICS.md) end to end: configuration saved with
 * PUT /admin/config, Segment messages through the signed webhook with
 * Segment's own receivedAt (R1), the real ingest workers, and the rows in
 * journeys / conversions / deliveries / segment_memberships. Each test has
 * its own people (`run` suffix); most use campaigns without a trigger, which
 * only their own deliveries enter (R17), so tests do not see each other.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGoalpost, type TestGoalpost } from '../helpers/goalpost.ts'
import {
  DAY, HOUR, SEC, conversions as conv, deliveries as dels, identify, iso, journeys as jrn, lifecycle, mar, memberships as mem,
  putConfig, sendAndWait, track, until,
} from '../helpers/segment-webhook.ts'

let gp: TestGoalpost
const EF = '2026-01-01T00:00:00Z'
const order = (within: string, more: object = {}) => ({ event: 'Order Completed', within, value: 'total', effective_from: EF, ...more })
const US = { match: 'all', conditions: [{ attribute: 'country', op: 'eq', value: 'US' }] }
const exitCampaign = (exit: string) => ({ key: `x_${exit}`, trigger: { event: 'Browse Abandoned' }, filters: US, goal: order('1d'), exit })
const doc: { segments: object[]; campaigns: Record<string, any>[] } = {
  segments: [
    { key: 'pro', conditions: [{ attribute: 'plan', op: 'eq', value: 'pro' }] },
    { key: 'recent_buyer', conditions: [{ event: 'Order Completed', within: '1d' }] },
    { key: 'blocked', conditions: [{ attribute: 'blocked', op: 'eq', value: true }] },
    {
      key: 'vip',
      match: 'all',
      conditions: [
        { attribute: 'plan', op: 'eq', value: 'pro' },
        { event: 'Order Completed', count: { op: 'gte', value: 2 }, within: '30d' },
        { segment: 'blocked', op: 'not_in' },
      ],
    },
    { key: 'flash', conditions: [{ event: 'Flash Sale Bought', within: '8s' }] },
  ],
  campaigns: [
    { key: 'basic', goal: order('1d') },
    { key: 'bounds', goal: order('2h') },
    { key: 'opened', goal: order('2h', { after: 'opened' }) },
    { key: 'versions', goal: order('1d') },
    { key: 'late_goal' },
    { key: 'seg_goal', goal: { segment: 'pro', on: 'join', within: '7d', effective_from: EF }, exit: 'never' },
    { key: 'lapse', goal: { segment: 'recent_buyer', on: 'leave', within: '2d', effective_from: EF }, exit: 'never' },
    {
      key: 'cart',
      trigger: { event: 'Cart Abandoned', where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: 0 }] } },
      filters: US,
      goal: order('1d', { where: { match: 'all', conditions: [{ property: 'cart_id', op: 'eq', value: { trigger: 'cart_id' } }] } }),
    },
    { key: 'upsell', trigger: { segment: 'pro' }, goal: order('1d') },
    ...['on_unmatch', 'on_goal', 'on_goal_or_unmatch', 'never'].map(exitCampaign),
    { key: 'ttl', trigger: { event: 'Trial Started' }, journey_ttl: '7d', goal: order('7d') },
    { key: 'metrics', filters: { match: 'all', conditions: [{ attribute: 'country', op: 'neq', value: 'FR' }] }, goal: order('2d') },
  ],
}
const campaign = (key: string) => doc.campaigns.find((c) => c.key === key)!

beforeAll(async () => {
  gp = await startGoalpost()
  await putConfig(gp, doc)
})
afterAll(async () => {
  await gp?.stop()
})

const user = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`
const sent = (u: string, d: string, c: string, at: number, extra: object = {}) => lifecycle(u, 'Email Sent', d, c, at, extra)
const bought = (u: string, at: number, properties: object = { total: 30 }) => track(u, 'Order Completed', properties, at)

describe('time and order (R1-R3)', () => {
  it('R1: an order whose timestamp lies inside the window but which Segment received after it does not convert', async () => {
    const u = user('r1')
    const late = bought(u, mar(2, '11:00'), { total: 30 })
    late.timestamp = '2026-03-01T10:30:00.000Z'
    await sendAndWait(gp, [sent(u, `${u}-d1`, 'basic', mar(1, '10:05')), late])
    expect((await jrn(gp, u, 'basic')).map((j) => j.converted_at)).toEqual([null])
    expect(await conv(gp, u)).toEqual([])
    const row = await gp.database.db('events').where({ message_id: late.messageId }).first()
    expect([row.received_at.toISOString(), row.sent_timestamp.toISOString()]).toEqual([iso(mar(2, '11:00')), '2026-03-01T10:30:00.000Z'])
  })

  it('R3: a webhook retry persisted after the purchase, with an earlier receivedAt, revises the result to what in-order processing gives', async () => {
    const u = user('r3')
    const purchase = bought(u, mar(1, '11:00'), { cart_id: 'k1', total: 10 })
    await sendAndWait(gp, [identify(u, { country: 'US' }, mar(1, '09:00')), track(u, 'Cart Abandoned', { total: 10, cart_id: 'k1' }, mar(1, '10:00')), purchase])
    expect((await jrn(gp, u, 'cart')).map((j) => j.converted_at)).toEqual([null]) // nothing had been sent
    await sendAndWait(gp, [sent(u, `${u}-d1`, 'cart', mar(1, '10:05'))])
    const [c] = await conv(gp, u, 'cart')
    expect(c).toMatchObject({ delivery_id: `${u}-d1`, anchor_at: iso(mar(1, '10:05')), converted_at: iso(mar(1, '11:00')), event_message_id: purchase.messageId })
  })
})

describe('deliveries and anchors (R5, R7, R10, R11)', () => {
  it('R5: a bounce recorded after the purchase revokes the delivery: the conversion moves to the other delivery, then goes away', async () => {
    const u = user('r5')
    await sendAndWait(gp, [sent(u, `${u}-d1`, 'basic', mar(1, '10:01')), sent(u, `${u}-d2`, 'basic', mar(1, '10:30')), bought(u, mar(1, '11:00'))])
    expect((await conv(gp, u)).map((c) => [c.delivery_id, c.anchor_at])).toEqual([[`${u}-d2`, iso(mar(1, '10:30'))]])
    await sendAndWait(gp, [lifecycle(u, 'Email Bounced', `${u}-d2`, 'basic', mar(1, '12:00'))])
    expect((await conv(gp, u)).map((c) => [c.delivery_id, c.anchor_at, c.converted_at])).toEqual([[`${u}-d1`, iso(mar(1, '10:01')), iso(mar(1, '11:00'))]])
    expect((await dels(gp, u)).map((d) => [d.delivery_id, d.failed_at, d.converted_at])).toEqual([
      [`${u}-d1`, null, iso(mar(1, '11:00'))],
      [`${u}-d2`, iso(mar(1, '12:00')), null],
    ])
    await sendAndWait(gp, [lifecycle(u, 'Email Bounced', `${u}-d1`, 'basic', mar(1, '13:00'))])
    expect(await conv(gp, u)).toEqual([])
    expect((await jrn(gp, u, 'basic')).map((j) => j.converted_at)).toEqual([null])
  })

  it('R5: a delivery only drafted never counts', async () => {
    const u = user('r5d')
    await sendAndWait(gp, [lifecycle(u, 'Email Drafted', `${u}-d1`, 'basic', mar(1, '10:00')), bought(u, mar(1, '10:30'))])
    expect((await jrn(gp, u, 'basic')).map((j) => j.entry_cause)).toEqual(['delivery'])
    expect(await conv(gp, u)).toEqual([])
  })

  it('R10: window bounds are inclusive: anchor+0 (persisted after the send) and anchor+2h convert, anchor+2h+1ms does not', async () => {
    const [a, b, c] = ['r10a', 'r10b', 'r10c'].map(user)
    const t = mar(1, '10:00')
    await sendAndWait(gp, [a, b, c].flatMap((u, i) => [sent(u, `${u}-d1`, 'bounds', t), bought(u, [t, t + 2 * HOUR, t + 2 * HOUR + 1][i])]))
    expect((await conv(gp, a)).map((x) => x.converted_at)).toEqual([iso(t)])
    expect((await conv(gp, b)).map((x) => x.converted_at)).toEqual([iso(t + 2 * HOUR)])
    expect(await conv(gp, c)).toEqual([])
  })

  it('R7: an open arriving after the purchase does not move the anchor (after: opened); a click stands in for a missing open', async () => {
    const u = user('r7')
    await sendAndWait(gp, [
      sent(u, `${u}-d1`, 'opened', mar(1, '10:01')), lifecycle(u, 'Email Opened', `${u}-d1`, 'opened', mar(1, '10:10')),
      sent(u, `${u}-d2`, 'opened', mar(1, '10:20')), bought(u, mar(1, '10:30')), lifecycle(u, 'Email Opened', `${u}-d2`, 'opened', mar(1, '10:40')),
    ])
    expect((await conv(gp, u)).map((c) => [c.delivery_id, c.anchor_at, c.attributed_via])).toEqual([[`${u}-d1`, iso(mar(1, '10:10')), 'opened']])
    const v = user('r7c')
    await sendAndWait(gp, [
      sent(v, `${v}-d1`, 'opened', mar(1, '10:01')), lifecycle(v, 'Email Link Clicked', `${v}-d1`, 'opened', mar(1, '10:20')),
      lifecycle(v, 'Email Opened', `${v}-d1`, 'opened', mar(1, '10:25')), bought(v, mar(1, '12:20')),
    ])
    expect((await dels(gp, v))[0]).toMatchObject({ delivered_at: iso(mar(1, '10:20')), opened_at: iso(mar(1, '10:20')), clicked_at: iso(mar(1, '10:20')) })
    expect((await conv(gp, v)).map((c) => [c.anchor_at, c.converted_at])).toEqual([[iso(mar(1, '10:20')), iso(mar(1, '12:20'))]])
  })

  it('R11: the latest anchor wins, whatever the sending order (the message delivered last)', async () => {
    const u = user('r11')
    await sendAndWait(gp, [
      sent(u, `${u}-d1`, 'basic', mar(1, '10:00')), sent(u, `${u}-d2`, 'basic', mar(1, '10:05')),
      lifecycle(u, 'Email Delivered', `${u}-d2`, 'basic', mar(1, '10:06')), lifecycle(u, 'Email Delivered', `${u}-d1`, 'basic', mar(1, '10:30')),
      bought(u, mar(1, '11:00')),
    ])
    expect((await conv(gp, u)).map((c) => [c.delivery_id, c.anchor_at])).toEqual([[`${u}-d1`, iso(mar(1, '10:30'))]])
  })
})

describe('goals (R12-R16)', () => {
  it('R12, R16: a journey converts once, on the first candidate, recording its numeric value; a non-numeric value is null', async () => {
    const u = user('r12')
    const first = bought(u, mar(1, '11:00'), { total: '12.50' })
    await sendAndWait(gp, [sent(u, `${u}-d1`, 'basic', mar(1, '10:05')), first, sent(u, `${u}-d2`, 'basic', mar(1, '12:00')), bought(u, mar(1, '13:00'), { total: 99 })])
    expect((await conv(gp, u)).map((c) => [c.delivery_id, c.converted_at, c.event_message_id, c.value])).toEqual([[`${u}-d1`, iso(mar(1, '11:00')), first.messageId, 12.5]])
    const v = user('r16')
    await sendAndWait(gp, [sent(v, `${v}-d1`, 'basic', mar(1, '10:05')), bought(v, mar(1, '11:00'), { total: '1,000' })])
    expect((await conv(gp, v)).map((c) => c.value)).toEqual([null])
  })

  it('R13: a second PUT with a backdated effective_from re-judges inputs since then by version 2; earlier conversions stay', async () => {
    const [a, b] = [user('r13a'), user('r13b')]
    const sub = track(b, 'Subscription Started', {}, mar(1, '14:00'))
    await sendAndWait(gp, [
      sent(a, `${a}-d1`, 'versions', mar(1, '10:05')), bought(a, mar(1, '11:00')),
      sent(b, `${b}-d1`, 'versions', mar(1, '10:05')), bought(b, mar(1, '13:00')), sub,
    ])
    expect((await conv(gp, b)).map((c) => [c.converted_at, c.goal_version])).toEqual([[iso(mar(1, '13:00')), 1]])
    campaign('versions').goal = { event: 'Subscription Started', within: '1d', effective_from: '2026-03-01T12:00:00Z' }
    const saved = await putConfig(gp, doc)
    expect(saved.goal_versions).toEqual([
      { campaign: 'versions', version: 2, effective_from: '2026-03-01T12:00:00.000Z', goal_removed: false, touched: { inputs: 1, what: 'events named "Subscription Started"' } },
    ])
    const moved = await until(() => conv(gp, b), (rows) => rows[0]?.goal_version === 2, 'b re-judged by version 2')
    expect(moved.map((c) => [c.converted_at, c.goal_version, c.event_message_id])).toEqual([[iso(mar(1, '14:00')), 2, sub.messageId]])
    expect((await conv(gp, a)).map((c) => [c.converted_at, c.goal_version])).toEqual([[iso(mar(1, '11:00')), 1]])
  })

  it('R14: a goal added to a running campaign applies only to journeys entered after it is in force', async () => {
    const [a, b] = [user('r14a'), user('r14b')]
    await sendAndWait(gp, [
      sent(a, `${a}-d1`, 'late_goal', mar(1, '10:05')), sent(a, `${a}-d2`, 'late_goal', mar(1, '13:00')), bought(a, mar(1, '14:00')),
      sent(b, `${b}-d1`, 'late_goal', mar(1, '12:30')), bought(b, mar(1, '13:00')),
    ])
    campaign('late_goal').goal = order('1d', { effective_from: '2026-03-01T12:00:00Z' })
    await putConfig(gp, doc)
    const [j] = await until(() => jrn(gp, b, 'late_goal'), (rows) => rows[0]?.converted_at !== null, 'b converts under the new goal')
    expect([j.goal_version, j.converted_at]).toEqual([1, iso(mar(1, '13:00'))])
    expect((await jrn(gp, a, 'late_goal')).map((r) => [r.goal_version, r.converted_at])).toEqual([[null, null]])
    expect(await conv(gp, a)).toEqual([])
  })

  it('R15, R14b: a join goal already met at entry never converts; met later, it converts on the identify that caused the join', async () => {
    const [a, b] = [user('r15a'), user('r15b')]
    const rejoin = identify(a, { plan: 'pro' }, mar(1, '12:00'))
    await sendAndWait(gp, [identify(a, { plan: 'pro' }, mar(1, '09:00')), sent(a, `${a}-d1`, 'seg_goal', mar(1, '10:05')), identify(a, { plan: 'free' }, mar(1, '11:00')), rejoin])
    expect(await conv(gp, a, 'seg_goal')).toEqual([])
    expect((await mem(gp, a, 'pro')).map((m) => [m.joined_at, m.left_at, m.join_message_id])).toEqual([
      [iso(mar(1, '09:00')), iso(mar(1, '11:00')), expect.any(String)],
      [iso(mar(1, '12:00')), null, rejoin.messageId],
    ])
    const join = identify(b, { plan: 'pro' }, mar(1, '12:00'))
    await sendAndWait(gp, [identify(b, { plan: 'free' }, mar(1, '09:00')), sent(b, `${b}-d1`, 'seg_goal', mar(1, '10:05')), join])
    expect((await conv(gp, b, 'seg_goal')).map((c) => [c.goal_type, c.converted_at, c.event_message_id])).toEqual([['segment', iso(mar(1, '12:00')), join.messageId]])
  })
})

describe('journeys and exits (R17-R22)', () => {
  it('R17: an event trigger opens a journey only when its where and the audience filters match, once while active; goal {trigger: cart_id} applies', async () => {
    const [u, fr] = [user('r17'), user('r17fr')]
    const entry = track(u, 'Cart Abandoned', { total: 20, cart_id: 'k1' }, mar(1, '10:00'))
    const k1 = bought(u, mar(1, '11:00'), { cart_id: 'k1', total: 20 })
    await sendAndWait(gp, [
      identify(u, { country: 'US' }, mar(1, '09:00')), track(u, 'Cart Abandoned', { total: 0, cart_id: 'k0' }, mar(1, '09:30')), entry,
      track(u, 'Cart Abandoned', { total: 30, cart_id: 'k2' }, mar(1, '10:02')), sent(u, `${u}-d1`, 'cart', mar(1, '10:05')),
      bought(u, mar(1, '10:30'), { cart_id: 'k2', total: 30 }), k1,
      identify(fr, { country: 'FR' }, mar(1, '09:00')), track(fr, 'Cart Abandoned', { total: 20, cart_id: 'k1' }, mar(1, '10:00')),
    ])
    expect((await jrn(gp, u, 'cart')).map((j) => [j.entry_cause, j.entry_message_id, j.entered_at, j.converted_at])).toEqual([
      ['event_trigger', entry.messageId, iso(mar(1, '10:00')), iso(mar(1, '11:00'))],
    ])
    expect((await conv(gp, u, 'cart')).map((c) => c.event_message_id)).toEqual([k1.messageId])
    expect(await jrn(gp, fr, 'cart')).toEqual([])
  })

  it('R17: a delivery opens a journey (entry_cause delivery); joining the trigger segment opens one (segment_trigger)', async () => {
    const u = user('r17s')
    const join = identify(u, { plan: 'pro' }, mar(1, '10:00'))
    const [send1] = await sendAndWait(gp, [sent(u, `${u}-d1`, 'basic', mar(1, '09:00')), join])
    expect((await jrn(gp, u, 'basic')).map((j) => [j.entry_cause, j.entry_message_id, j.entered_at])).toEqual([['delivery', send1, iso(mar(1, '09:00'))]])
    expect((await jrn(gp, u, 'upsell')).map((j) => [j.entry_cause, j.entry_message_id, j.entered_at])).toEqual([['segment_trigger', join.messageId, iso(mar(1, '10:00'))]])
  })

  it('R18, R20: each exit setting records exited_at/exit_reason at the input that made it true; every journey still converts on its earlier delivery', async () => {
    const u = user('r18')
    const exits = ['on_unmatch', 'on_goal', 'on_goal_or_unmatch', 'never']
    await sendAndWait(gp, [
      identify(u, { country: 'US' }, mar(1, '09:00')), track(u, 'Browse Abandoned', {}, mar(1, '10:00')),
      ...exits.map((x) => sent(u, `${u}-${x}`, `x_${x}`, mar(1, '10:05'))),
      identify(u, { country: 'FR' }, mar(1, '10:10')), bought(u, mar(1, '10:20')),
    ])
    const rows = await Promise.all(exits.map(async (x) => (await jrn(gp, u, `x_${x}`)).map((j) => [x, j.exited_at, j.exit_reason, j.converted_at])))
    expect(rows.flat()).toEqual([
      ['on_unmatch', iso(mar(1, '10:10')), 'unmatch', iso(mar(1, '10:20'))],
      ['on_goal', iso(mar(1, '10:20')), 'goal', iso(mar(1, '10:20'))],
      ['on_goal_or_unmatch', iso(mar(1, '10:10')), 'unmatch', iso(mar(1, '10:20'))],
      ['never', null, null, iso(mar(1, '10:20'))],
    ])
  })

  it('R19: a delivery for a person outside the audience opens a journey that exits at once; the delivery is after_exit and never converts', async () => {
    const u = user('r19')
    await sendAndWait(gp, [identify(u, { country: 'FR' }, mar(1, '09:00')), sent(u, `${u}-d1`, 'cart', mar(1, '10:05')), bought(u, mar(1, '10:30'), { cart_id: 'k1' })])
    expect((await jrn(gp, u, 'cart')).map((j) => [j.entry_cause, j.entered_at, j.exited_at, j.exit_reason])).toEqual([['delivery', iso(mar(1, '10:05')), iso(mar(1, '10:05')), 'unmatch']])
    expect((await dels(gp, u)).map((d) => [d.after_exit, d.converted_at])).toEqual([[true, null]])
    expect(await conv(gp, u)).toEqual([])
  })

  it('R20: a message drafted before the exit and sent after it is after_exit; the one sent before takes the conversion', async () => {
    const u = user('r20')
    await sendAndWait(gp, [
      identify(u, { country: 'US' }, mar(1, '09:00')), track(u, 'Browse Abandoned', {}, mar(1, '10:00')),
      lifecycle(u, 'Email Drafted', `${u}-d1`, 'x_on_unmatch', mar(1, '10:01')), sent(u, `${u}-d2`, 'x_on_unmatch', mar(1, '10:02')),
      identify(u, { country: 'FR' }, mar(1, '10:10')), sent(u, `${u}-d1`, 'x_on_unmatch', mar(1, '10:20')), bought(u, mar(1, '10:30')),
    ])
    expect((await dels(gp, u)).map((d) => [d.delivery_id, d.after_exit, d.converted_at])).toEqual([
      [`${u}-d1`, true, null],
      [`${u}-d2`, false, iso(mar(1, '10:30'))],
    ])
  })

  it('R22: journey_ttl completes at entered_at + ttl, before a trigger at that instant; the completed journey still converts on its delivery', async () => {
    const u = user('r22')
    await sendAndWait(gp, [
      track(u, 'Trial Started', {}, mar(1, '10:00')), sent(u, `${u}-d1`, 'ttl', mar(1, '10:05')),
      track(u, 'Trial Started', {}, mar(8, '10:00')), bought(u, mar(8, '10:04')),
    ])
    expect((await jrn(gp, u, 'ttl')).map((j) => [j.entered_at, j.completed_at, j.converted_at])).toEqual([
      [iso(mar(1, '10:00')), iso(mar(8, '10:00')), iso(mar(8, '10:04'))],
      [iso(mar(8, '10:00')), iso(mar(15, '10:00')), null],
    ])
  })

  it('R22: Journey Completed completes the journey; a later delivery opens a new one; one purchase converts both (each on its own delivery)', async () => {
    const u = user('r22c')
    await sendAndWait(gp, [
      sent(u, `${u}-d1`, 'basic', mar(1, '10:00')), track(u, 'Journey Completed', { campaign_id: 'basic' }, mar(1, '11:00')),
      sent(u, `${u}-d2`, 'basic', mar(1, '12:00')), bought(u, mar(1, '12:30')),
    ])
    const js = await jrn(gp, u, 'basic')
    expect(js.map((j) => [j.entry_cause, j.completed_at, j.converted_at])).toEqual([
      ['delivery', iso(mar(1, '11:00')), iso(mar(1, '12:30'))],
      ['delivery', iso(mar(1, '12:00') + 90 * DAY), iso(mar(1, '12:30'))],
    ])
    expect((await conv(gp, u)).map((c) => c.delivery_id).sort()).toEqual([`${u}-d1`, `${u}-d2`])
  })
})

describe('segments and identity (R23-R25)', () => {
  it('R23: a time-caused leave is recorded at received_at + within with no cause, by the scheduled wake-up', async () => {
    const u = user('r23')
    const t = Date.now() - 2 * SEC
    const [buy] = await sendAndWait(gp, [track(u, 'Flash Sale Bought', {}, t)])
    const open = await mem(gp, u, 'flash')
    expect(open).toEqual([{ segment_key: 'flash', joined_at: iso(t), left_at: null, join_message_id: buy, leave_message_id: null }])
    const [left] = await until(() => mem(gp, u, 'flash'), (rows) => rows[0]?.left_at !== null, 'the wake-up records the leave', 25_000)
    expect(left).toEqual({ segment_key: 'flash', joined_at: iso(t), left_at: iso(t + 8 * SEC), join_message_id: buy, leave_message_id: null })
  })

  it('R23, R14b: a leave goal met by time alone converts at exactly received_at + within with a null event_message_id', async () => {
    const u = user('r23g')
    const [buy] = await sendAndWait(gp, [bought(u, mar(1, '10:00')), sent(u, `${u}-d1`, 'lapse', mar(1, '12:00'))])
    expect((await mem(gp, u, 'recent_buyer')).map((m) => [m.joined_at, m.left_at, m.join_message_id, m.leave_message_id])).toEqual([
      [iso(mar(1, '10:00')), iso(mar(2, '10:00')), buy, null],
    ])
    expect((await conv(gp, u, 'lapse')).map((c) => [c.goal_type, c.converted_at, c.event_message_id, c.anchor_at])).toEqual([
      ['segment', iso(mar(2, '10:00')), null, iso(mar(1, '12:00'))],
    ])
  })

  it('R24: attribute, rolling event-count and segment-reference conditions join and leave with their causes', async () => {
    const u = user('r24')
    const ms = [
      identify(u, { plan: 'pro' }, mar(1, '09:00')), bought(u, mar(1, '10:00')), bought(u, mar(2, '10:00')),
      identify(u, { blocked: true }, mar(3, '10:00')), identify(u, { blocked: null }, mar(4, '10:00')),
    ]
    await sendAndWait(gp, ms)
    expect((await mem(gp, u, 'vip')).map((m) => [m.joined_at, m.left_at, m.join_message_id, m.leave_message_id])).toEqual([
      [iso(mar(2, '10:00')), iso(mar(3, '10:00')), ms[2].messageId, ms[3].messageId],
      [iso(mar(4, '10:00')), iso(mar(31, '10:00')), ms[4].messageId, null], // the first order leaves the 30d window
    ])
    expect((await mem(gp, u, 'blocked')).map((m) => [m.joined_at, m.left_at])).toEqual([[iso(mar(3, '10:00')), iso(mar(4, '10:00'))]])
  })

  it('R25: an anonymous purchase inside the window converts once an identify links it; the conversion names the userId', async () => {
    const u = user('r25')
    const anon = `anon-${u}`
    const purchase = track({ anonymousId: anon }, 'Order Completed', { total: 30 }, mar(1, '10:30'))
    await sendAndWait(gp, [sent(u, `${u}-d1`, 'basic', mar(1, '10:05')), purchase])
    expect(await conv(gp, u)).toEqual([])
    await sendAndWait(gp, [identify({ userId: u, anonymousId: anon }, {}, mar(1, '11:00'))])
    expect((await conv(gp, u)).map((c) => [c.person_id, c.delivery_id, c.converted_at, c.event_message_id])).toEqual([
      [u, `${u}-d1`, iso(mar(1, '10:30')), purchase.messageId],
    ])
    expect(await gp.database.db('conversions').where({ person_id: anon })).toEqual([])
  })
})

describe('metrics (R26)', () => {
  it('R26: campaign_metrics and message_metrics count converted, pending (open window) and not converted; a delivery in an already converted journey is not pending', async () => {
    const now = Date.now()
    const [a, b, c, d, e, f, g] = ['mA', 'mB', 'mC', 'mD', 'mE', 'mF', 'mG'].map(user)
    const act = (x: string) => ({ action_id: x })
    await sendAndWait(gp, [
      sent(a, `${a}-1`, 'metrics', mar(1, '10:00'), act('a1')), bought(a, mar(1, '11:00'), { total: 30 }),
      sent(b, `${b}-1`, 'metrics', mar(2, '10:00'), act('a1')), // window closed Mar 4: not converted
      sent(c, `${c}-1`, 'metrics', now - HOUR, act('a2')), // window open: pending
      sent(d, `${d}-1`, 'metrics', mar(3, '10:00'), act('a1')), lifecycle(d, 'Email Bounced', `${d}-1`, 'metrics', mar(3, '11:00')),
      identify(e, { country: 'FR' }, mar(1, '09:00')), sent(e, `${e}-1`, 'metrics', mar(1, '10:00')), // after_exit
      lifecycle(f, 'Slack Message Sent', `${f}-1`, 'metrics', mar(1, '10:00')),
      sent(g, `${g}-1`, 'metrics', now - 3 * HOUR, act('a2')), bought(g, now - 2 * HOUR, { total: 20 }), sent(g, `${g}-2`, 'metrics', now - HOUR, act('a2')),
    ])
    const [campaignRow] = await gp.database.db('campaign_metrics').where({ campaign_key: 'metrics' })
    expect(Object.fromEntries(Object.entries(campaignRow).map(([k, v]) => [k, typeof v === 'string' && k !== 'campaign_key' ? Number(v) : v]))).toMatchObject({
      journeys: 7, converted_journeys: 2, pending_journeys: 1, journey_conversion_rate: 2 / 6,
      deliveries: 6, converted_deliveries: 2, pending_deliveries: 1, delivery_conversion_rate: 2 / 5, conversion_value: 50,
    })
    const messages = await gp.database.db('message_metrics').where({ campaign_key: 'metrics' }).orderBy('action_id')
    expect(messages.map((m) => [m.action_id, Number(m.deliveries), Number(m.converted_deliveries), Number(m.pending_deliveries), Number(m.delivery_conversion_rate), Number(m.conversion_value)])).toEqual([
      ['a1', 2, 1, 0, 0.5, 30],
      ['a2', 3, 1, 1, 0.5, 20],
    ])
  })
})
