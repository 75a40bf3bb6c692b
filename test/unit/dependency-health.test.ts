import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { DependencyHealth, errorSummary, transientDependency } from '../../src/dependency-health.ts'

/** A DependencyHealth logging into an array, on a clock the test moves. */
function monitor(repeatMs = 60_000) {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()))
      done()
    },
  })
  let now = Date.UTC(2026, 11, 3, 8, 0, 0)
  const health = new DependencyHealth(pino({ level: 'info' }, sink), repeatMs, () => now)
  const flush = () => new Promise((r) => setImmediate(r))
  return { health, lines, advance: (ms: number) => (now += ms), flush }
}

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })

describe('DependencyHealth: one line when a dependency goes, reminders at most every repeatMs, one when it is back', () => {
  it('logs the first failure, then a reminder only after repeatMs, then the recovery with its duration', async () => {
    const { health, lines, advance, flush } = monitor(60_000)
    health.down('postgres', refused)
    for (let i = 0; i < 50; i++) {
      advance(1_000)
      health.down('postgres', refused)
    }
    advance(10_000) // 60 s after the first line
    health.down('postgres', refused)
    advance(2_500)
    health.up('postgres')
    health.up('postgres') // not in an outage any more: nothing
    await flush()
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [40, 'Postgres unreachable since 2026-12-03T08:00:00.000Z; retrying'],
      [40, 'Postgres still unreachable after 60 s (52 errors); retrying'],
      [30, 'Postgres reachable again after 62.5 s (52 errors meanwhile)'],
    ])
    expect(lines[2]).toMatchObject({ dependency: 'postgres', downMs: 62_500, errors: 52 })
    expect(lines[0].cause).toBe('connect ECONNREFUSED 127.0.0.1:5432') // the code is in the message already
    expect(JSON.stringify(lines)).not.toContain('stack')
  })

  it('keeps Postgres and Redis outages apart', async () => {
    const { health, lines, advance, flush } = monitor()
    health.down('redis', refused)
    health.down('postgres', refused)
    advance(1_000)
    health.up('redis')
    await flush()
    expect(lines.map((l) => l.msg)).toEqual([
      'Redis unreachable since 2026-12-03T08:00:00.000Z; retrying',
      'Postgres unreachable since 2026-12-03T08:00:00.000Z; retrying',
      'Redis reachable again after 1.0 s (1 errors meanwhile)',
    ])
    expect(health.isDown('postgres')).toBe(true)
    expect(health.isDown('redis')).toBe(false)
  })

  it('absorbs only transient connection errors; anything else is left to the caller', () => {
    const { health } = monitor()
    expect(health.absorb(new Error('duplicate key value violates unique constraint'), 'postgres')).toBe(false)
    expect(health.absorb(Object.assign(new Error('invalid input syntax'), { code: '22P02' }), 'postgres')).toBe(false)
    expect(health.absorb(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), 'redis')).toBe(true)
    expect(health.isDown('postgres')).toBe(true)
  })
})

describe('transientDependency', () => {
  it.each([
    [refused, 'redis', 'redis'],
    [refused, 'postgres', 'postgres'],
    [new Error('Connection terminated unexpectedly'), 'redis', 'postgres'],
    [new Error('Knex: Timeout acquiring a connection. The pool is probably full.'), 'redis', 'postgres'],
    [Object.assign(new Error('the database system is starting up'), { code: '57P03' }), 'redis', 'postgres'],
    [Object.assign(new Error('x'), { code: '08006' }), 'redis', 'postgres'],
    [Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' }), 'redis', 'postgres'],
    [Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }), 'redis', 'postgres'],
    [new Error('Connection is closed.'), 'postgres', 'redis'],
    [Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' }), 'postgres', 'redis'],
    [new Error('outer', { cause: refused }), 'postgres', 'postgres'],
    [new AggregateError([refused], 'all attempts failed'), 'redis', 'redis'],
    [new Error('column "x" does not exist'), 'postgres', null],
    [new TypeError("Cannot read properties of undefined (reading 'id')"), 'postgres', null],
  ] as const)('%s from %s is %s', (err, source, expected) => {
    expect(transientDependency(err, source)).toBe(expected)
  })

  it('summarises an error in one line without its stack or statement', () => {
    const long = Object.assign(new Error(`insert into events ... ${'x'.repeat(500)}\nDETAIL: more`), { code: '22P02' })
    const line = errorSummary(long)
    expect(line.startsWith('22P02: insert into events')).toBe(true)
    expect(line).not.toContain('\n')
    expect(line.length).toBeLessThan(220)
  })
})
