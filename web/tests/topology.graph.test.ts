import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { messages } from '@/i18n'
import { chartHeight, COLUMN, columnOf, columnWidth, curveness, defaultInstitution, graphOption,
  institutionChoices, MARGIN, MAX_DRAWN_SYSTEMS, narrow, layout, lineType, linkLabel, nodeLabel, ROW,
  stateCounts, systemRows, tooltipText } from '@/pages/topology/graph'
import type { TopoLink, TopoNode, Topology } from '@/pages/topology/types'

const i18n = createI18n({ legacy: false, locale: 'en', messages })
const t = (key: string, values?: Record<string, unknown>) => i18n.global.t(key, values ?? {})
/** Ages keep their words together with no-break spaces; compared as plain spaces. */
const sp = (text: string | undefined) => (text ?? '').replace(/\u00a0/g, ' ')

function node(type: TopoNode['type'], inst: string, name: string, parent: string | null,
  fields: Partial<TopoNode> = {}): TopoNode {
  const id = type === 'institution' ? `institution:${inst}` : `${type}:${inst}/${name}`
  return { id, type, institution: inst, name, title: name.toUpperCase(), parent, status: null,
    site: null, location: null, role: null, url: null, kind: null, criticality: null, ...fields }
}

function link(type: TopoLink['type'], inst: string, name: string, source: string, target: string,
  fields: Partial<TopoLink> = {}): TopoLink {
  return { id: `${type}:${inst}/${name}`, type, institution: inst, source, target, plan: name,
    system: name, offsite: false, state: 'ok', lag_seconds: null, lag_bytes: null, last_at: null,
    ...fields }
}

// the shape GET /api/topology answers for tests/server/test_server_dashboard_cli.py's hosp-a
const topology: Topology = {
  generated_at: '2026-12-06T10:00:00Z', institution: null,
  nodes: [
    node('institution', 'hosp-a', 'hosp-a', null, { title: 'County hospital' }),
    node('site', 'hosp-a', 'main', 'institution:hosp-a', { title: 'Main' }),
    node('site', 'hosp-a', 'east', 'institution:hosp-a', { title: 'East' }),
    node('repository', 'hosp-a', 'local', 'site:hosp-a/main', { url: '/backup' }),
    node('repository', 'hosp-a', 'offsite', 'site:hosp-a/east',
      { url: 'sftp://backup@10.0.0.9/medark' }),
    node('system', 'hosp-a', 'his', 'site:hosp-a/main', { status: 'ok', title: 'HIS' }),
    node('system', 'hosp-a', 'pacs', 'site:hosp-a/main', { status: 'critical', title: 'PACS' }),
    node('system', 'hosp-a', 'lis', 'site:hosp-a/main', { status: 'warning', title: 'LIS' }),
    node('standby', 'hosp-a', 'lis', 'site:hosp-a/east', { status: 'lagging', title: 'LIS', kind: 'postgres' }),
    node('institution', 'hosp-b', 'hosp-b', null),
    node('site', 'hosp-b', 'main', 'institution:hosp-b'),
    node('repository', 'hosp-b', 'local', 'site:hosp-b/main'),
    node('system', 'hosp-b', 'his', 'site:hosp-b/main', { status: 'unknown' }),
  ],
  links: [
    link('backup', 'hosp-a', 'his', 'system:hosp-a/his', 'repository:hosp-a/local', { lag_seconds: 7200 }),
    link('backup', 'hosp-a', 'pacs', 'system:hosp-a/pacs', 'repository:hosp-a/local',
      { state: 'broken', lag_seconds: 3 * 86400 }),
    link('backup', 'hosp-a', 'lis', 'system:hosp-a/lis', 'repository:hosp-a/local', { lag_seconds: 300 }),
    link('copy', 'hosp-a', 'his>offsite', 'repository:hosp-a/local', 'repository:hosp-a/offsite',
      { system: 'his', plan: 'his', offsite: true, lag_seconds: 5400, last_at: '2026-12-06T08:30:00Z' }),
    link('replication', 'hosp-a', 'lis', 'system:hosp-a/lis', 'standby:hosp-a/lis',
      { state: 'lagging', lag_seconds: 95, lag_bytes: 4096, offsite: true }),
    link('backup', 'hosp-b', 'his', 'system:hosp-b/his', 'repository:hosp-b/local', { state: 'unknown' }),
  ],
}

