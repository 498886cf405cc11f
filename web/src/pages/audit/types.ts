// The audit API's shapes (server/schemas_audit.py).

export interface AuditRecord {
  seq: number
  at: string
  actor: string
  source: string
  action: string
  target: string | null
  result: string
  institution: string | null
  detail: Record<string, unknown>
  hash: string
}

export interface AuditPage {
  records: AuditRecord[]
  next_before_seq: number | null
}

export interface VerifyReply {
  intact: boolean
  records: number
  head: number
  chain: string
  problems: { seq: number; kind: string; message: string }[]
}
