import cliProgress from 'cli-progress'
import type { ImportPhase } from '../jobs/import-messages.ts'

/** How far an import is: lines parsed, bytes of the file read, and what it is doing. */
export interface ImportProgress {
  lines: number
  bytes: number
  totalBytes: number
  elapsedMs: number
  phase: ImportPhase
}

const count = (n: number) => Math.round(n).toLocaleString('en-US')

/** Lines/s, the share of the file read, and what is left: the time left by that share while storing, the people left while evaluating. */
export function describeProgress(p: ImportProgress): { rate: string; share: string; status: string } {
  const seconds = p.elapsedMs / 1000
  const share = p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : 1
  const eta = share > 0 ? (seconds / share) * (1 - share) : NaN
  return {
    rate: count(seconds > 0 ? p.lines / seconds : 0),
    share: `${(100 * share).toFixed(0)}% of ${(p.totalBytes / 1e6).toFixed(1)} MB`,
    status:
      p.phase.step === 'evaluating'
        ? `evaluating ${count(p.phase.done)}/${count(p.phase.total)} people`
        : `ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)} s` : '?'}`,
  }
}

/** One plain progress line (stderr that is not a terminal). */
export function formatProgress(p: ImportProgress): string {
  const d = describeProgress(p)
  return `import: ${count(p.lines)} lines, ${d.rate} lines/s, ${d.share} read, ${d.status}`
}

export interface ProgressDisplay {
  update(p: ImportProgress): void
  /** A line of its own (a bad line's report), not written over by the bar. */
  log(line: string): void
  stop(): void
}

/** A bar on a terminal, else a plain line per update. */
export function progressDisplay(stream: NodeJS.WriteStream): ProgressDisplay {
  if (!stream.isTTY)
    return {
      update: (p) => stream.write(`${formatProgress(p)}\n`),
      log: (line) => stream.write(`${line}\n`),
      stop: () => {},
    }
  const bar = new cliProgress.SingleBar(
    { format: 'import |{bar}| {share} | {lines} lines | {rate} lines/s | {status}', stream, hideCursor: true, fps: 5 },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    update(p) {
      const payload = { lines: count(p.lines), ...describeProgress(p) }
      if (!started) bar.start(p.totalBytes, p.bytes, payload)
      else bar.update(p.bytes, payload)
      started = true
    },
    log(line) {
      // The bar is drawn without a newline: clear it, the next update draws it below.
      if (started) {
        stream.clearLine(0)
        stream.cursorTo(0)
      }
      stream.write(`${line}\n`)
    },
    stop: () => {
      if (started) bar.stop()
    },
  }
}