describe('the layout', () => {
  it('puts sites, systems, their repositories, then copies and standbys in columns', () => {
    const targets = new Set(['repository:hosp-a/local'])
    expect(columnOf(topology.nodes[1]!, targets)).toBe(1)
    expect(columnOf(topology.nodes[5]!, targets)).toBe(2)
    expect(columnOf(topology.nodes[3]!, targets)).toBe(3)
    expect(columnOf(topology.nodes[4]!, targets)).toBe(4)
    expect(columnOf(topology.nodes[8]!, targets)).toBe(3)  // a standby: straight from its system
  })

  it('leaves out an institution with nothing configured', () => {
    const bare = { ...topology, nodes: [...topology.nodes, node('institution', 'center', 'center', null)] }
    const plan = layout(bare)
    expect(plan.placed.map((p) => p.node.id)).not.toContain('institution:center')
    expect(plan.rows).toBe(layout(topology).rows)
    const option = graphOption({ topology: bare, t, when: () => '' })
    const data = (option.series as { data: { id: string }[] }[])[0]!.data
    expect(data.map((d) => d.id)).not.toContain('institution:center')
  })

  it('gives each institution its own band, as tall as its fullest column', () => {
    const plan = layout(topology)
    const at = (id: string) => plan.placed.find((p) => p.node.id === id)!
    expect(plan.placed).toHaveLength(topology.nodes.length)
    // hosp-a: three systems is the fullest column; a blank row; then hosp-b's one row
    // hosp-a: three systems (and a repository and a standby) is the fullest column; a
    // blank row; then hosp-b's one row
    expect(plan.rows).toBe(3 + 1 + 1)
    expect(at('repository:hosp-a/local').y).toBeLessThan(at('standby:hosp-a/lis').y)
    expect(at('system:hosp-b/his').y).toBeGreaterThan(at('system:hosp-a/lis').y)
    expect(at('system:hosp-b/his').y).toBe(4 * ROW)
    // a single node of a column sits in the middle of its band
    expect(at('institution:hosp-a').y).toBe(ROW)
    expect(new Set(plan.placed.map((p) => `${p.x},${p.y}`)).size).toBe(plan.placed.length)
    expect(chartHeight(plan)).toBe(plan.rows * ROW + MARGIN.top + MARGIN.bottom)
  })
})

describe('labels', () => {
  it('say a problem in words and a symbol, not only in colour', () => {
    const broken = topology.links[1]!
    expect(sp(linkLabel(broken, t))).toBe('✖ Broken · 3 d')
    expect(sp(linkLabel(topology.links[0]!, t))).toBe('✔ OK · 2 h')
    expect(linkLabel(topology.links[5]!, t)).toBe('? Unknown')
    expect(lineType('ok').type).toBe('solid')
    expect(lineType('lagging').type).toBe('dashed')
    expect(lineType('broken').type).toBe('dotted')
    expect(lineType('unknown').type).toEqual([10, 6])
  })

  it('name a system with its status, a standby and a repository with their site', () => {
    const sites = (id: string | null) => ({ 'site:hosp-a/east': 'East' } as Record<string, string>)[id ?? ''] ?? ''
    expect(nodeLabel(topology.nodes[6]!, t, sites)).toBe('PACS\n✖ Critical')
    expect(nodeLabel(topology.nodes[8]!, t, sites)).toBe('LIS standby\n▲ Lagging · East')
    expect(nodeLabel(topology.nodes[4]!, t, sites)).toBe('OFFSITE\nEast')
  })

  it('tooltips are plain text (drawn on the canvas: no HTML under the CSP)', () => {
    const names = (id: string) => id
    const text = sp(tooltipText(topology.links[4]!, t, () => 'then', names))
    expect(text).toContain('Replication: system:hosp-a/lis → standby:hosp-a/lis')
    expect(text).toContain('▲ Lagging')
    expect(text).toContain('1 min')
    expect(text).not.toMatch(/</)
    expect(tooltipText(topology.nodes[5]!, t, () => '', names)).toContain('Click to open')
  })
})

