import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/errors.ts'
import { parseSince } from '../../src/jobs/replay-rejected.ts'
import { CommandError, describeUserError, redactUrl } from '../../src/cli/user-errors.ts'

// What the command line tells an operator instead of a stack trace
// (src/cli/user-errors.ts), and how it reads `--since`.

const targets = { databaseUrl: 'postgres://app:secret@db:5432/goalpost', redisUrl: 'redis://:pw@cache:6380' }
const socketError = (code: string, port: number) => Object.assign(new Error(`connect ${code} 10.0.0.1:${port}`), { code, port })

describe('describeUserError', () => {
  it('an invalid environment, a command error: their own message', () => {
    expect(describeUserError(new ConfigError(['PORT: must be a whole number']))).toBe(
      'invalid configuration:\n  - PORT: must be a whole number\nSet these environment variables and start again.',
    )
    expect(describeUserError(new CommandError('database "x" does not exist; run "goalpost migrate" to create it'))).toMatch(/^database "x"/)
  })

  it('a refused connection names the dependency by its port, with the URL but never its password', () => {
    expect(describeUserError(socketError('ECONNREFUSED', 5432), targets)).toBe(
      'cannot use Postgres at postgres://app:***@db:5432/goalpost: connect ECONNREFUSED 10.0.0.1:5432. Check DATABASE_URL and that Postgres is running.',
    )
    expect(describeUserError(socketError('ECONNREFUSED', 6380), targets)).toBe(
      'cannot reach Redis at redis://:***@cache:6380: connect ECONNREFUSED 10.0.0.1:6380. Check REDIS_URL and that Redis is running.',
    )
    expect(describeUserError(new Error('Redis was not reachable within 30000 ms'), targets)).toMatch(/^cannot reach Redis at redis:\/\/:\*\*\*@cache:6380: /)
  })

  it('Postgres refusing us (authentication, no such database, shutting down) is a user error; a missing file too', () => {
    expect(describeUserError(Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' }), targets)).toMatch(/^cannot use Postgres at /)
    expect(describeUserError(Object.assign(new Error('the database system is shutting down'), { code: '57P03' }), targets)).toMatch(/^cannot use Postgres at /)
    expect(describeUserError(Object.assign(new Error("ENOENT: no such file or directory, open 'x.yaml'"), { code: 'ENOENT' }))).toBe("ENOENT: no such file or directory, open 'x.yaml'")
  })

  it('anything else is a bug: null, so its stack trace is printed', () => {
    expect(describeUserError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBeNull()
    expect(describeUserError(Object.assign(new Error('duplicate key'), { code: '23505' }), targets)).toBeNull()
  })

  it('redactUrl hides a password and survives a URL it cannot parse', () => {
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/goalpost')).toBe('postgres://postgres@127.0.0.1:5432/goalpost')
    expect(redactUrl('not a url')).toBe('(unparseable URL)')
  })
})

describe('--since', () => {
  const now = Date.parse('2026-12-03T12:00:00.000Z')
  it('takes a duration ago or an ISO 8601 date-time; anything else is null', () => {
    expect(parseSince('90m', now)?.toISOString()).toBe('2026-12-03T10:30:00.000Z')
    expect(parseSince('7d', now)?.toISOString()).toBe('2026-11-26T12:00:00.000Z')
    expect(parseSince('2026-12-01T00:00:00+01:00', now)?.toISOString()).toBe('2026-11-30T23:00:00.000Z')
    expect(parseSince('2026-12-01', now)?.toISOString()).toBe('2026-12-01T00:00:00.000Z')
    for (const bad of ['yesterday', '', '7 days', '2026-02-30', '-1d']) expect(parseSince(bad, now)).toBeNull()
  })
})
