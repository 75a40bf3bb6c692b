/**
 * Delivery lifecycle (R4, R5, R7): the steps a delivery goes through and how
 * a recorded step stands in for the missing earlier ones.
 */
export const CHANNELS = ['email', 'sms', 'push', 'in_app', 'webhook', 'slack'] as const
export type Channel = (typeof CHANNELS)[number]

/** `revoked` is R5's bounce, failure, suppression or drop; `recorded` is stored only. */
export const STEPS = ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'revoked', 'recorded'] as const
export type Step = (typeof STEPS)[number]

/** What a lifecycle event says about a delivery (R4), resolved by the adapter. */
export interface DeliveryFact {
  deliveryId: string
  campaignRef: string | null
  journeyRef: string | null
  actionId: string | null
  channel: Channel
  step: Step
}

export type StepColumn =
  | 'drafted_at'
  | 'attempted_at'
  | 'sent_at'
  | 'delivered_at'
  | 'opened_at'
  | 'clicked_at'
  | 'failed_at'

/**
 * The delivery columns a lifecycle event at `step` sets (to the earliest time
 * seen). A later step stands in for the earlier sending steps (R5, R7: a click
 * counts as sent, delivered and opened); drafted and attempted precede sending
 * and imply nothing; `recorded` events change no column.
 */
export function columnsSetBy(step: Step): readonly StepColumn[] {
  switch (step) {
    case 'drafted':
      return ['drafted_at']
    case 'attempted':
      return ['attempted_at']
    case 'sent':
      return ['sent_at']
    case 'delivered':
      return ['sent_at', 'delivered_at']
    case 'opened':
      return ['sent_at', 'delivered_at', 'opened_at']
    case 'clicked':
      return ['sent_at', 'delivered_at', 'opened_at', 'clicked_at']
    case 'revoked':
      return ['failed_at']
    case 'recorded':
      return []
  }
}
