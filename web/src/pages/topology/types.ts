// GET /api/topology (docs/server.md; src/medark/server/schemas_dashboard.py).
import type { LinkState } from '../dashboard/types'

export type NodeType = 'institution' | 'site' | 'system' | 'repository' | 'standby'
export type LinkType = 'backup' | 'copy' | 'replication'

export interface TopoNode {
  id: string
  type: NodeType
  institution: string
  name: string
  title: string
  parent: string | null
  /** A system: its dashboard status; a standby: its link state; else null. */
  status: string | null
  site: string | null
  location: string | null
  role: string | null
  url: string | null
  kind: string | null
  criticality: string | null
}

export interface TopoLink {
  id: string
  type: LinkType
  institution: string
  source: string
  target: string
  plan: string | null
  system: string | null
  offsite: boolean
  state: LinkState
  lag_seconds: number | null
  lag_bytes: number | null
  last_at: string | null
}

export interface Topology {
  generated_at: string
  institution: string | null
  nodes: TopoNode[]
  links: TopoLink[]
}
