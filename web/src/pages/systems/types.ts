// The configuration API's shapes (server/schemas_configs.py).

export interface ConfigView {
  institution: string
  version: number
  sha256: string
  author: string
  created_at: string
  comment: string
  document: string
}

export type VersionView = Omit<ConfigView, 'document'>

export interface Invalid {
  institution: string
  version: number
  message: string
}

export interface SiteView { institution: string; name: string; title: string; location: string; role: string }

export interface SystemView {
  institution: string; name: string; title: string; owner: string; criticality: string
  records: string; sources: string[]; plans: string[]
}

export interface RepositoryView {
  institution: string; name: string; site: string; url: string; max_jobs: number
  prune: string | null
}

export interface PlanView {
  institution: string; name: string; system: string; repository: string; schedule: string
  rpo: string; rto: string; retention: Record<string, unknown>
  copies: { to: string; schedule: string }[]; restore_test: string | null
}

export interface ConfigDiff { institution: string; from_version: number; to_version: number; diff: string }

/** A retention policy in one line: "daily 7 · weekly 4". */
export function retentionText(retention: Record<string, unknown>,
  name: (key: string) => string = (key) => key): string {
  return Object.entries(retention)
    .filter(([, value]) => value !== null && value !== undefined && value !== '' && value !== 0)
    .map(([key, value]) => `${name(key)} ${Array.isArray(value) ? value.join(',') : String(value)}`)
    .join(' · ')
}
