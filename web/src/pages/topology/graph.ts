// The topology as a graph and as a list, apart from Vue and ECharts: a layered layout
// (institution → sites → systems → repositories → offsite copies and standbys, one band
// per institution), and the ECharts option of a `graph` series with it. Each link's
// state shows in colour AND as a dash pattern, a symbol and a word in its label; colour
// is never the only signal. Only types come from ECharts here: the chart itself is
// loaded with the topology page (TopologyGraph.vue).
import type { GraphSeriesOption } from 'echarts/charts'
import type { TooltipComponentOption } from 'echarts/components'
import type { ComposeOption } from 'echarts/core'
import { COLORS, formatAge, linkLook, statusLook, type Translate } from '../dashboard/model'
import type { TopoLink, TopoNode, Topology } from './types'

export type GraphOption = ComposeOption<GraphSeriesOption | TooltipComponentOption>

export const ROW = 64
export const COLUMN = 260
/** The chart's margins around the graph (px): room for the labels of the outer nodes. */
export const MARGIN = { left: 60, right: 110, top: 36, bottom: 36 }
const FONT = 'system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
const MARKS: Record<string, string> = { ok: '✔', warning: '▲', critical: '✖', unknown: '?' }
const NEUTRAL = '#3b5b7a'

export interface Placed {
  node: TopoNode
  column: number
  x: number
  y: number
}

export interface Layout {
  placed: Placed[]
  width: number
  height: number
  rows: number
}

/** Which column a node goes in: institution 0, site 1, system 2, the repositories
 * systems back up to and the standbys they replicate to 3 (a straight link from the
 * system), repositories that only receive copies 4. */
export function columnOf(node: TopoNode, backupTargets: ReadonlySet<string>): number {
  switch (node.type) {
    case 'institution': return 0
    case 'site': return 1
    case 'system': return 2
    case 'repository': return backupTargets.has(node.id) ? 3 : 4
    default: return 3
  }
}

/** Positions: each institution a band as tall as its fullest column; within a column
 * nodes follow the nodes they hang from (systems by site, repositories by the first
 * system or repository linking to them), centred in the band. */
export function layout(topology: Topology, spacing = COLUMN): Layout {
  const backupTargets = new Set(topology.links.filter((l) => l.type === 'backup').map((l) => l.target))
  const incoming = new Map<string, string[]>()
  for (const link of topology.links) {
    incoming.set(link.target, [...(incoming.get(link.target) ?? []), link.source])
  }
  // an institution without a configuration has nothing to draw (the dashboard says why)
  const institutions = topology.nodes.filter((n) => n.type === 'institution'
    && topology.nodes.some((m) => m.parent === n.id))
  const placed: Placed[] = []
  let top = 0
  for (const inst of institutions) {
    const own = topology.nodes.filter((n) => n.institution === inst.institution)
    const columns: TopoNode[][] = [[], [], [], [], []]
    for (const node of own) columns[columnOf(node, backupTargets)]!.push(node)
    const rank = new Map<string, number>()
    columns.forEach((column, index) => {
      if (index >= 2) {
        const key = (node: TopoNode) => {
          const from = index === 2 ? [node.parent ?? ''] : incoming.get(node.id) ?? []
          const ranks = from.map((id) => rank.get(id)).filter((r): r is number => r !== undefined)
          return ranks.length ? Math.min(...ranks) : Number.MAX_SAFE_INTEGER
        }
        // repositories before standbys in a column; then by what links to them
        const kind = (node: TopoNode) => node.type === 'standby' ? 1 : 0
        column.sort((a, b) => kind(a) - kind(b) || key(a) - key(b) || a.name.localeCompare(b.name))
      }
      column.forEach((node, i) => rank.set(node.id, i))
    })
    const rows = Math.max(1, ...columns.map((c) => c.length))
    columns.forEach((column, index) => {
      const offset = (rows - column.length) / 2
      column.forEach((node, i) => {
        placed.push({ node, column: index, x: index * spacing, y: (top + offset + i) * ROW })
      })
    })
    top += rows + 1
  }
  const rows = Math.max(0, top - 1)
  return { placed, width: 4 * spacing, height: rows * ROW, rows }
}

/** A node's look: a system its status, a standby its link's state; the others neutral. */
export function nodeLook(node: TopoNode) {
  if (node.type === 'system') return statusLook(node.status)
  if (node.type === 'standby') return linkLook(node.status)
  return null
}

