import { describe, expect, it } from 'vitest'
import { DEV_DEFAULTS, loadConfig } from '../../src/config.ts'
import { ConfigError } from '../../src/errors.ts'

/** The problems loadConfig reports for an environment (fails when it accepts it). */
function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error(`expected loadConfig to refuse ${JSON.stringify(env)}`)
}

const PRODUCTION_SECRETS = {
  NODE_ENV: 'production',
  GOALPOST_WRITE_KEYS: 'prod-key-1',
  GOALPOST_WEBHOOK_SECRET: 'prod-webhook-secret',
  GOALPOST_ADMIN_TOKEN: 'prod-admin-token',
}

describe('loadConfig: defaults (CONTRACT Environment)', () => {
  it('CONTRACT Environment: an empty environment gives the documented defaults', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      env: 'development',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/goalpost',
      redisUrl: 'redis://127.0.0.1:6379',
      port: 8080,
      host: '127.0.0.1',
      writeKeys: ['dev-write-key'],
      webhookSecret: 'dev-webhook-secret',
      adminToken: 'dev-admin-token',
      configFile: undefined,
      queuePrefix: 'goalpost',
    })
    expect(DEV_DEFAULTS).toEqual({ writeKeys: 'dev-write-key', webhookSecret: 'dev-webhook-secret', adminToken: 'dev-admin-token' })
  })

  it('CONTRACT Environment: an empty variable counts as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '', GOALPOST_WRITE_KEYS: '', GOALPOST_CONFIG: '' })
    expect(config.port).toBe(8080)
    expect(config.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/goalpost')
    expect(config.writeKeys).toEqual(['dev-write-key'])
    expect(config.configFile).toBeUndefined()
  })

  it('CONTRACT Environment: every variable is read', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: 'postgresql://u:p@db.internal:6543/gp',
      REDIS_URL: 'rediss://cache.internal:6380/2',
      PORT: '9090',
      HOST: '0.0.0.0',
      GOALPOST_WRITE_KEYS: ' k1 , k2,,k3 ',
      GOALPOST_WEBHOOK_SECRET: 'whsec',
      GOALPOST_ADMIN_TOKEN: 'adm',
      GOALPOST_CONFIG: './goalpost.yaml',
      GOALPOST_QUEUE_PREFIX: 'gp_{eu}',
      UNRELATED: 'ignored',
    })
    expect(config).toMatchObject({
      env: 'test',
      databaseUrl: 'postgresql://u:p@db.internal:6543/gp',
      redisUrl: 'rediss://cache.internal:6380/2',
      port: 9090,
      host: '0.0.0.0',
      writeKeys: ['k1', 'k2', 'k3'],
      webhookSecret: 'whsec',
      adminToken: 'adm',
      configFile: './goalpost.yaml',
      queuePrefix: 'gp_{eu}',
    })
  })

  it('CONTRACT Environment: PORT 0 (any free port) and 65535 are valid', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0)
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535)
  })
})

