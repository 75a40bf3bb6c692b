/**
 * goalpost as a child process, exactly as an operator runs it
 * (`node --import tsx src/cli/index.ts <command>`), for tests that kill it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait.ts'

const CLI = fileURLToPath(new URL('../../src/cli/index.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url)) // where `tsx` resolves

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface GoalpostProcess {
  child: ChildProcess
  /** The last lines it wrote (stdout and stderr), for failure messages and log checks. */
  output: string[]
  exited(): Promise<Exit>
}

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Starts `goalpost <command>` with exactly this environment (plus PATH and HOME). */
export function spawnGoalpost(command: string, env: Record<string, string>, { keepLines = 2_000 } = {}): GoalpostProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, command], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  // Whole lines only: a chunk may end mid-line.
  const lines = () => {
    let partial = ''
    return (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n')
      partial = parts.pop()!
      output.push(...parts.filter((line) => line !== ''))
      if (output.length > keepLines) output.splice(0, output.length - keepLines)
    }
  }
  child.stdout!.on('data', lines())
  child.stderr!.on('data', lines())
  running.add(child)
  const exit = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    }),
  )
  return { child, output, exited: () => exit }
}

/** SIGTERM (drain, then exit); SIGKILL if it has not exited after `graceMs`. */
export async function stopGoalpost(proc: GoalpostProcess, graceMs = 30_000): Promise<Exit> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM')
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs)
  try {
    return await proc.exited()
  } finally {
    clearTimeout(timer)
  }
}

/** Kills every goalpost process this test file started and has not seen exit. */
export async function killAllGoalposts(): Promise<void> {
  const exits = [...running].map((child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))))
  for (const child of running) child.kill('SIGKILL')
  await Promise.all(exits)
}

/** Runs a one-shot command (`migrate`, `apply FILE` …) and fails with its output unless it exits 0. */
export async function runGoalpost(args: string, env: Record<string, string>): Promise<string[]> {
  const [command, ...rest] = args.split(' ')
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, command, ...rest], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()))
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`goalpost ${args} exited ${code}:\n${output.join('')}`)
  return output
}

/** Waits until the HTTP server at `url` answers /readyz with 200 (Postgres and Redis reachable). */
export async function waitUntilServing(url: string, proc: GoalpostProcess, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`goalpost exited ${proc.child.exitCode} before serving:\n${proc.output.slice(-20).join('\n')}`)
      return fetch(`${url}/readyz`).then(
        (res) => res.status === 200,
        () => false,
      )
    },
    { what: `goalpost at ${url} to be ready`, timeoutMs, intervalMs: 100 },
  )
}