/** A node's label: its title, and for a system or standby the state's mark and word. */
export function nodeLabel(node: TopoNode, t: Translate, siteTitle: (id: string | null) => string
): string {
  const look = nodeLook(node)
  const title = node.type === 'standby'
    ? t('topology.standbyOf', { name: node.title }) : node.title || node.name
  const where = node.type === 'repository' || node.type === 'standby' ? siteTitle(node.parent) : ''
  const second = [look ? `${MARKS[look.icon]} ${t(look.label)}` : '', where].filter(Boolean).join(' · ')
  return second ? `${title}\n${second}` : title
}

/** A link's label: the state's mark and word (for a problem), and the lag. */
export function linkLabel(link: TopoLink, t: Translate): string {
  const look = linkLook(link.state)
  const lag = formatAge(link.lag_seconds, t)
  const word = `${MARKS[look.icon]} ${t(look.label)}`
  return lag ? `${word} · ${lag}` : word
}

/** Dash pattern per state: ok solid, lagging dashed, broken dotted and thicker, unknown
 * long dashes in grey. */
export function lineType(state: string): { type: 'solid' | 'dashed' | 'dotted' | number[]; width: number } {
  switch (state) {
    case 'ok': return { type: 'solid', width: 2 }
    case 'lagging': return { type: 'dashed', width: 2.5 }
    case 'broken': return { type: 'dotted', width: 3.5 }
    default: return { type: [10, 6], width: 1.5 }
  }
}

/** Systems are named on their left, so the right is free for their links' labels. */
const LABEL_AT: Record<string, 'top' | 'left' | 'bottom' | 'right'> = {
  institution: 'top', site: 'top', system: 'left', repository: 'bottom', standby: 'right',
}
/** Where a link's label sits: a backup's near its system (above the line: systems are
 * distinct, repositories shared), a replication's near its standby (below: clear of the
 * backups that rise from the systems beneath to their repository), a copy's mid-way
 * (bent apart from the others between the same two repositories). */
const LINK_LABEL_AT: Record<string, 'insideStartTop' | 'insideEndBottom' | 'middle'> = {
  backup: 'insideStartTop', replication: 'insideEndBottom', copy: 'middle',
}

const SYMBOLS: Record<string, string> = {
  institution: 'roundRect', site: 'roundRect', system: 'circle', repository: 'rect',
  standby: 'diamond',
}

/** The tooltip's text of a node or a link (plain text: drawn on the canvas, no HTML). */
export function tooltipText(item: TopoNode | TopoLink, t: Translate,
  when: (iso: string | null) => string, names: (id: string) => string): string {
  if ('source' in item) {
    const look = linkLook(item.state)
    const lines = [
      `${t(`topology.linkType.${item.type}`)}: ${names(item.source)} → ${names(item.target)}`,
      `${t('topology.state')}: ${MARKS[look.icon]} ${t(look.label)}`,
    ]
    if (item.lag_seconds !== null) lines.push(`${t('topology.lag')}: ${formatAge(item.lag_seconds, t)}`)
    if (item.last_at) lines.push(`${t('topology.lastAt')}: ${when(item.last_at)}`)
    if (item.offsite) lines.push(t('topology.offsite'))
    return lines.join('\n')
  }
  const lines = [`${t(`topology.nodeType.${item.type}`)}: ${item.title || item.name}`]
  const look = nodeLook(item)
  if (look) lines.push(`${t('topology.state')}: ${MARKS[look.icon]} ${t(look.label)}`)
  if (item.url) lines.push(item.url)
  if (item.location) lines.push(`${t('topology.location')}: ${item.location}`)
  if (item.type === 'system') lines.push(t('topology.clickToOpen'))
  return lines.join('\n')
}

export interface OptionInput {
  topology: Topology
  t: Translate
  when: (iso: string | null) => string
  /** The chart's width in px (the columns share it). */
  width?: number
}

/** The column spacing that fills `width`: ECharts fits the graph's bounding box into the
 * chart's box, scaling x and y apart, so the graph's box must have the chart's shape or
 * every symbol and label is stretched. */
export function columnWidth(width: number | undefined): number {
  if (!width) return COLUMN
  return Math.max(150, (width - MARGIN.left - MARGIN.right) / 4)
}

