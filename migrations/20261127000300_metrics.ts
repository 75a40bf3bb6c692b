import type { Knex } from 'knex'

/**
 * R26 metrics as views, computed at query time so "pending" is judged against
 * now(): a delivery whose conversion window has not closed is pending, not
 * "not converted", and rates leave pending ones out of the denominator.
 *
 * A delivery counts when it left (sent or a later step, no bounce/failure, R5)
 * on an attributable channel (R6). Its window is the goal in force now: from
 * its anchor (R7), or, while it has no anchor yet, from when it was sent.
 * Only a delivery that can still convert is pending: not one sent after its
 * journey exited (R20), nor one whose journey has converted already (R12) or
 * entered without a goal (R14); those are decided, as not converted.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE VIEW delivery_windows AS
    SELECT d.delivery_id, d.campaign_key, d.journey_id, d.person_id, d.action_id, d.channel,
           d.sent_at, d.after_exit, d.converted_at,
           (j.converted_at IS NULL AND j.goal_version IS NOT NULL) AS journey_open,
           CASE g.after WHEN 'opened' THEN d.opened_at
                        WHEN 'clicked' THEN d.clicked_at
                        ELSE coalesce(d.delivered_at, d.sent_at) END AS anchor_at,
           g.within_ms,
           (d.sent_at IS NOT NULL AND d.failed_at IS NULL
             AND (d.channel IN ('email', 'sms', 'push', 'in_app')
                  OR (d.channel = 'webhook' AND coalesce((c.definition->>'webhookConversions')::boolean, false))))
             AS counted
      FROM deliveries d
      JOIN campaigns c ON c.key = d.campaign_key
      LEFT JOIN journeys j ON j.journey_id = d.journey_id
      LEFT JOIN LATERAL (
        SELECT v.goal->>'after' AS after, (v.goal->>'withinMs')::bigint AS within_ms
          FROM campaign_goal_versions v
         WHERE v.campaign_key = d.campaign_key AND v.effective_from <= now()
         ORDER BY v.version DESC
         LIMIT 1
      ) g ON true`)

  await knex.raw(`
    CREATE VIEW delivery_outcomes AS
    SELECT w.*,
           (w.counted AND w.converted_at IS NULL AND NOT w.after_exit AND coalesce(w.journey_open, false) AND w.within_ms IS NOT NULL
             AND coalesce(w.anchor_at, w.sent_at) + w.within_ms * interval '1 millisecond' >= now()) AS pending
      FROM delivery_windows w`)

  await knex.raw(`
    CREATE VIEW campaign_metrics AS
    WITH j AS (
      SELECT j.campaign_key,
             count(*) AS journeys,
             count(*) FILTER (WHERE j.converted_at IS NOT NULL) AS converted_journeys,
             count(*) FILTER (WHERE j.converted_at IS NULL AND EXISTS (
               SELECT 1 FROM delivery_outcomes o WHERE o.journey_id = j.journey_id AND o.pending)) AS pending_journeys
        FROM journeys j GROUP BY j.campaign_key
    ), d AS (
      SELECT campaign_key,
             count(*) FILTER (WHERE counted) AS deliveries,
             count(*) FILTER (WHERE counted AND converted_at IS NOT NULL) AS converted_deliveries,
             count(*) FILTER (WHERE pending) AS pending_deliveries
        FROM delivery_outcomes GROUP BY campaign_key
    ), v AS (
      SELECT campaign_key, sum(value) AS conversion_value FROM conversions GROUP BY campaign_key
    )
    SELECT c.key AS campaign_key,
           coalesce(j.journeys, 0) AS journeys,
           coalesce(j.converted_journeys, 0) AS converted_journeys,
           j.converted_journeys::numeric / nullif(j.journeys - j.pending_journeys, 0) AS journey_conversion_rate,
           coalesce(j.pending_journeys, 0) AS pending_journeys,
           coalesce(d.deliveries, 0) AS deliveries,
           coalesce(d.converted_deliveries, 0) AS converted_deliveries,
           d.converted_deliveries::numeric / nullif(d.deliveries - d.pending_deliveries, 0) AS delivery_conversion_rate,
           coalesce(d.pending_deliveries, 0) AS pending_deliveries,
           coalesce(v.conversion_value, 0) AS conversion_value,
           c.archived_at IS NOT NULL AS archived
      FROM campaigns c
      LEFT JOIN j ON j.campaign_key = c.key
      LEFT JOIN d ON d.campaign_key = c.key
      LEFT JOIN v ON v.campaign_key = c.key`)

  await knex.raw(`
    CREATE VIEW message_metrics AS
    SELECT o.campaign_key, o.action_id,
           count(*) FILTER (WHERE o.counted) AS deliveries,
           count(*) FILTER (WHERE o.counted AND o.converted_at IS NOT NULL) AS converted_deliveries,
           (count(*) FILTER (WHERE o.counted AND o.converted_at IS NOT NULL))::numeric
             / nullif(count(*) FILTER (WHERE o.counted) - count(*) FILTER (WHERE o.pending), 0) AS delivery_conversion_rate,
           count(*) FILTER (WHERE o.pending) AS pending_deliveries,
           coalesce(sum(cv.value), 0) AS conversion_value
      FROM delivery_outcomes o
      LEFT JOIN conversions cv ON cv.delivery_id = o.delivery_id
     WHERE o.action_id IS NOT NULL
     GROUP BY o.campaign_key, o.action_id`)
}

export async function down(knex: Knex): Promise<void> {
  for (const view of ['message_metrics', 'campaign_metrics', 'delivery_outcomes', 'delivery_windows'])
    await knex.raw(`DROP VIEW IF EXISTS ${view}`)
}
