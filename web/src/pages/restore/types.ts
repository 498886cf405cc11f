// The shapes of the restore wizard's server replies (docs/server.md: snapshots,
// restores, GET …/recovery).

export interface Point {
  id: string
  short_id: string
  time: string
  host: string
  tags: string[]
  paths: string[]
  size: number | null
  repository: string
}

export interface LogWindow {
  /** `wal` or `binlog`. */
  kind: string
  start: string
  end: string
}

export interface AgentTargets {
  agent: string
  state: string
  targets: string[]
}

export interface Recovery {
  institution: string
  system: string
  grant: number | null
  plans: string[]
  source_types: string[]
  database: boolean
  log_streamed: boolean
  windows_known: boolean
  windows: LogWindow[]
  points: Point[]
  agents: AgentTargets[]
}

export interface SystemItem {
  institution: string
  name: string
  title: string
  owner: string
  criticality: string
  sources: string[]
  plans: string[]
}

export interface TreeEntry {
  name: string
  type: string
  size: number | null
  mtime: string
}

export interface TreeReply {
  snapshot: string
  path: string
  entries: TreeEntry[]
  grant: number | null
}

export interface FindMatch {
  path: string
  type: string
  size: number | null
  mtime: string
}

export interface FindReply {
  snapshot: string
  pattern: string
  matches: FindMatch[]
  truncated: boolean
  grant: number | null
}
