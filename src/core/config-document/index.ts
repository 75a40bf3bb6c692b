/**
 * The configuration document (CONTRACT.md, "Configuration document"): its
 * validation (validate.ts) and what it gives. One module per concept:
 * shared.ts (messages, zod building blocks), references.ts (what the schemas
 * know of the rest of the document), conditions.ts, segments.ts,
 * campaigns.ts, delivery-events.ts, schedules.ts.
 */
export { validateConfigDocument } from './validate.ts'
export {
  ConfigDocumentError,
  DEFAULT_JOURNEY_TTL_MS,
  DURATION_BOUNDS,
  KEY_PATTERN,
  canonicalJson,
  type CampaignDocument,
  type ConfigDocument,
  type ScheduleDef,
  type ScheduleJob,
  type ScheduleTiming,
  type ValidationResult,
} from './document.ts'
export { DELIVERY_STATUSES } from './delivery-events.ts'
export { SCHEDULE_BOUNDS, retentionFloor } from './schedules.ts'
export { formatPath } from './shared.ts'
