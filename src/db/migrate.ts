import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Knex } from 'knex'
import { createDb, ensureDatabase } from './knex.ts'

/** The project's migrations folder, from the sources or from the build. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations')

interface MigrationFile {
  name: string
  file: string
}

/**
 * Migrations are named without their extension, so a database migrated from
 * the TypeScript sources (tests, tsx) and one migrated from the compiled build
 * agree on what has run.
 */
export const migrationSource: Knex.MigrationSource<MigrationFile> = {
  async getMigrations() {
    const files = await readdir(MIGRATIONS_DIR)
    return files
      .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
      .map((f) => ({ name: f.replace(/\.(ts|js)$/, ''), file: path.join(MIGRATIONS_DIR, f) }))
      .sort((a, b) => a.name.localeCompare(b.name))
  },
  getMigrationName(m) {
    return m.name
  },
  async getMigration(m) {
    return import(pathToFileURL(m.file).href)
  },
}

/** Creates the database if it is missing and runs every pending migration. */
export async function migrateToLatest(databaseUrl: string): Promise<{ created: boolean; ran: string[] }> {
  const created = await ensureDatabase(databaseUrl)
  const db = createDb(databaseUrl, { poolMax: 2, applicationName: 'goalpost-migrate' })
  try {
    const [, ran] = (await db.migrate.latest({ migrationSource })) as [number, string[]]
    return { created, ran }
  } finally {
    await db.destroy()
  }
}
