/**
 * What bench/history.ts feeds goalpost: the configuration document and the
 * generated history files for `goalpost import`.
 *
 * Campaigns (all entered by delivery, no trigger, no audience filter, the same
 * goal: Order Completed where total > 0, within 7d after delivered, value
 * total, exit never):
 *
 *   hist_past              the imported history's deliveries name it (external id hp-ext)
 *   hist_warm              the warm-up people's deliveries after each process start
 *   hist_<topology>_base   a live run on a depth group before its history is imported
 *   hist_<topology>_hist   the same people's live run after the import
 *
 * Why one campaign per live run: a journey converts at most once (R12), and a
 * delivery for a person whose latest journey in the campaign is still active
 * attaches to it (R17). A second live run on the same people in the same
 * campaign would therefore convert nothing, and the history's own journeys
 * (deliveries up to a day ago, journey_ttl 90d) are still active and
 * converted. A live run in a campaign the people have never been in opens a
 * fresh journey that converts exactly once per person, on the run's last
 * purchase, so "every person converted" is the sign that the run is fully
 * evaluated. Depth groups are different people, so they share the live
 * campaigns. `exit: never` keeps each live journey active (on_goal would give
 * the same conversions here; never keeps the state's journey open, the more
 * expensive case to carry). The goals' effective_from is backdated before the
 * history, so imported purchases convert past journeys as they did then
 * (with the default, "when saved", every history journey would have entered
 * with no goal in force, R14, and never convert).
 */
import { closeSync, openSync, writeSync } from 'node:fs'

export const HISTORY_CAMPAIGN_ID = 'hp-ext'
export const WARM_CAMPAIGN = { key: 'hist_warm', externalId: 'hw-ext' }
export const liveCampaign = (topology: string, run: 'base' | 'hist') => ({ key: `hist_${topology}_${run}`, externalId: `hl-${topology}-${run}` })

export function configDocument(topologies: readonly string[]) {
  const goal = {
    event: 'Order Completed',
    where: { match: 'all', conditions: [{ property: 'total', op: 'gt', value: 0 }] },
    within: '7d',
    after: 'delivered',
    value: 'total',
    effective_from: '2020-01-01T00:00:00.000Z',
  }
  const campaign = (key: string, externalId: string) => ({ key, name: key, external_ids: [externalId], goal, exit: 'never' })
  return {
    campaigns: [
      campaign('hist_past', HISTORY_CAMPAIGN_ID),
      campaign(WARM_CAMPAIGN.key, WARM_CAMPAIGN.externalId),
      ...topologies.flatMap((t) => (['base', 'hist'] as const).map((r) => liveCampaign(t, r)).map((c) => campaign(c.key, c.externalId))),
    ],
  }
}

const LIBRARY = { name: '@segment/analytics-node', version: '3.1.0' }
const DAY = 86_400_000
const MINUTE = 60_000
/** A history event cycle: an identify, one delivery's lifecycle, a purchase (all relevant to the configuration). */
export const HISTORY_CYCLE = 6
/** When each event of a cycle comes, after the cycle starts (scaled down when cycles are closer than 2 days). */
const CYCLE_OFFSETS = [0, 10 * MINUTE, 11 * MINUTE, 3 * 60 * MINUTE, 3 * 60 * MINUTE + 5 * MINUTE, 26 * 60 * MINUTE]

/**
 * Person p's k-th history message, at time t. Cycle c = k / 6: an identify,
 * Email Sent / Delivered / Opened / Link Clicked of delivery c of hist_past
 * (a newsletter sent to everyone), an Order Completed (total > 0) a day later.
 */
function historyMessage(group: string, p: number, k: number, t: number) {
  const userId = `${group}-u${p}`
  const c = Math.floor(k / HISTORY_CYCLE)
  const delivery = { delivery_id: `${group}-hd${p}-${c}`, campaign_id: HISTORY_CAMPAIGN_ID, email_subject: `Newsletter ${c}` }
  const base = { userId, messageId: `${group}-h${p}-${k}`, receivedAt: new Date(t).toISOString(), timestamp: new Date(t - 150).toISOString(), context: { library: LIBRARY } }
  switch (k % HISTORY_CYCLE) {
    case 0:
      return { type: 'identify', ...base, traits: { email: `${userId}@example.com`, plan: c % 3 === 0 ? 'pro' : 'basic', orders: c } }
    case 1:
      return { type: 'track', event: 'Email Sent', ...base, properties: delivery }
    case 2:
      return { type: 'track', event: 'Email Delivered', ...base, properties: delivery }
    case 3:
      return { type: 'track', event: 'Email Opened', ...base, properties: delivery }
    case 4:
      return { type: 'track', event: 'Email Link Clicked', ...base, properties: { ...delivery, link_url: 'https://shop.example.com/sale' } }
    default:
      return { type: 'track', event: 'Order Completed', ...base, properties: { order_id: `${group}-ho${p}-${c}`, total: 10 + ((p + c) % 90), currency: 'USD' } }
  }
}

export interface HistoryGroup {
  /** Person ids are `<group>-u<p>`. */
  group: string
  people: number
  depth: number
}

/**
 * Appends `depth` earlier events per person of each group to a JSONL file,
 * receivedAt within [now - 2 years, now - 1 day] (the last one a day ago):
 * cycles start evenly over two years, a cycle's events come minutes to a day apart, person p a little
 * after person p - 1. order 'time' writes a group in receivedAt order, the
 * people interleaved (a warehouse export by received_at); 'person' writes
 * each person's history together, in time order. Groups follow one another.
 * Returns the number of lines.
 */
export function writeHistoryFile(file: string, groups: readonly HistoryGroup[], order: 'time' | 'person', nowMs: number): number {
  const fd = openSync(file, 'w')
  let chunk: string[] = []
  let lines = 0
  const flush = () => {
    if (chunk.length === 0) return
    writeSync(fd, chunk.join('\n') + '\n')
    lines += chunk.length
    chunk = []
  }
  try {
    for (const g of groups) {
      const cycles = Math.ceil(g.depth / HISTORY_CYCLE)
      const gap = (729 * DAY) / cycles
      const scale = Math.min(1, gap / (2 * CYCLE_OFFSETS[HISTORY_CYCLE - 1]))
      const offsets = CYCLE_OFFSETS.map((o) => o * scale)
      // Spread the people over the smallest step, so the group's messages stay in time order.
      const step = Math.min(...offsets.slice(1).map((o, e) => o - offsets[e]), gap - offsets[HISTORY_CYCLE - 1]) / g.people
      const after = (p: number, k: number) => Math.floor(k / HISTORY_CYCLE) * gap + offsets[k % HISTORY_CYCLE] + p * step
      const from = nowMs - DAY - after(g.people - 1, g.depth - 1) // the last message a day ago
      const at = (p: number, k: number) => Math.floor(from + after(p, k))
      const emit = (p: number, k: number) => {
        chunk.push(JSON.stringify(historyMessage(g.group, p, k, at(p, k))))
        if (chunk.length >= 5_000) flush()
      }
      if (order === 'time') for (let k = 0; k < g.depth; k++) for (let p = 0; p < g.people; p++) emit(p, k)
      else for (let p = 0; p < g.people; p++) for (let k = 0; k < g.depth; k++) emit(p, k)
    }
    flush()
  } finally {
    closeSync(fd)
  }
  return lines
}
