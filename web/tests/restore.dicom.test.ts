import { describe, expect, it } from 'vitest'
import {
  anyFilter, dicomDate, emptyFilters, labelOf, MAX_DICOM, personName, queryOf, restoreCount,
  seriesChecked, studyChecked, toggleSeries, toggleStudy, type DicomPick,
} from '@/pages/restore/dicom'
import { blocker, initial, reduce, restoreBody, type Action, type WizardState } from '@/pages/restore/wizard'
import type { DicomStudy, Point } from '@/pages/restore/types'
import type { Choice } from '@/pages/restore/timeline'

const study = (uid: string, series: string[]): DicomStudy => ({
  study_uid: uid, patient_id: 'P000123', patient_name: '张^三', accession: 'ACC1001',
  study_date: '20261103', study_description: '胸部CT平扫', modalities: ['CT'],
  series_count: series.length, instances: series.length * 2, size: 1000,
  series: series.map((s) => ({ series_uid: s, modality: 'CT', instances: 2, size: 500 })) })
const S1 = study('1.2.1', ['1.2.1.1', '1.2.1.2'])
const S2 = study('1.2.2', ['1.2.2.1'])
const point: Point = { id: 'a'.repeat(64), short_id: 'aaaaaaaa', time: '2026-12-01T02:00:00Z',
  host: 'pacs', tags: ['system=pacs'], paths: ['/data'], size: 1, repository: 'local',
  dicom_instances: 12 }
const onPoint: Choice = { kind: 'point', point, at: Date.parse(point.time) }
const run = (state: WizardState, ...actions: Action[]) => actions.reduce(reduce, state)
const atItems = () => run(initial('hosp-a'), { type: 'system', name: 'pacs' }, { type: 'next' },
  { type: 'choose', choice: onPoint }, { type: 'next' })

describe('the DICOM study search model', () => {
  it('sends only the filters given, trimmed', () => {
    const f = { ...emptyFilters(), name: ' 张 ', modality: 'CT', dateFrom: '2026-11-01' }
    expect(queryOf(f)).toEqual({ name: '张', modality: 'CT', date_from: '2026-11-01' })
    expect(anyFilter(emptyFilters())).toBe(false)
    expect(anyFilter(f)).toBe(true)
    expect(queryOf(emptyFilters())).toEqual({})
  })

  it('reads DICOM dates and person names', () => {
    expect(dicomDate('20261103')).toBe('2026-11-03')
    expect(dicomDate('')).toBe('')
    expect(personName('张^三')).toBe('张三')
    expect(personName('Smith^John^^Dr=スミス')).toBe('Smith John Dr')
    expect(labelOf(S1)).toEqual({ patient: '张三 P000123', label: '2026-11-03 · ACC1001 · 胸部CT平扫' })
  })

  it('chooses whole studies and single series, and folds all series into the study', () => {
    let picks: DicomPick[] = toggleStudy([], S1)
    expect(picks).toMatchObject([{ study: '1.2.1', series: [] }])
    expect(studyChecked(picks, S1)).toBe('all')
    expect(seriesChecked(picks, '1.2.1', '1.2.1.2')).toBe(true)
    picks = toggleSeries(picks, S1, '1.2.1.1') // one series of two left
    expect(picks).toMatchObject([{ study: '1.2.1', series: ['1.2.1.2'] }])
    expect(studyChecked(picks, S1)).toBe('some')
    expect(seriesChecked(picks, '1.2.1', '1.2.1.1')).toBe(false)
    picks = toggleStudy(picks, S1) // a partly chosen study becomes whole
    expect(picks).toMatchObject([{ study: '1.2.1', series: [] }])
    picks = toggleSeries(toggleSeries(picks, S1, '1.2.1.1'), S1, '1.2.1.2')
    expect(picks).toEqual([])
    picks = toggleSeries(toggleSeries([], S1, '1.2.1.2'), S1, '1.2.1.1')
    expect(picks).toMatchObject([{ study: '1.2.1', series: [] }])
    picks = toggleStudy(picks, S2)
    expect(restoreCount(picks)).toBe(2)
    expect(toggleStudy(picks, S1).map((p) => p.study)).toEqual(['1.2.2'])
    expect(restoreCount([{ study: 'x', series: ['a', 'b', 'c'] }])).toBe(3)
  })
})

describe('studies in the restore wizard', () => {
  it('restores chosen studies by the catalog instead of paths', () => {
    let state = run(atItems(), { type: 'dicom', picks: toggleSeries([], S1, '1.2.1.2') })
    expect(blocker(state)).toBe('target')
    state = run(state, { type: 'target', name: 'scratch' }, { type: 'next' })
    expect(state.step).toBe('confirm')
    expect(restoreBody(state)).toEqual({ snapshot: point.id, target: 'scratch',
      dicom: [{ study: '1.2.1', series: ['1.2.1.2'] }] })
  })

  it('keeps files and studies apart, and forgets studies with another snapshot', () => {
    let state = run(atItems(), { type: 'toggle', path: '/data/x.dcm' },
      { type: 'dicom', picks: toggleStudy([], S1) })
    expect([state.paths, state.dicom.length]).toEqual([[], 1])
    state = run(state, { type: 'toggle', path: '/data/x.dcm' })
    expect([state.paths, state.dicom]).toEqual([['/data/x.dcm'], []])
    state = run(state, { type: 'dicom', picks: toggleStudy([], S2) }, { type: 'whole', value: true })
    expect(state.dicom).toEqual([])
    state = run(state, { type: 'whole', value: false }, { type: 'dicom', picks: toggleStudy([], S2) })
    const other: Choice = { kind: 'point', point: { ...point, id: 'b'.repeat(64) }, at: 1 }
    expect(run(state, { type: 'choose', choice: other }).dicom).toEqual([])
    expect(run(state, { type: 'choose', choice: onPoint }).dicom).toHaveLength(1)
  })

  it('refuses more restores than the agent takes', () => {
    const many = Array.from({ length: MAX_DICOM + 1 }, (_, i) => ({ study: `1.${i}`, series: [] }))
    const state = run(atItems(), { type: 'dicom', picks: many }, { type: 'target', name: 'scratch' })
    expect(blocker(state)).toBe('tooManyStudies')
  })
})