/** The ECharts option: one graph series, fixed positions (layout none), no roaming (the
 * page scrolls), a canvas tooltip (no HTML: the console's CSP allows no inline style). */
export function graphOption({ topology, t, when, width }: OptionInput): GraphOption {
  const plan = layout(topology, columnWidth(width))
  const byId = new Map(topology.nodes.map((n) => [n.id, n]))
  const names = (id: string) => byId.get(id)?.title || byId.get(id)?.name || id
  const siteTitle = (id: string | null) => (id && byId.get(id)?.title) || ''
  const placedIds = new Set(plan.placed.map((p) => p.node.id))
  const drawn = topology.links.filter((l) => placedIds.has(l.source) && placedIds.has(l.target))
  const hierarchy = plan.placed
    .filter((p) => p.node.parent && p.node.type !== 'repository' && p.node.type !== 'standby'
      && placedIds.has(p.node.parent))
    .map((p) => ({ source: p.node.parent!, target: p.node.id, kind: 'parent' as const }))
  const data = plan.placed.map(({ node, x, y }) => {
    const look = nodeLook(node)
    const color = look ? look.color : node.type === 'repository' ? '#4a6fa5' : NEUTRAL
    const size = node.type === 'system' ? 26 : node.type === 'standby' ? 24
      : node.type === 'repository' ? [26, 20] : [22, 22]
    return {
      id: node.id, name: node.id, x, y, symbol: SYMBOLS[node.type], symbolSize: size,
      itemStyle: { color, borderColor: '#fff', borderWidth: 2 },
      label: {
        show: true, position: LABEL_AT[node.type] ?? 'bottom',
        align: node.type === 'system' ? 'right' as const : undefined,
        formatter: nodeLabel(node, t, siteTitle), fontFamily: FONT, fontSize: 12,
        color: look && look.tone !== 'success' ? look.color : '#1f2937', lineHeight: 16,
        fontWeight: node.type === 'system' || node.type === 'institution' ? 'bold' : 'normal',
      },
      cursor: node.type === 'system' ? 'pointer' : 'default',
    }
  })
  // two invisible corners: the graph's box is the whole grid, whatever the nodes
  for (const [name, x, y] of [['bound:start', 0, -ROW / 2],
    ['bound:end', plan.width, plan.height - ROW / 2]] as const) {
    data.push({ id: name, name, x, y, symbol: 'none', symbolSize: 0,
      itemStyle: { color: 'transparent', borderColor: 'transparent', borderWidth: 0 },
      label: { show: false } as never, cursor: 'default' })
  }
  const links = [
    ...hierarchy.map((h) => ({
      source: h.source, target: h.target, symbol: ['none', 'none'],
      lineStyle: { color: '#c0c7d1', width: 1, type: 'solid' as const, curveness: 0, opacity: 1 },
      label: { show: false }, tooltip: { show: false }, silent: true,
    })),
    ...drawn.map((link) => {
      const look = linkLook(link.state)
      const line = lineType(link.state)
      return {
        source: link.source, target: link.target, linkId: link.id,
        symbol: ['none', 'arrow'], symbolSize: 9,
        lineStyle: { color: look.color, width: line.width, type: line.type, opacity: 1,
          curveness: curveness(link, drawn) },
        label: { show: true, position: LINK_LABEL_AT[link.type] ?? 'middle',
          // clear of the node it starts at (a system's radius is 13 px)
          distance: link.type === 'copy' ? 5 : [20, 4],
          formatter: linkLabel(link, t), fontFamily: FONT, fontSize: 12,
          color: look.tone === 'success' ? '#374151' : look.color,
          backgroundColor: 'rgba(255,255,255,0.9)', padding: [1, 3],
          fontWeight: look.tone === 'success' ? 'normal' : 'bold' },
      }
    }),
  ]
  const linkById = new Map(drawn.map((l) => [l.id, l]))
  // written when pointed at, not for every node and link as the chart is first drawn
  const tip = (params: unknown) => {
    const item = (params as { data?: { id?: string; linkId?: string } }).data
    const found = item?.linkId ? linkById.get(item.linkId) : byId.get(item?.id ?? '')
    return found ? tooltipText(found, t, when, names) : ''
  }
  return {
    animation: false,
    tooltip: { trigger: 'item', renderMode: 'richText', confine: true,
      textStyle: { fontFamily: FONT, fontSize: 12 }, formatter: tip },
    series: [{
      type: 'graph', layout: 'none', roam: false, draggable: false,
      left: MARGIN.left, right: MARGIN.right, top: MARGIN.top, bottom: MARGIN.bottom,
      edgeLabel: { show: true },
      emphasis: { focus: 'adjacency', lineStyle: { width: 4 } },
      data, links,
    }],
  } as GraphOption
}

