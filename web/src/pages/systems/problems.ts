// The server's validation problems placed on the configuration document's lines: a 422
// `invalid_config` lists each problem as {field: the key (plans.his.schedule) or
// `document`, message: "line N: what is wrong"} (server/configs.py ConfigRejected); a
// TOML syntax error says "(at line N, column M)". A problem without a line is placed on
// the line that defines its key, when the document has one.
import type { Problem } from '@/api/client'

export interface PlacedProblem {
  /** 1-based line of the document, or null when none could be found. */
  line: number | null
  field: string
  /** What is wrong, without its "line N:" prefix. */
  text: string
}

const LINE_PREFIX = /^line (\d+):\s*/
const AT_LINE = /\bat line (\d+)/

/** The table header of a TOML line (`[plans.his]`, `[[hooks]]`), or null. */
function header(line: string): string | null {
  const match = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(line)
  return match ? match[1]!.replace(/\s*\.\s*/g, '.').replace(/"/g, '') : null
}

/** The key a `key = value` line sets (dotted keys kept), or null. */
function assigned(line: string): string | null {
  const match = /^\s*([A-Za-z0-9_.\-" ]+?)\s*=/.exec(line)
  return match ? match[1]!.replace(/\s*\.\s*/g, '.').replace(/"/g, '') : null
}

/** The 1-based line that defines a dotted key: `key = ...` under its table, or the
 * table's header; the nearest enclosing table when the key itself is absent. */
export function keyLine(document: string, key: string): number | null {
  if (!key || key === 'document') return null
  let table = ''
  let exact: number | null = null
  let nearest: { line: number; depth: number } | null = null
  const consider = (path: string, line: number) => {
    if (path === key) {
      exact ??= line
    } else if (key.startsWith(`${path}.`)) {
      const depth = path.split('.').length
      if (!nearest || depth > nearest.depth) nearest = { line, depth }
    }
  }
  document.split('\n').forEach((text, index) => {
    const head = header(text)
    if (head !== null) {
      table = head
      consider(head, index + 1)
      return
    }
    const name = assigned(text)
    if (name !== null) consider(table ? `${table}.${name}` : name, index + 1)
  })
  return exact ?? (nearest as { line: number } | null)?.line ?? null
}

/** One problem with its line: the message's own, else its key's line. */
export function placeProblem(problem: Problem, document: string): PlacedProblem {
  const prefixed = LINE_PREFIX.exec(problem.message)
  if (prefixed) {
    return { line: Number(prefixed[1]), field: problem.field,
      text: problem.message.slice(prefixed[0].length) }
  }
  const at = AT_LINE.exec(problem.message)
  if (at) return { line: Number(at[1]), field: problem.field, text: problem.message }
  return { line: keyLine(document, problem.field), field: problem.field, text: problem.message }
}

export interface Placement {
  /** Problems by line, in line order. */
  byLine: Map<number, PlacedProblem[]>
  /** Problems with no line in the document. */
  unplaced: PlacedProblem[]
}

/** Every problem placed; lines beyond the document's end count as unplaced. */
export function placeProblems(problems: readonly Problem[], document: string): Placement {
  const count = document.split('\n').length
  const byLine = new Map<number, PlacedProblem[]>()
  const unplaced: PlacedProblem[] = []
  for (const problem of problems) {
    const placed = placeProblem(problem, document)
    if (placed.line === null || placed.line < 1 || placed.line > count) {
      unplaced.push({ ...placed, line: null })
      continue
    }
    byLine.set(placed.line, [...(byLine.get(placed.line) ?? []), placed])
  }
  return { byLine: new Map([...byLine].sort((a, b) => a[0] - b[0])), unplaced }
}

/** A unified diff's lines with their kind, for colouring with a sign beside. */
export type DiffKind = 'add' | 'remove' | 'hunk' | 'meta' | 'same'

export function diffLines(diff: string): { kind: DiffKind; text: string }[] {
  if (!diff) return []
  return diff.replace(/\n$/, '').split('\n').map((text) => {
    if (text.startsWith('+++') || text.startsWith('---')) return { kind: 'meta' as const, text }
    if (text.startsWith('@@')) return { kind: 'hunk' as const, text }
    if (text.startsWith('+')) return { kind: 'add' as const, text }
    if (text.startsWith('-')) return { kind: 'remove' as const, text }
    return { kind: 'same' as const, text }
  })
}

/** The character offset of a 1-based line's start (to put the cursor there). */
export function lineOffset(document: string, line: number): number {
  let offset = 0
  const lines = document.split('\n')
  for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i]!.length + 1
  return offset
}
