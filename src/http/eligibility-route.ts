import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { campaignResolver, evaluatePerson } from '../core/evaluate-person.ts'
import { decideEligibility } from '../core/eligibility.ts'
import { InputError } from '../errors.ts'
import type { ConfigCache } from '../jobs/config-cache.ts'
import { evaluatePeople } from '../jobs/evaluate.ts'
import { requireObject, requireWriteKey } from './tracking-routes.ts'
import { isStorableText, UNSTORABLE_TEXT } from '../core/storable.ts'

const asId = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null)

/**
 * R21 `POST /v1/eligibility {campaign, userId}`: may this person receive the
 * campaign's next message now? The person is evaluated at this moment first,
 * so an exit R18 has made due is recorded (at the time of the input that made
 * it due) before the answer.
 */
export function registerEligibilityRoute(app: FastifyInstance, deps: { db: Knex; configs: ConfigCache; writeKeys: readonly string[] }) {
  app.post('/v1/eligibility', async (request) => {
    requireWriteKey(deps.writeKeys, request)
    const body = requireObject(request.body)
    const campaignRef = asId(body.campaign)
    const userId = asId(body.userId)
    if (campaignRef === null) throw new InputError(400, 'invalid_body', 'campaign: must be a campaign key (or one of its external_ids)')
    if (userId === null) throw new InputError(400, 'invalid_body', 'userId: must be a non-empty string')
    for (const [field, value] of [['campaign', campaignRef], ['userId', userId]] as const)
      if (!isStorableText(value)) throw new InputError(400, 'invalid_body', `${field}: ${UNSTORABLE_TEXT}`)
    const ctx = await deps.configs.get()
    const campaign = campaignResolver(ctx.config.campaigns)(campaignRef)
    if (!campaign) throw new InputError(404, 'unknown_campaign', `campaign: no active campaign "${campaignRef}"`)
    // R25: an id merged into another person answers for that person.
    const link = await deps.db('identity_links').where({ anonymous_id: userId }).first('person_id')
    const personId: string = link?.person_id ?? userId
    const now = Date.now()
    // Someone goalpost has never heard of has no rows to bring up to date:
    // judge the empty log without writing anything for them.
    const known = await deps.db('people').where({ person_id: personId }).first('person_id')
    const evaluation = known ? (await evaluatePeople(deps.db, [personId], ctx, now)).results.get(personId)! : evaluatePerson(personId, [], ctx.config, now)
    const decision = decideEligibility(evaluation, campaign.key, evaluation.matchesAudience(campaign))
    return {
      eligible: decision.eligible,
      journey_id: decision.journeyId,
      reason: decision.reason,
      ...(decision.exit
        ? { exited_at: new Date(decision.exit.exitedAt).toISOString(), exit_reason: decision.exit.exitReason }
        : {}),
    }
  })
}
