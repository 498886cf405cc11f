import { describe, expect, it } from 'vitest'
import { complianceLang, complianceView, groupOf, verdictKey, worse, type ComplianceReply,
  type VerdictView } from '@/pages/compliance/complianceModel'

const verdict = (system: string, requirement: string, status: string, must = true): VerdictView => ({
  system, requirement, title: `${requirement} title`, source: 'src', must, status,
  design: { status, evidence: `design of ${system}` }, measured: { status, evidence: `measured of ${system}` } })

const reply = (verdicts: VerdictView[]): ComplianceReply => ({
  institution: 'a', config_version: 1, at: '2026-12-06T00:00:00Z', profile: '三乙', level: 3,
  sichuan: false, lang: 'zh', compliant: false, counts: { fail: 2, pass: 1, 'not covered': 1 },
  must_not_covered: 1, verdicts })

describe('the compliance view', () => {
  it('groups requirements as the tier, each 等保 level, always, Sichuan and custom', () => {
    expect(groupOf('三乙.local.rpo', '三乙')).toBe('tier')
    expect(groupOf('三甲.dr.rto', '三甲')).toBe('tier')
    expect(groupOf('djbh.1.local', '三乙')).toBe('level1')
    expect(groupOf('djbh.3.hot', '三乙')).toBe('level3')
    expect(groupOf('records.retention', '三乙')).toBe('always')
    expect(groupOf('residency', '三乙')).toBe('always')
    expect(groupOf('sichuan.1.4.2', '三乙')).toBe('sichuan')
    expect(groupOf('county.pacs.rto', 'county')).toBe('tier')
    expect(groupOf('group.pacs.rto', 'county')).toBe('custom')
  })

  it('makes a requirement × system table, the tier first, each row\'s worst verdict', () => {
    const view = complianceView(reply([
      verdict('pacs', 'djbh.2.offsite', 'pass'), verdict('his', 'djbh.2.offsite', 'fail'),
      verdict('his', '三乙.local.rpo', 'pass'), verdict('pacs', '三乙.local.rpo', 'not covered'),
      verdict('his', 'djbh.1.local', 'pass'), verdict('his', 'residency', 'n/a', false)]))
    expect(view.systems).toEqual(['his', 'pacs'])
    expect(view.rows.map((r) => [r.requirement, r.group, r.first, r.worst])).toEqual([
      ['三乙.local.rpo', 'tier', true, 'not covered'],
      ['djbh.1.local', 'level1', true, 'pass'],
      ['djbh.2.offsite', 'level2', true, 'fail'],
      ['residency', 'always', true, 'n/a']])
    expect(view.rows[2]?.cells.his?.measured.evidence).toBe('measured of his')
    expect(view.rows[1]?.cells.pacs).toBeUndefined()
  })

  it('lists failing items worst first: fail, warn, then musts not covered', () => {
    const view = complianceView(reply([
      verdict('his', 'a.x', 'warn', false), verdict('his', 'b.y', 'not covered', false),
      verdict('pacs', 'c.z', 'not covered', true), verdict('his', 'd.w', 'fail'),
      verdict('his', 'e.v', 'pass')]))
    expect(view.failing.map((v) => [v.system, v.requirement])).toEqual([
      ['his', 'd.w'], ['his', 'a.x'], ['pacs', 'c.z']])
  })

  it('counts every verdict kind, zero when absent, and keeps the summary', () => {
    const view = complianceView(reply([]))
    expect(view.counts).toEqual([{ status: 'fail', n: 2 }, { status: 'warn', n: 0 },
      { status: 'not covered', n: 1 }, { status: 'pass', n: 1 }, { status: 'n/a', n: 0 }])
    expect([view.compliant, view.mustNotCovered]).toEqual([false, 1])
  })

  it('names verdicts by i18n keys and ranks them', () => {
    expect(['pass', 'warn', 'fail', 'not covered', 'n/a', 'odd'].map(verdictKey)).toEqual([
      'pass', 'warn', 'fail', 'notCovered', 'na', 'unknown'])
    expect(worse('warn', 'fail')).toBe('fail')
    expect(worse('fail', 'pass')).toBe('fail')
    expect(complianceLang('zh-CN')).toBe('zh')
    expect(complianceLang('en')).toBe('en')
  })
})
