import type { JourneyRecord, PersonEvaluation } from './evaluate-person.ts'

export type EligibilityReason =
  | 'journey-active'
  | 'journey-exited'
  | 'matches-audience'
  | 'outside-audience'

export interface EligibilityDecision {
  eligible: boolean
  journeyId: string | null
  reason: EligibilityReason
  /** The exit that ruled the answer out, when there is one. */
  exit?: { exitedAt: number; exitReason: JourneyRecord['exitReason'] }
}

/**
 * R21: may the person receive the campaign's next message now? No when their
 * latest journey has exited (the evaluation at `now` has already recorded any
 * exit R18 made due, at the time of the input that made it due); yes while it
 * is active; otherwise whether they match the audience filters at `now`
 * (PersonEvaluation.matchesAudience).
 */
export function decideEligibility(evaluation: Pick<PersonEvaluation, 'latestJourney'>, campaignKey: string, audienceMatches: boolean): EligibilityDecision {
  const last = evaluation.latestJourney(campaignKey)
  if (last && last.exitedAt !== null)
    return { eligible: false, journeyId: last.journeyId, reason: 'journey-exited', exit: { exitedAt: last.exitedAt, exitReason: last.exitReason } }
  if (last && last.completedAt === null) return { eligible: true, journeyId: last.journeyId, reason: 'journey-active' }
  return { eligible: audienceMatches, journeyId: null, reason: audienceMatches ? 'matches-audience' : 'outside-audience' }
}