describe('the chart option', () => {
  const option = graphOption({ topology, t, when: () => 'then' })
  const series = (option.series as Record<string, unknown>[])[0]! as {
    type: string; layout: string; data: { id: string; x: number; y: number; symbol: string;
      itemStyle: { color: string }; cursor: string }[];
    links: { source: string; target: string; lineStyle: { type: unknown; color: string };
      label: { show: boolean; formatter?: string }; silent?: boolean }[] }

  it('is one graph series with fixed positions and a canvas tooltip', () => {
    expect(series.type).toBe('graph')
    expect(series.layout).toBe('none')
    expect((option.tooltip as { renderMode: string }).renderMode).toBe('richText')
    expect(series.data.filter((d) => !d.id.startsWith('bound:'))).toHaveLength(topology.nodes.length)
  })

  it('writes a tooltip when pointed at: a node\'s, a link\'s, nothing for the rest', () => {
    const tip = (option.tooltip as { formatter: (params: unknown) => string }).formatter
    const names = (id: string) => topology.nodes.find((n) => n.id === id)?.title ?? id
    const node = topology.nodes[5]!
    expect(tip({ data: { id: node.id } })).toBe(tooltipText(node, t, () => 'then', names))
    const link = series.links.find((l) => 'linkId' in l) as unknown as { linkId: string }
    const source = topology.links.find((l) => l.id === link.linkId)!
    expect(tip({ data: link })).toBe(tooltipText(source, t, () => 'then', names))
    expect(tip({ data: { id: 'bound:start' } })).toBe('')
  })

  it('spans the chart\'s whole box, so ECharts scales x and y alike (nothing stretched)', () => {
    const width = 1124
    const made = graphOption({ topology, t, when: () => '', width })
    const nodes = (made.series as { data: { x: number; y: number }[] }[])[0]!.data
    const xs = nodes.map((d) => d.x)
    const ys = nodes.map((d) => d.y)
    const plan = layout(topology)
    const boxWidth = width - MARGIN.left - MARGIN.right
    const boxHeight = chartHeight(plan) - MARGIN.top - MARGIN.bottom
    expect(Math.max(...xs) - Math.min(...xs)).toBeCloseTo(boxWidth)
    expect(Math.max(...ys) - Math.min(...ys)).toBeCloseTo(boxHeight)
    expect(columnWidth(width)).toBeCloseTo(boxWidth / 4)
    expect(columnWidth(undefined)).toBe(COLUMN)
  })

  it('colours and shapes nodes by type and status; only systems look clickable', () => {
    const byId = new Map(series.data.map((d) => [d.id, d]))
    expect(byId.get('system:hosp-a/pacs')!.itemStyle.color).toBe('#c62828')
    expect(byId.get('system:hosp-a/his')!.itemStyle.color).toBe('#1e7e34')
    expect(byId.get('standby:hosp-a/lis')!.symbol).toBe('diamond')
    expect(byId.get('repository:hosp-a/local')!.symbol).toBe('rect')
    expect(byId.get('system:hosp-a/his')!.cursor).toBe('pointer')
    expect(byId.get('repository:hosp-a/local')!.cursor).toBe('default')
  })

  it('draws every link with its state\'s colour, dash and label, and the hierarchy quietly', () => {
    const real = series.links.filter((l) => !l.silent)
    expect(real).toHaveLength(topology.links.length)
    const pacs = real.find((l) => l.source === 'system:hosp-a/pacs')!
    expect(pacs.lineStyle).toMatchObject({ type: 'dotted', color: '#c62828' })
    expect(sp(pacs.label.formatter)).toBe('✖ Broken · 3 d')
    const quiet = series.links.filter((l) => l.silent)
    expect(quiet.map((l) => `${l.source}>${l.target}`)).toContain('site:hosp-a/main>system:hosp-a/his')
    expect(quiet.every((l) => l.label.show === false)).toBe(true)
  })

  it('leaves out a link whose end is not a node', () => {
    const broken = { ...topology, links: [...topology.links,
      link('copy', 'hosp-a', 'x', 'repository:hosp-a/local', 'repository:hosp-a/gone')] }
    const made = graphOption({ topology: broken, t, when: () => '' })
    const links = (made.series as { links: { silent?: boolean }[] }[])[0]!.links
    expect(links.filter((l) => !l.silent)).toHaveLength(topology.links.length)
  })
})

