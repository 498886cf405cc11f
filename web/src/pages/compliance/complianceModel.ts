// The compliance reply (GET /api/institutions/{i}/compliance) -> the page's view: the
// requirements (rows, grouped as the hospital tier, each 等保 level, the rules that
// always apply, Sichuan's, the configuration's own) × the systems (columns), each cell a
// verdict with its evidence; and the items that fail, worst first, each explained.

export type Verdict = 'pass' | 'warn' | 'fail' | 'not covered' | 'n/a'
export const VERDICTS: readonly Verdict[] = ['fail', 'warn', 'not covered', 'pass', 'n/a']
/** The i18n key of a verdict (a space or slash is no key). */
export const verdictKey = (status: string): string =>
  ({ pass: 'pass', warn: 'warn', fail: 'fail', 'not covered': 'notCovered', 'n/a': 'na' } as
    Record<string, string>)[status] ?? 'unknown'

export interface Judged {
  status: string
  evidence: string
}

export interface VerdictView {
  system: string
  requirement: string
  title: string
  source: string
  must: boolean
  status: string
  design: Judged
  measured: Judged
}

export interface ComplianceReply {
  institution: string
  config_version: number
  at: string
  profile: string
  level: number
  sichuan: boolean
  lang: string
  compliant: boolean
  counts: Record<string, number>
  must_not_covered: number
  verdicts: VerdictView[]
}

export type Group = 'tier' | 'level1' | 'level2' | 'level3' | 'level4' | 'always' | 'sichuan' | 'custom'
const GROUP_ORDER: readonly Group[] = ['tier', 'level1', 'level2', 'level3', 'level4', 'always',
  'sichuan', 'custom']
export const TIERS = ['二级', '三乙', '三甲'] as const

/** Which part of the rules a requirement belongs to, from its id (policy/
 * compliance_profiles.py): `三甲.local.rpo` the tier, `djbh.3.hot` 等保 level 3,
 * `records.retention` and `residency` always, `sichuan.*` Sichuan's review. */
export function groupOf(requirement: string, profile: string): Group {
  const head = requirement.split('.')[0] ?? ''
  if ((TIERS as readonly string[]).includes(head) || head === profile) return 'tier'
  const level = /^djbh\.([1-4])\./.exec(requirement)
  if (level) return `level${level[1]}` as Group
  if (['records', 'residency'].includes(head)) return 'always'
  if (head === 'sichuan') return 'sichuan'
  return 'custom'
}

export interface MatrixRow {
  requirement: string
  title: string
  source: string
  must: boolean
  group: Group
  /** The first row of its group (the group's heading goes above it). */
  first: boolean
  cells: Record<string, VerdictView | undefined>
  /** The worst verdict over the systems. */
  worst: string
}

const RANK: Record<string, number> = { fail: 4, warn: 3, 'not covered': 2, pass: 1, 'n/a': 0 }
export const worse = (a: string, b: string): string => ((RANK[b] ?? 0) > (RANK[a] ?? 0) ? b : a)

export interface ComplianceView {
  systems: string[]
  rows: MatrixRow[]
  failing: VerdictView[]
  counts: { status: Verdict; n: number }[]
  compliant: boolean
  mustNotCovered: number
}

export function complianceView(reply: ComplianceReply): ComplianceView {
  const systems = [...new Set(reply.verdicts.map((v) => v.system))].sort()
  const byRequirement = new Map<string, MatrixRow>()
  for (const verdict of reply.verdicts) {
    let row = byRequirement.get(verdict.requirement)
    if (!row) {
      row = { requirement: verdict.requirement, title: verdict.title, source: verdict.source,
        must: verdict.must, group: groupOf(verdict.requirement, reply.profile), first: false,
        cells: {}, worst: 'n/a' }
      byRequirement.set(verdict.requirement, row)
    }
    row.cells[verdict.system] = verdict
    row.must = row.must || verdict.must
    row.worst = worse(row.worst, verdict.status)
  }
  const order = [...byRequirement.keys()]
  const rows = [...byRequirement.values()].sort((a, b) =>
    GROUP_ORDER.indexOf(a.group) - GROUP_ORDER.indexOf(b.group)
    || order.indexOf(a.requirement) - order.indexOf(b.requirement))
  rows.forEach((row, i) => { row.first = i === 0 || rows[i - 1]?.group !== row.group })
  const failing = reply.verdicts.filter((v) => v.status === 'fail' || v.status === 'warn'
    || (v.status === 'not covered' && v.must))
    .sort((a, b) => (RANK[b.status] ?? 0) - (RANK[a.status] ?? 0) || Number(b.must) - Number(a.must)
      || a.system.localeCompare(b.system) || order.indexOf(a.requirement) - order.indexOf(b.requirement))
  const counts = VERDICTS.map((status) => ({ status, n: reply.counts[status] ?? 0 }))
  return { systems, rows, failing, counts, compliant: reply.compliant,
    mustNotCovered: reply.must_not_covered }
}

/** The server's language for the evidence texts, from the console's locale. */
export const complianceLang = (locale: string): 'zh' | 'en' => (locale.startsWith('zh') ? 'zh' : 'en')
