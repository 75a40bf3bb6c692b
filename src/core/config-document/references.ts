/**
 * What the schemas know of the rest of the document, and the segment
 * reference that checks against it (R24: a condition or trigger names a
 * segment the document defines).
 */
import { z } from 'zod'
import { FAILED, fail, key, listNames, within } from './shared.ts'

export type TriggerKind = 'event' | 'segment' | 'none'

/**
 * What the schemas need to know about the rest of the document: set by
 * validateConfigDocument (and, for `trigger`, per campaign) for the duration of
 * one synchronous parse. The schemas are built once: zod compiles each.
 */
export const scope: { segmentKeys: ReadonlySet<string>; trigger: TriggerKind } = { segmentKeys: new Set(), trigger: 'none' }

export function segmentKey() {
  return z.unknown().transform((value, ctx) => {
    const parsed = within(ctx, key, value)
    if (parsed === FAILED) return z.NEVER
    if (!scope.segmentKeys.has(parsed))
      return fail(ctx, `unknown segment ${JSON.stringify(parsed)}; defined segments: ${listNames([...scope.segmentKeys])}`)
    return parsed
  })
}