describe('links between the same two nodes', () => {
  it('bend apart, so neither they nor their labels lie on each other', () => {
    const a = link('copy', 'hosp-a', 'his>offsite', 'repository:hosp-a/local', 'repository:hosp-a/offsite')
    const b = link('copy', 'hosp-a', 'pacs>offsite', 'repository:hosp-a/local', 'repository:hosp-a/offsite')
    const backup = topology.links[0]!
    const all = [a, b, backup]
    expect(curveness(backup, all)).toBe(0)
    expect(curveness(a, all)).toBeCloseTo(0.2)
    expect(curveness(b, all)).toBeCloseTo(0.42)
  })
})

describe('a regional center\'s many institutions', () => {
  it('are offered with their link problems first, each narrowing the graph to itself', () => {
    expect(institutionChoices(topology)).toEqual([
      { name: 'hosp-a', title: 'County hospital', systems: 3, problems: 2 },
      { name: 'hosp-b', title: 'HOSP-B', systems: 1, problems: 0 },
    ])
    const b = narrow(topology, 'hosp-b')
    expect(new Set(b.nodes.map((n) => n.institution))).toEqual(new Set(['hosp-b']))
    expect(b.links.map((l) => l.id)).toEqual(['backup:hosp-b/his'])
    expect(narrow(topology, null)).toBe(topology)
  })

  it('are all drawn while they fit, else the one with the most problems first', () => {
    expect(defaultInstitution(topology)).toBeNull()
    const many: Topology = { ...topology, nodes: [...topology.nodes] }
    for (let i = 0; i <= MAX_DRAWN_SYSTEMS; i++) {
      many.nodes.push(node('system', 'hosp-b', `s${i}`, 'site:hosp-b/main'))
    }
    expect(defaultInstitution(many)).toBe('hosp-a')
    const alone = narrow(many, 'hosp-b')
    expect(defaultInstitution(alone)).toBeNull()  // one institution: nothing to narrow
  })
})

describe('the list view', () => {
  it('has each system with its links, by institution then title', () => {
    const rows = systemRows(topology)
    expect(rows.map((r) => r.system.id)).toEqual(['system:hosp-a/his', 'system:hosp-a/lis',
      'system:hosp-a/pacs', 'system:hosp-b/his'])
    const his = rows[0]!
    expect(his.institutionTitle).toBe('County hospital')
    expect(his.siteTitle).toBe('Main')
    expect(his.links.map((l) => l.link.type)).toEqual(['backup', 'copy'])
    expect(his.links[1]).toMatchObject({ from: 'LOCAL (Main)', to: 'OFFSITE (East)' })
    expect(rows[1]!.links.map((l) => l.to)).toEqual(['LOCAL (Main)', 'LIS (East)'])
  })

  it('counts links per state', () => {
    expect(stateCounts(topology)).toEqual({ ok: 3, lagging: 1, broken: 1, unknown: 1 })
  })
})
