import { foldTraits, type Attributes } from './attributes.ts'
import { matchesFilter } from './filters.ts'
import type { PersonCondition, PersonFilter, SegmentDef } from './model.ts'
import { holds, valueAt } from './operators.ts'

/** One input of a person's log, as the rules see it. */
export interface TimelineEvent {
  messageId: string
  /** R2 tie-breaker: the persist order. */
  seq: number
  /** R1 processing time, ms since the epoch. */
  receivedAt: number
  type: string
  name: string | null
  properties: Record<string, unknown>
}

type EventCondition = Extract<PersonCondition, { kind: 'event' }>

/**
 * What an event condition counts: the processing times of the counted events
 * still inside its rolling window, oldest first, or just how many there were
 * when it has no window (R24).
 */
class Counter {
  times: number[] = []
  total = 0
  /** Index of the first time still inside the window (the window only moves forward). */
  private start = 0
  constructor(readonly condition: EventCondition) {}

  observe(e: TimelineEvent): void {
    if (e.type === 'track' || e.type === 'page' || e.type === 'screen')
      if (e.name === this.condition.event && matchesFilter(this.condition.where, e.properties)) {
        if (this.condition.withinMs === undefined) this.total++
        else this.times.push(e.receivedAt)
      }
  }

  /** R24: events counted at `t` are those with t - within < received_at <= t. */
  count(t: number): number {
    const within = this.condition.withinMs
    if (within === undefined) return this.total
    while (this.start < this.times.length && this.times[this.start] <= t - within) this.start++
    return this.times.length - this.start
  }

  /** R23: the next instant after `t` at which a counted event leaves the window. */
  nextExpiry(t: number): number | null {
    const within = this.condition.withinMs
    if (within === undefined) return null
    for (let i = this.start; i < this.times.length; i++) if (this.times[i] + within > t) return this.times[i] + within
    return null
  }

  /** What instants from `t` on can still count: the times not yet out of the window at `t`, or the count. */
  export(t: number): number[] | number {
    const within = this.condition.withinMs
    if (within === undefined) return this.total
    return this.times.filter((at) => at + within > t)
  }

  restore(saved: number[] | number): void {
    if (typeof saved === 'number') this.total = saved
    else this.times = [...saved]
    this.start = 0
  }
}

/** dependencyOrder, once per configuration's segment list. */
const ordered = new WeakMap<readonly SegmentDef[], SegmentDef[]>()

/** Segments in an order where every referenced segment comes before its referrers. */
function dependencyOrder(segments: readonly SegmentDef[]): SegmentDef[] {
  const known = ordered.get(segments)
  if (known) return known
  const byKey = new Map(segments.map((s) => [s.key, s]))
  const list: SegmentDef[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (s: SegmentDef) => {
    if (state.get(s.key)) return // 'visiting' would be a cycle, which validation rejects
    state.set(s.key, 'visiting')
    for (const c of s.conditions) if (c.kind === 'segment' && byKey.has(c.segment)) visit(byKey.get(c.segment)!)
    state.set(s.key, 'done')
    list.push(s)
  }
  segments.forEach(visit)
  ordered.set(segments, list)
  return list
}

/**
 * A person's state while their log is replayed in rule order: attributes
 * (identify traits), event counts and segment membership (R23, R24).
 */
export class PersonState {
  attributes: Attributes = {}
  /** Segment keys the person is in now. */
  readonly members = new Set<string>()
  private readonly counters = new Map<EventCondition, Counter>()
  private readonly segments: SegmentDef[]

  constructor(segments: readonly SegmentDef[], extraFilters: ReadonlyArray<PersonFilter | undefined> = []) {
    this.segments = dependencyOrder(segments)
    const conditions = [...segments.flatMap((s) => s.conditions), ...extraFilters.flatMap((f) => f?.conditions ?? [])]
    for (const c of conditions) if (c.kind === 'event') this.counters.set(c, new Counter(c))
  }

  /** Applies one input (identify traits fold onto attributes; events are counted). */
  observe(e: TimelineEvent): void {
    if (e.type === 'identify') this.attributes = foldTraits(this.attributes, [e.properties])
    for (const counter of this.counters.values()) counter.observe(e)
  }

  conditionHolds(c: PersonCondition, t: number): boolean {
    switch (c.kind) {
      case 'attribute':
        return holds(c.op, valueAt(this.attributes, c.attribute), c.value)
      case 'event':
        return holds(c.count.op, this.counters.get(c)!.count(t), c.count.value)
      case 'segment':
        return c.op === 'in' ? this.members.has(c.segment) : !this.members.has(c.segment)
    }
  }

  matches(filter: PersonFilter | undefined, t: number): boolean {
    if (!filter || filter.conditions.length === 0) return true
    return filter.match === 'all'
      ? filter.conditions.every((c) => this.conditionHolds(c, t))
      : filter.conditions.some((c) => this.conditionHolds(c, t))
  }

  /**
   * Re-evaluates every segment at `t` (referenced segments first) and returns
   * the keys joined and left.
   */
  refreshSegments(t: number): { joined: string[]; left: string[] } {
    const joined: string[] = []
    const left: string[] = []
    for (const s of this.segments) {
      const now = this.matches({ match: s.match, conditions: s.conditions }, t)
      if (now && !this.members.has(s.key)) {
        this.members.add(s.key)
        joined.push(s.key)
      } else if (!now && this.members.has(s.key)) {
        this.members.delete(s.key)
        left.push(s.key)
      }
    }
    return { joined, left }
  }

  /** The counters in configuration order, as stored between evaluations (engine-state.ts), pruned to what counts from `t` on. */
  exportCounters(t: number): Array<number[] | number> {
    return [...this.counters.values()].map((c) => c.export(t))
  }

  /** Restores exportCounters' output, written under the same configuration; false if it does not fit. */
  restoreCounters(saved: ReadonlyArray<number[] | number>): boolean {
    const counters = [...this.counters.values()]
    if (saved.length !== counters.length) return false
    counters.forEach((c, i) => c.restore(saved[i]))
    return true
  }

  /** The next instant after `t` at which time alone may change a count (R23). */
  nextExpiry(t: number): number | null {
    let next: number | null = null
    for (const counter of this.counters.values()) {
      const at = counter.nextExpiry(t)
      if (at !== null && (next === null || at < next)) next = at
    }
    return next
  }
}

