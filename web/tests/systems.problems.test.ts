import { describe, expect, it } from 'vitest'
import { diffLines, keyLine, lineOffset, placeProblem, placeProblems } from '@/pages/systems/problems'
import { retentionText } from '@/pages/systems/types'

const DOC = `# hospital
[sites.main]
location = "CN-SC"
colour = "blue"

[repositories.local]
site = "nowhere"
url = "/backup"

[[systems.his.sources]]
type = "postgres"

[plans.his]
system = "his"
schedule = "every tuesday"
retention = { daily = 30 }
`

describe('a problem placed on its line', () => {
  it('takes the line the server named and drops the prefix', () => {
    expect(placeProblem({ field: 'sites.main.colour', message: 'line 4: unknown key' }, DOC))
      .toEqual({ line: 4, field: 'sites.main.colour', text: 'unknown key' })
  })

  it('reads the line of a TOML syntax error', () => {
    const placed = placeProblem({ field: 'document',
      message: 'invalid TOML: Expected value (at line 3, column 12)' }, DOC)
    expect(placed.line).toBe(3)
  })

  it('finds the key when the message has no line', () => {
    expect(placeProblem({ field: 'plans.his.schedule', message: 'not a schedule' }, DOC).line).toBe(15)
    expect(keyLine(DOC, 'repositories.local.site')).toBe(7)
    // a table's own problem: its header
    expect(keyLine(DOC, 'plans.his')).toBe(13)
    // an array of tables: its header
    expect(keyLine(DOC, 'systems.his.sources')).toBe(10)
  })

  it('falls back to the nearest enclosing table, and to none', () => {
    expect(keyLine(DOC, 'plans.his.rpo')).toBe(13)
    expect(keyLine(DOC, 'plans.pacs.rpo')).toBeNull()
    expect(keyLine(DOC, 'document')).toBeNull()
  })
})

describe('problems by line', () => {
  it('groups problems on the same line in line order, and keeps the rest apart', () => {
    const placement = placeProblems([
      { field: 'plans.his.schedule', message: 'line 15: not a schedule' },
      { field: 'sites.main.colour', message: 'line 4: unknown key' },
      { field: 'plans.his.schedule', message: 'line 15: another' },
      { field: 'document', message: 'the document is too long' },
      { field: 'x', message: 'line 999: beyond the end' },
    ], DOC)
    expect([...placement.byLine.keys()]).toEqual([4, 15])
    expect(placement.byLine.get(15)?.map((p) => p.text)).toEqual(['not a schedule', 'another'])
    expect(placement.unplaced.map((p) => p.text)).toEqual(['the document is too long', 'beyond the end'])
    expect(placement.unplaced.every((p) => p.line === null)).toBe(true)
  })
})

describe('diffs and offsets', () => {
  it('marks each line of a unified diff', () => {
    const lines = diffLines('--- v1\n+++ v2\n@@ -1,2 +1,2 @@\n [plans.his]\n-schedule = "0 * * * *"\n+schedule = "*/15 * * * *"\n')
    expect(lines.map((l) => l.kind)).toEqual(['meta', 'meta', 'hunk', 'same', 'remove', 'add'])
    expect(diffLines('')).toEqual([])
  })

  it('puts the cursor at the start of a line', () => {
    expect(lineOffset('ab\ncd\nef', 1)).toBe(0)
    expect(lineOffset('ab\ncd\nef', 3)).toBe(6)
  })

  it('says a retention policy in one line, in the given words', () => {
    expect(retentionText({ daily: 30, weekly: 0, yearly: 15, last: null })).toBe('daily 30 · yearly 15')
    expect(retentionText({ daily: 7 }, (k) => (k === 'daily' ? '每日' : k))).toBe('每日 7')
  })
})
