// The restore wizard's DICOM study search (GET …/snapshots/ID/dicom): its filters as
// the query, and the studies (or series of them) chosen for POST …/restores `dicom`.
// Pure: DicomSearch.vue draws it.
import type { DicomStudy } from './types'

export interface DicomFilters {
  patientId: string
  name: string
  accession: string
  modality: string
  /** YYYY-MM-DD or '' (the date picker's value format). */
  dateFrom: string
  dateTo: string
}

/** A study chosen whole (`series` empty) or only these series of it; `patient` and
 * `label` (what the search showed) only for the side panel and the summary. */
export interface DicomPick {
  study: string
  series: string[]
  patient?: string
  label?: string
}

/** The most restores one request names (a study, or each series chosen): the
 * server's and the agent's limit. */
export const MAX_DICOM = 100

export function emptyFilters(): DicomFilters {
  return { patientId: '', name: '', accession: '', modality: '', dateFrom: '', dateTo: '' }
}

/** Whether any filter is given (a search with none lists the whole catalog). */
export function anyFilter(f: DicomFilters): boolean {
  return Object.values(f).some((v) => v.trim() !== '')
}

/** The search's query parameters: the filters given, trimmed. */
export function queryOf(f: DicomFilters): Record<string, string> {
  const pairs: [string, string][] = [['patient_id', f.patientId], ['name', f.name],
    ['accession', f.accession], ['modality', f.modality], ['date_from', f.dateFrom],
    ['date_to', f.dateTo]]
  return Object.fromEntries(pairs.map(([k, v]) => [k, v.trim()]).filter(([, v]) => v))
}

/** A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is. */
export function dicomDate(value: string): string {
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}`
    : value
}

/** A DICOM person name (family^given^…) for reading: the parts joined by a space, or
 * with none for a Chinese, Japanese or Korean name (张^三 is 张三). */
export function personName(value: string): string {
  const parts = value.split('=')[0]!.split('^').filter(Boolean)
  return parts.join(parts.some((p) => /[\u3040-\u9fff\uac00-\ud7af]/.test(p)) ? '' : ' ')
}

export type Checked = 'all' | 'some' | 'none'

/** How much of a study is chosen: all of it, some series, or none. */
export function studyChecked(picks: readonly DicomPick[], study: DicomStudy): Checked {
  const pick = picks.find((p) => p.study === study.study_uid)
  if (!pick) return 'none'
  if (!pick.series.length) return 'all'
  const all = study.series.every((s) => pick.series.includes(s.series_uid))
  return all ? 'all' : 'some'
}

export function seriesChecked(picks: readonly DicomPick[], study: string,
  series: string): boolean {
  const pick = picks.find((p) => p.study === study)
  return !!pick && (!pick.series.length || pick.series.includes(series))
}

/** Choose a whole study, or unchoose it when all of it is chosen. */
export function toggleStudy(picks: readonly DicomPick[], study: DicomStudy): DicomPick[] {
  const others = picks.filter((p) => p.study !== study.study_uid)
  return studyChecked(picks, study) === 'all' ? others
    : [...others, { ...labelOf(study), study: study.study_uid, series: [] }]
}

/** Choose or unchoose one series of a study; all of them chosen is the whole study,
 * none the study unchosen. */
export function toggleSeries(picks: readonly DicomPick[], study: DicomStudy,
  series: string): DicomPick[] {
  const all = study.series.map((s) => s.series_uid)
  const pick = picks.find((p) => p.study === study.study_uid)
  const chosen = !pick ? [] : pick.series.length ? pick.series : all
  const next = chosen.includes(series) ? chosen.filter((s) => s !== series)
    : [...chosen, series]
  const others = picks.filter((p) => p.study !== study.study_uid)
  if (!next.length) return others
  const whole = all.every((s) => next.includes(s))
  return [...others, { ...labelOf(study), study: study.study_uid,
    series: whole ? [] : all.filter((s) => next.includes(s)) }]
}

/** The restores a choice makes (one per whole study, one per series otherwise). */
export function restoreCount(picks: readonly DicomPick[]): number {
  return picks.reduce((n, p) => n + Math.max(1, p.series.length), 0)
}

/** What the side panel and the summary show of a chosen study. */
export function labelOf(s: DicomStudy): { patient: string; label: string } {
  return { patient: `${personName(s.patient_name)} ${s.patient_id}`.trim(),
    label: [dicomDate(s.study_date), s.accession, s.study_description].filter(Boolean)
      .join(' · ') }
}
