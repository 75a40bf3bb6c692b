/**
 * Private Redis and Postgres servers for the fault suite: each on a free
 * port, in a temp dir of its own, so a test may SIGKILL, stop and restart
 * them without touching the shared servers (127.0.0.1:6379 and :5432).
 * Every server started here is also stopped when the test process exits,
 * whatever happened to the test.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { Redis } from 'ioredis'
import { waitFor } from './wait.ts'

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

const cleanups = new Set<() => void>()
// Synchronous last resort (vitest killed, a hook timing out): no orphaned servers, no temp dirs left.
process.once('exit', () => {
  for (const cleanup of cleanups) cleanup()
})

/** Fails with the command's output when it exits non-zero. */
function runSync(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}: ${r.stderr || r.stdout || r.error}`)
  return r.stdout
}

export interface PrivateRedis {
  url: string
  port: number
  /** SIGKILL: no shutdown, nothing saved beyond what the AOF has already. */
  kill(): Promise<void>
  /** Starts it again on the same dir and port (it loads its AOF). */
  start(): Promise<void>
  stop(): Promise<void>
}

/** `redis-server` with `appendonly yes` (fsync every second, Redis' default) on a free port. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'goalpost-faults-redis-'))
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const ping = async () => {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  }
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--logfile', 'redis.log']
    child = spawn('redis-server', args, { stdio: 'ignore' })
    await waitFor(ping, { what: `private Redis on port ${port}`, timeoutMs: 20_000, intervalMs: 50 })
  }
  const kill = async () => {
    const c = child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise((resolve) => c.once('exit', resolve))
    c.kill('SIGKILL')
    await gone
  }
  const cleanup = () => {
    child?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  cleanups.add(cleanup)
  try {
    await start()
  } catch (err) {
    cleanup()
    cleanups.delete(cleanup)
    throw err
  }
  return {
    url,
    port,
    kill,
    start,
    async stop() {
      await kill()
      cleanup()
      cleanups.delete(cleanup)
    },
  }
}

/** The newest installed PostgreSQL's binaries. */
function postgresBin(): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  if (versions.length === 0) throw new Error('no PostgreSQL under /usr/lib/postgresql: install the server package (initdb, pg_ctl)')
  return `/usr/lib/postgresql/${versions[0]}/bin`
}

/** The postgres OS user's ids. */
const postgresIds = (): { uid: number; gid: number } => ({
  uid: Number(runSync('id', ['-u', 'postgres']).trim()),
  gid: Number(runSync('id', ['-g', 'postgres']).trim()),
})

/** initdb and postgres refuse to run as root: as root, run them as the postgres OS user. */
const asPostgres = (command: string, args: string[]): [string, string[]] =>
  userInfo().uid === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>`, without a database. */
  serverUrl: string
  port: number
  /** `pg_ctl stop -m immediate`: every backend killed, no checkpoint (recovery at the next start). */
  stopImmediate(): Promise<void>
  start(): Promise<void>
  /** One statement, as superuser, on `database` (default `postgres`). */
  sql(text: string, database?: string): Promise<pg.QueryResult>
  /** A connection of the caller's own, as superuser, on `database`; the caller ends it. */
  connect(database: string): Promise<pg.Client>
  /**
   * A tablespace on a filesystem of its own of `megabytes` (a tmpfs: needs
   * root), for running out of disk without filling the machine's.
   */
  createTinyTablespace(name: string, megabytes: number): Promise<void>
  stop(): Promise<void>
}

/** A cluster of its own, made with initdb and run with pg_ctl, on a free port. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBin()
  const dir = mkdtempSync(join(tmpdir(), 'goalpost-faults-pg-'))
  if (userInfo().uid === 0) {
    const { uid, gid } = postgresIds()
    chownSync(dir, uid, gid)
  }
  const data = join(dir, 'data')
  const port = await freePort()
  const serverUrl = `postgres://postgres@127.0.0.1:${port}`
  const pgCtl = (...args: string[]) => {
    const [command, argv] = asPostgres(`${bin}/pg_ctl`, ['-D', data, ...args])
    return runSync(command, argv)
  }
  const stopImmediate = async () => {
    spawnSync(...asPostgres(`${bin}/pg_ctl`, ['-D', data, 'stop', '-m', 'immediate', '-w']))
  }
  const mounts: string[] = []
  const cleanup = () => {
    spawnSync(...asPostgres(`${bin}/pg_ctl`, ['-D', data, 'stop', '-m', 'immediate', '-w']))
    for (const mount of mounts.splice(0)) spawnSync('umount', [mount])
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch (err) {
      console.error(`could not remove ${dir}: ${err}`)
    }
  }
  cleanups.add(cleanup)
  const start = async () => {
    // fsync off: the faults here kill processes, not the machine, and the
    // kernel keeps what a killed postgres wrote; it spares a shared CI disk.
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100`
    pgCtl('start', '-w', '-t', '60', '-l', join(dir, 'postgres.log'), '-o', options)
  }
  try {
    const [command, argv] = asPostgres(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'])
    runSync(command, argv)
    await start()
  } catch (err) {
    cleanup()
    cleanups.delete(cleanup)
    throw err
  }
  const connect = async (database: string) => {
    const client = new pg.Client({ connectionString: `${serverUrl}/${database}`, application_name: 'goalpost-faults-admin' })
    await client.connect()
    return client
  }
  const sql = async (text: string, database = 'postgres') => {
    const client = await connect(database)
    try {
      return await client.query(text)
    } finally {
      await client.end()
    }
  }
  return {
    serverUrl,
    port,
    stopImmediate,
    start,
    sql,
    connect,
    async createTinyTablespace(name, megabytes) {
      const location = join(dir, `tablespace-${name}`)
      mkdirSync(location)
      const owner = userInfo().uid === 0 ? postgresIds() : { uid: userInfo().uid, gid: userInfo().gid }
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,uid=${owner.uid},gid=${owner.gid},mode=0700`, 'tmpfs', location], { encoding: 'utf8' })
      if (mounted.status !== 0)
        throw new Error(`could not mount a ${megabytes} MB tmpfs for a full disk (${mounted.stderr.trim() || mounted.error}): run the fault suite as root, as CI does`)
      mounts.push(location)
      await sql(`CREATE TABLESPACE ${pg.escapeIdentifier(name)} LOCATION '${location}'`)
    },
    async stop() {
      cleanup()
      cleanups.delete(cleanup)
    },
  }
}