/** How much a link bends: straight-ish, except copies and links that share both ends
 * (two plans copying between the same repositories), each bent further so neither the
 * lines nor their labels lie on each other. */
export function curveness(link: TopoLink, links: readonly TopoLink[]): number {
  const same = links.filter((l) => l.source === link.source && l.target === link.target)
  const index = same.indexOf(link)
  const base = link.type === 'copy' ? 0.2 : 0
  return base + Math.max(0, index) * 0.22
}

/** The chart's height for a layout: its rows at their spacing (the page scrolls), so
 * the graph is not stretched (see columnWidth). */
export function chartHeight(plan: Pick<Layout, 'rows'>): number {
  return plan.rows * ROW + MARGIN.top + MARGIN.bottom
}

export interface LinkRow {
  link: TopoLink
  from: string
  to: string
}

export interface SystemRows {
  system: TopoNode
  institutionTitle: string
  siteTitle: string
  links: LinkRow[]
}

/** The list view: each system (by institution, then title) with its links (backups,
 * their copies, replication), for keyboard and screen-reader users. */
export function systemRows(topology: Topology): SystemRows[] {
  const byId = new Map(topology.nodes.map((n) => [n.id, n]))
  const label = (id: string) => {
    const node = byId.get(id)
    if (!node) return id
    const site = node.parent && node.type !== 'system' ? byId.get(node.parent)?.title : ''
    return site ? `${node.title || node.name} (${site})` : node.title || node.name
  }
  return topology.nodes.filter((n) => n.type === 'system').map((system) => ({
    system,
    institutionTitle: byId.get(`institution:${system.institution}`)?.title || system.institution,
    siteTitle: (system.parent && byId.get(system.parent)?.title) || '',
    links: topology.links
      .filter((l) => l.institution === system.institution && l.system === system.name)
      .map((link) => ({ link, from: label(link.source), to: label(link.target) })),
  })).sort((a, b) => a.institutionTitle.localeCompare(b.institutionTitle)
    || (a.system.title || a.system.name).localeCompare(b.system.title || b.system.name))
}

/** Counts of links per state, for the legend and the screen-reader summary. */
export function stateCounts(topology: Topology): Record<string, number> {
  const counts: Record<string, number> = { ok: 0, lagging: 0, broken: 0, unknown: 0 }
  for (const link of topology.links) counts[link.state] = (counts[link.state] ?? 0) + 1
  return counts
}

export interface InstitutionChoice {
  name: string
  title: string
  systems: number
  problems: number
}

/** The institutions with something to draw, those with link problems first. */
export function institutionChoices(topology: Topology): InstitutionChoice[] {
  return topology.nodes.filter((n) => n.type === 'institution'
    && topology.nodes.some((m) => m.parent === n.id))
    .map((n) => ({
      name: n.institution, title: n.title || n.name,
      systems: topology.nodes.filter((m) => m.type === 'system' && m.institution === n.institution).length,
      problems: topology.links.filter((l) => l.institution === n.institution
        && (l.state === 'broken' || l.state === 'lagging')).length,
    }))
    .sort((a, b) => b.problems - a.problems || a.title.localeCompare(b.title))
}

/** Systems drawn at once before the page narrows a regional center's graph to one
 * institution by default (a taller canvas is slow and hard to read). */
export const MAX_DRAWN_SYSTEMS = 60

/** The institution shown first: none (all) while the whole fits, else the one with the
 * most link problems. */
export function defaultInstitution(topology: Topology): string | null {
  const choices = institutionChoices(topology)
  const systems = choices.reduce((sum, c) => sum + c.systems, 0)
  return choices.length > 1 && systems > MAX_DRAWN_SYSTEMS ? choices[0]!.name : null
}

/** One institution's part of the topology (null: all of it). */
export function narrow(topology: Topology, institution: string | null): Topology {
  if (!institution) return topology
  return { ...topology, institution,
    nodes: topology.nodes.filter((n) => n.institution === institution),
    links: topology.links.filter((l) => l.institution === institution) }
}

export { COLORS }
