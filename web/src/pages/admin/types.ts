// The administration API's shapes (docs/server.md; the OpenAPI document is the reference).

export interface UserView {
  name: string
  institution: string
  roles: string[]
  disabled: boolean
  must_change_password: boolean
  totp_enrolled: boolean
  locked_until: string | null
  created_at: string
}

export interface ApprovalChange {
  roles: string[] | null
  disabled: boolean | null
  reset_password: boolean
  reset_totp: boolean
}

export interface ApprovalView {
  id: number
  kind: string
  target: string
  institution: string
  change: ApprovalChange
  reasons: string[]
  requested_by: string
  state: string
  created_at: string | null
  expires_at: string | null
  decided_by: string | null
  decided_at: string | null
  note: string | null
}

/** A user route's answer: the change made (with a one-time password after a reset or a
 * creation), or a request awaiting a second security administrator (202). */
export interface UserOutcome {
  user?: UserView
  one_time_password?: string | null
  approval?: ApprovalView
}

export interface TokenView {
  name: string
  role: string
  institution: string
  created_by: string
  created_at: string | null
  expires_at: string | null
  revoked_at: string | null
  last_used: string | null
}

export interface GrantView {
  id: number
  requester: string
  from_institution: string
  to_institution: string
  scope: Record<string, string[]>
  purpose: string
  starts_at: string | null
  ends_at: string | null
  state: string
  active: boolean
  decided_by: string | null
  decided_at: string | null
  decision_note: string | null
  revoked_by: string | null
  revoked_at: string | null
  created_at: string | null
}

export interface AgentView {
  name: string
  institution: string
  host: string
  version: string
  state: string
  enrolled_at: string | null
  last_heartbeat: string | null
  plans: string[]
  kinds: string[]
  queue_length: number | null
  revoked_at: string | null
}

export const GRANT_STATES = ['requested', 'approved', 'denied', 'revoked', 'expired'] as const
export const APPROVAL_STATES = ['pending', 'approved', 'rejected', 'expired', 'failed'] as const
