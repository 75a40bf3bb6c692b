/** Durations in the configuration: `<integer><s|m|h|d>` (CONTRACT.md). */
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

export const DAY_MS = UNIT_MS.d

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(text: unknown): number | null {
  if (typeof text !== 'string') return null
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim())
  if (!match) return null
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
}

/** The shortest exact text for a duration in ms (for messages and the stored config). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`
  return `${ms / 1000}s`
}
