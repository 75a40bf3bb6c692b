import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { migrateToLatest } from '../../src/db/migrate.ts'
import { PG_SERVER_URL, databaseUrl, uniqueSuffix } from './env.ts'

/**
 * Migrates one template database per run; every test file clones it
 * (CREATE DATABASE … TEMPLATE), which is much faster than migrating each.
 */
export default async function setup(project: TestProject) {
  const template = `goalpost_tpl_${uniqueSuffix()}`
  await migrateToLatest(databaseUrl(template))
  project.provide('templateDatabase', template)
  return async () => {
    const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(template)} WITH (FORCE)`)
    await admin.end()
  }
}
