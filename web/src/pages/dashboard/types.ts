// GET /api/dashboard (docs/server.md "The dashboard, the topology and live events";
// src/medark/server/schemas_dashboard.py is the reference).

export type SystemStatus = 'ok' | 'warning' | 'critical' | 'unknown'
export type LinkState = 'ok' | 'lagging' | 'broken' | 'unknown'

export interface Counts {
  systems: number
  ok: number
  warning: number
  critical: number
  unknown: number
  open_alerts: number
}

export interface InstitutionSummary {
  name: string
  title: string
  timezone: string | null
  config_version: number | null
  problem: { code: 'no_configuration' | 'invalid_configuration'; message: string } | null
  summary: Counts
  agents: { online: number; offline: number }
}

export interface Rpo {
  achieved_seconds: number | null
  point_at: string | null
  target_seconds: number | null
  target_source: 'plan' | 'tier' | null
  plan_seconds: number | null
  tier_seconds: number | null
  log_streamed: boolean
}

export interface JobBrief {
  job_id: number
  plan: string
  status: string
  started_at: string | null
  finished_at: string | null
  error: string | null
  snapshot_id: string | null
}

export interface RestoreTest extends JobBrief {
  kind: string
  rto_seconds: number | null
  rto_target_seconds: number | null
  last_success_at: string | null
}

export interface Copy {
  plan: string
  target: string
  site: string
  offsite: boolean
  continuous: boolean
  schedule: string
  state: LinkState
  lag_seconds: number | null
  last_copy_at: string | null
  last_job: JobBrief | null
}

export interface Drill {
  at: string | null
  status: string
  seconds: number | null
  job_id: number | null
}

export interface Dr {
  standby_site: string
  primary_site: string
  current_primary_site: string | null
  kind: string
  feed: string
  state: LinkState
  lag_seconds: number | null
  lag_bytes: number | null
  problems: string[]
  agent: string | null
  reported_at: string | null
  last_drill: Drill | null
}

export interface SystemState {
  institution: string
  name: string
  title: string
  criticality: string
  records: string
  plans: string[]
  status: SystemStatus
  reasons: string[]
  rpo: Rpo
  last_backup: JobBrief | null
  restore_test: RestoreTest | null
  offsite: Copy[]
  offsite_lag_seconds: number | null
  dr: Dr | null
  open_alerts: number
}

export interface Dashboard {
  generated_at: string
  institution: string | null
  summary: Counts
  institutions: InstitutionSummary[]
  systems: SystemState[]
}
