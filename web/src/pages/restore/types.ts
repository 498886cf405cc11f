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
  /** Instances its DICOM catalog holds; null (or absent, from an older server) when its
   * backup made none: the study search is offered only with some. */
  dicom_instances?: number | null
}

export interface LogWindow {
  /** `wal` or `binlog`. */
  kind: string
  /** ISO 8601 in UTC; a restore may target any second in [start, end]. */
  start: string
  end: string
  /** The plan and its source (the configuration's names) the window belongs to; absent
   * from a server older than point-in-time restores from the console. */
  plan?: string
  source?: string
  /** The base backup's snapshot (short id) the window starts from. */
  base?: string
  /** The window ends at a gap in the archive. */
  gap_after?: boolean
  /** The agent that reported it (the one the restore is queued for). */
  agent?: string
  reported_at?: string
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

export interface DicomSeries {
  series_uid: string
  modality: string
  instances: number
  size: number
}

export interface DicomStudy {
  study_uid: string
  patient_id: string
  patient_name: string
  accession: string
  /** YYYYMMDD as the header says (may be empty). */
  study_date: string
  study_description: string
  modalities: string[]
  series_count: number
  instances: number
  size: number
  series: DicomSeries[]
}

export interface DicomReply {
  snapshot: string
  grant: number | null
  catalog: boolean
  catalog_instances: number
  unreadable: string | null
  filters: Record<string, string>
  total: number
  truncated: boolean
  studies: DicomStudy[]
}
