import type { JourneyRecord, PersonEvaluation, PersonEvent } from './evaluate-person.ts'
import type { CampaignDef, EngineConfig } from './model.ts'
import { PersonState } from './person-state.ts'

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

/** Whether the person matches the campaign's audience filters at `now` (state after every input up to then). */
export function matchesAudienceAt(events: readonly PersonEvent[], config: EngineConfig, campaign: CampaignDef, now: number): boolean {
  const state = new PersonState(config.segments, [campaign.filters])
  for (const e of events) {
    if (e.receivedAt > now) break
    state.observe(e)
    state.refreshSegments(e.receivedAt)
  }
  state.refreshSegments(now)
  return state.matches(campaign.filters, now)
}

/**
 * R21: may the person receive the campaign's next message now? No when their
 * latest journey has exited (the evaluation at `now` has already recorded any
 * exit R18 made due, at the time of the input that made it due); yes while it
 * is active; otherwise whether they match the audience filters.
 */
export function decideEligibility(evaluation: PersonEvaluation, campaignKey: string, audienceMatches: boolean): EligibilityDecision {
  const journeys = evaluation.journeys.filter((j) => j.campaignKey === campaignKey)
  const last = journeys[journeys.length - 1]
  if (last && last.exitedAt !== null)
    return { eligible: false, journeyId: last.journeyId, reason: 'journey-exited', exit: { exitedAt: last.exitedAt, exitReason: last.exitReason } }
  if (last && last.completedAt === null) return { eligible: true, journeyId: last.journeyId, reason: 'journey-active' }
  return { eligible: audienceMatches, journeyId: null, reason: audienceMatches ? 'matches-audience' : 'outside-audience' }
}