describe('loadConfig: invalid values', () => {
  it.each([
    ['70000'],
    ['-1'],
    ['80.5'],
    ['http'],
    ['8e3'], // Number() would read 8000
    ['0x1f90'], // Number() would read 8080
    ['   '], // Number() would read 0: a random port
  ])('CONTRACT Environment: PORT=%j is refused', (port) => {
    const problems = problemsOf({ PORT: port })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^PORT: /)
  })

  it.each([
    ['DATABASE_URL', 'not a url'],
    ['DATABASE_URL', 'mysql://root@127.0.0.1/goalpost'],
    ['DATABASE_URL', '127.0.0.1:5432/goalpost'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['REDIS_URL', 'localhost:6379'],
    ['REDIS_URL', 'redis//127.0.0.1'],
  ])('CONTRACT Environment: %s=%j is refused, naming the expected scheme', (name, value) => {
    const problems = problemsOf({ [name]: value })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(new RegExp(`^${name}: must be a URL starting with`))
  })

  it('CONTRACT Environment: a queue prefix with ":" (the key separator) is refused', () => {
    expect(problemsOf({ GOALPOST_QUEUE_PREFIX: 'a:b' })[0]).toMatch(/^GOALPOST_QUEUE_PREFIX: /)
  })

  it('CONTRACT Environment: write keys that name no key are refused', () => {
    expect(problemsOf({ GOALPOST_WRITE_KEYS: ' , ,' })).toEqual(['GOALPOST_WRITE_KEYS: must name at least one key'])
  })

  it('CONTRACT Environment: a blank secret is refused rather than silently used', () => {
    expect(problemsOf({ GOALPOST_WEBHOOK_SECRET: '   ' })[0]).toMatch(/^GOALPOST_WEBHOOK_SECRET: must not be empty/)
    expect(problemsOf({ GOALPOST_ADMIN_TOKEN: '  ' })[0]).toMatch(/^GOALPOST_ADMIN_TOKEN: /)
  })

  it('an unknown NODE_ENV, log level or concurrency is refused', () => {
    expect(problemsOf({ NODE_ENV: 'prod' })[0]).toMatch(/^NODE_ENV: /)
    expect(problemsOf({ GOALPOST_LOG_LEVEL: 'verbose' })[0]).toMatch(/^GOALPOST_LOG_LEVEL: /)
    expect(problemsOf({ GOALPOST_INGEST_CONCURRENCY: '0' })[0]).toMatch(/^GOALPOST_INGEST_CONCURRENCY: /)
    expect(problemsOf({ GOALPOST_JOB_LOCK_MS: '10' })[0]).toMatch(/^GOALPOST_JOB_LOCK_MS: /)
    expect(problemsOf({ GOALPOST_INGEST_GROUP_MESSAGES: '0' })[0]).toMatch(/^GOALPOST_INGEST_GROUP_MESSAGES: /)
    expect(problemsOf({ GOALPOST_INGEST_GROUP_MESSAGES: 'many' })[0]).toMatch(/^GOALPOST_INGEST_GROUP_MESSAGES: /)
  })

  it('ingest defaults: two transactions at once, up to 1,000 messages each; both can be set', () => {
    const base = { NODE_ENV: 'test' }
    expect(loadConfig(base)).toMatchObject({ ingestConcurrency: 2, ingestGroupMessages: 1_000 })
    expect(loadConfig({ ...base, GOALPOST_INGEST_CONCURRENCY: '4', GOALPOST_INGEST_GROUP_MESSAGES: '250' })).toMatchObject({
      ingestConcurrency: 4,
      ingestGroupMessages: 250,
    })
  })

  it('CONTRACT Environment: every problem is reported together, in one error', () => {
    const problems = problemsOf({
      DATABASE_URL: 'nope',
      REDIS_URL: 'nope',
      PORT: 'eighty',
      GOALPOST_QUEUE_PREFIX: 'a:b',
      GOALPOST_LOG_LEVEL: 'loud',
    })
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(
      ['DATABASE_URL', 'GOALPOST_LOG_LEVEL', 'GOALPOST_QUEUE_PREFIX', 'PORT', 'REDIS_URL'].sort(),
    )
  })

  it('CONTRACT Environment: the error message lists every problem and says what to do', () => {
    try {
      loadConfig({ PORT: 'x', REDIS_URL: 'y' })
      expect.unreachable('loadConfig accepted a bad environment')
    } catch (err) {
      expect((err as Error).message).toContain('PORT: ')
      expect((err as Error).message).toContain('REDIS_URL: ')
      expect((err as Error).message).toMatch(/set these environment variables/i)
    }
  })
})

describe('loadConfig: production refuses development-default secrets (CONTRACT Environment)', () => {
  it('CONTRACT Environment: production starts with secrets of its own', () => {
    const config = loadConfig(PRODUCTION_SECRETS)
    expect(config.env).toBe('production')
    expect(config.writeKeys).toEqual(['prod-key-1'])
  })

  it('CONTRACT Environment: production with every secret left at its default names all three', () => {
    const problems = problemsOf({ NODE_ENV: 'production' })
    expect(problems).toHaveLength(3)
    expect(problems.some((p) => p.startsWith('GOALPOST_WRITE_KEYS: '))).toBe(true)
    expect(problems.some((p) => p.startsWith('GOALPOST_WEBHOOK_SECRET: '))).toBe(true)
    expect(problems.some((p) => p.startsWith('GOALPOST_ADMIN_TOKEN: '))).toBe(true)
  })

  it.each([
    ['GOALPOST_WRITE_KEYS', 'dev-write-key'],
    ['GOALPOST_WRITE_KEYS', 'prod-key-1, dev-write-key'], // the default among real keys
    ['GOALPOST_WEBHOOK_SECRET', 'dev-webhook-secret'],
    ['GOALPOST_WEBHOOK_SECRET', ' dev-webhook-secret '],
    ['GOALPOST_ADMIN_TOKEN', 'dev-admin-token'],
  ])('CONTRACT Environment: production refuses %s=%j', (name, value) => {
    expect(problemsOf({ ...PRODUCTION_SECRETS, [name]: value })).toEqual([expect.stringMatching(new RegExp(`^${name}: `))])
  })

  it.each(['GOALPOST_WRITE_KEYS', 'GOALPOST_WEBHOOK_SECRET', 'GOALPOST_ADMIN_TOKEN'])(
    'CONTRACT Environment: production refuses %s left unset',
    (name) => {
      expect(problemsOf({ ...PRODUCTION_SECRETS, [name]: undefined })).toEqual([expect.stringMatching(new RegExp(`^${name}: `))])
    },
  )

  it('CONTRACT Environment: development and test accept the default secrets', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).webhookSecret).toBe('dev-webhook-secret')
    expect(loadConfig({ NODE_ENV: 'test' }).adminToken).toBe('dev-admin-token')
  })

  it('CONTRACT Environment: a default secret in production is reported together with invalid values', () => {
    const problems = problemsOf({ NODE_ENV: 'production', PORT: 'x', GOALPOST_WRITE_KEYS: 'k', GOALPOST_ADMIN_TOKEN: 't' })
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['GOALPOST_WEBHOOK_SECRET', 'PORT'])
  })
})
