/** Where the test suite finds Postgres and Redis (the same defaults as goalpost itself). */
export const PG_SERVER_URL = process.env.TEST_DATABASE_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432'
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export const databaseUrl = (name: string) => `${PG_SERVER_URL}/${name}`

/** A short random suffix for database names and queue prefixes. */
export const uniqueSuffix = () => `${process.pid.toString(36)}_${Math.random().toString(36).slice(2, 8)}`

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string
  }
}
