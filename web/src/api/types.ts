// The API's shapes the console reads (docs/server.md; the OpenAPI document at
// /api/openapi.json is the reference).

export interface Me {
  name: string
  kind: string
  institution: string | null
  /** The account belongs to the regional center (it sees every institution). */
  regional_center: boolean
  roles: string[]
  password_change_required: boolean
  totp_enrolment_required: boolean
  /** The IANA zone of the institution's configuration, which the console shows times in. */
  timezone?: string
}

export interface LoginReply {
  user: Me
  csrf_token: string
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'
export const JOB_STATUSES: readonly JobStatus[] = [
  'queued', 'running', 'succeeded', 'failed', 'cancelled',
]
export type JobKind = 'backup' | 'check' | 'restore_test'
export const RUNNABLE_KINDS: readonly JobKind[] = ['backup', 'check', 'restore_test']

export interface JobProgress {
  percent: number | null
  bytes_done: number | null
  bytes_total: number | null
  eta_seconds: number | null
  message: string
}

export interface Job {
  id: number
  institution: string | null
  plan: string
  kind: string
  status: JobStatus
  system: string | null
  agent: string | null
  host: string
  requested_by: string | null
  scheduled_for: string | null
  started_at: string | null
  finished_at: string | null
  attempt: number
  cancel_requested: boolean
  error: string | null
  snapshot_id: string | null
  bytes_added: number | null
  details: Record<string, unknown> | null
  progress: JobProgress | null
}

export interface JobList {
  jobs: Job[]
  next_before_id: number | null
}

export interface JobEvent {
  id: number
  job_id: number
  at: string
  kind: 'status' | 'progress' | 'log'
  data: Record<string, unknown>
}

export interface Institution {
  name: string
  title: string
  kind: string
  created_at: string
}
