import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { messages } from '@/i18n'
import type { Job, JobEvent } from '@/api/types'
import { actionOfJob, canConfirm, drRequest, drRows, drState, drillSchedules, formatStepSeconds,
  historyRows, stepLook, stepsOf, stepsOfJob, totalSeconds, type DrReported } from '@/pages/dr/drModel'

const i18n = createI18n({ legacy: false, locale: 'en', messages })
const t = (key: string, values?: Record<string, unknown>) => i18n.global.t(key, values ?? {})
const zhI18n = createI18n({ legacy: false, locale: 'zh-CN', messages })
const tz = (key: string, values?: Record<string, unknown>) => zhI18n.global.t(key, values ?? {})

const entry = (fields: Partial<DrReported>): DrReported => ({ system: 'his', healthy: true,
  problems: [], ...fields })

describe('a DR system\'s state', () => {
  it('is healthy, lagging (lag only) or broken from what the agent reported', () => {
    expect(drState(entry({}), true)).toBe('healthy')
    expect(drState(entry({ healthy: false, problems: [{ code: 'lag_over_limit', message: 'x' }] }), true))
      .toBe('lagging')
    expect(drState(entry({ healthy: false, problems: [{ code: 'lag_over_limit', message: 'x' },
      { code: 'standby_unreachable', message: 'y' }] }), true)).toBe('broken')
    expect(drState(entry({ healthy: false }), true)).toBe('broken')
  })

  it('is unknown without a report, with its agent offline, or where DR is not supported', () => {
    expect(drState(null, true)).toBe('unknown')
    expect(drState(entry({}), false)).toBe('unknown')
    expect(drState(entry({ supported: false }), true)).toBe('unknown')
  })

  it('gives one row per system, the online agent\'s report first, with roles and lag', () => {
    const rows = drRows({ institution: 'a', agents: [
      { agent: 'old', state: 'offline', dr_systems: ['his'], reported_at: '2026-12-01T00:00:00Z',
        systems: [entry({ healthy: false })] },
      { agent: 'new', state: 'online', dr_systems: ['his', 'lis'], reported_at: '2026-12-06T00:00:00Z',
        systems: [entry({ kind: 'postgres', lag: { bytes: 4096, seconds: 0.5, max_lag_bytes: 16, max_lag_seconds: 60 },
          nodes: [{ configured: 'primary', site: 'main', address: 'p:5432', role: 'standby', reachable: true },
            { configured: 'standby', site: 'east', address: 's:5432', role: 'primary', reachable: true }] })] },
    ] })
    expect(rows.map((r) => [r.system, r.agent, r.state])).toEqual([
      ['his', 'new', 'healthy'], ['lis', 'new', 'unknown']])
    expect(rows[0]?.primary?.site).toBe('east')
    expect(rows[0]?.standbys.map((n) => n.site)).toEqual(['main'])
    expect([rows[0]?.lagBytes, rows[0]?.lagSeconds, rows[0]?.maxLagSeconds]).toEqual([4096, 0.5, 60])
    expect(rows[1]?.reportedAt).toBeNull()
  })
})

describe('the two-step confirmation', () => {
  it('enables a switch-over, failover or failback only for the exact name', () => {
    for (const action of ['switchover', 'failover', 'failback'] as const) {
      expect(canConfirm(action, 'his', '')).toBe(false)
      expect(canConfirm(action, 'his', 'hi')).toBe(false)
      expect(canConfirm(action, 'his', 'HIS')).toBe(false)
      expect(canConfirm(action, 'his', ' his')).toBe(false)
      expect(canConfirm(action, 'his', 'his ')).toBe(false)
      expect(canConfirm(action, 'his', 'hiss')).toBe(false)
      expect(canConfirm(action, 'his', 'his')).toBe(true)
    }
    expect(canConfirm('switchover', '', '')).toBe(false)
  })

  it('needs no name for a drill', () => {
    expect(canConfirm('drill', 'his', '')).toBe(true)
  })

  it('sends the typed name as confirm, and none for a drill', () => {
    expect(drRequest('failover', 'his', 'his')).toEqual({ action: 'failover', confirm: 'his' })
    expect(drRequest('switchover', 'his', 'x')).toEqual({ action: 'switchover', confirm: '' })
    expect(drRequest('drill', 'his', 'whatever')).toEqual({ action: 'drill' })
  })
})

const ev = (id: number, kind: JobEvent['kind'], data: Record<string, unknown>): JobEvent =>
  ({ id, job_id: 9, at: '2026-12-06T05:30:01Z', kind, data })
const step = (name: string, result: string, seconds: number | null) =>
  ({ name, result, seconds, started: '2026-12-06T05:30:00Z', detail: '' })

describe('a DR job\'s steps', () => {
  it('are the log events that carry a step, in order, each once', () => {
    const events = [ev(3, 'log', { message: 'b', step: step('promote', 'ok', 3.05) }),
      ev(1, 'status', { status: 'running' }),
      ev(2, 'log', { message: 'a', step: step('pause clients', 'ok', 0.18) }),
      ev(2, 'log', { message: 'a', step: step('pause clients', 'ok', 0.18) }),
      ev(4, 'log', { message: 'plain line' })]
    expect(stepsOf(events).map((s) => [s.name, s.seconds])).toEqual([
      ['pause clients', 0.18], ['promote', 3.05]])
  })

  it('come from the finished job\'s details when there are no events', () => {
    const job = { details: { dr_action: { steps: [step('check', 'ok', 1), step('promote', 'failed', null)] } } }
    expect(stepsOfJob(job).map((s) => s.name)).toEqual(['check', 'promote'])
    expect(stepsOfJob({ details: { steps: [step('x', 'ok', 1)] } })).toHaveLength(1)
    expect(stepsOfJob({ details: null })).toEqual([])
  })

  it('show their durations in the locale, tenths under a minute', () => {
    expect(formatStepSeconds(0.42, 'en', t)).toBe('0.42 s')
    expect(formatStepSeconds(12.34, 'en', t)).toBe('12.3 s')
    expect(formatStepSeconds(125, 'en', t)).toBe(t('units.minutes', { m: 2, s: '05' }))
    expect(formatStepSeconds(3725, 'en', t)).toBe(t('units.hours', { h: 1, m: '02' }))
    expect(formatStepSeconds(3.5, 'zh-CN', tz)).toBe('3.50 秒')
    expect(formatStepSeconds(null, 'en', t)).toBe('')
    expect(formatStepSeconds(-1, 'en', t)).toBe('')
  })

  it('total the known durations', () => {
    expect(totalSeconds([{ ...step('a', 'ok', 1.5) }, { ...step('b', 'ok', null) }, { ...step('c', 'ok', 2) }]))
      .toBe(3.5)
    expect(totalSeconds([])).toBeNull()
  })

  it('say their result as ok, failed, skipped or other', () => {
    expect(['ok', 'failed', 'skipped', 'waiting'].map(stepLook)).toEqual(['ok', 'failed', 'skipped', 'other'])
  })
})

describe('a system\'s DR history', () => {
  const job = (id: number, kind: string, details: Record<string, unknown> | null): Job => ({
    id, institution: 'a', plan: 'dr:his', kind, status: 'succeeded', system: 'his', agent: 'x',
    host: '', requested_by: 'op1', scheduled_for: null, started_at: '2026-12-01T00:00:00Z',
    finished_at: null, attempt: 1, cancel_requested: false, error: 'first line\nsecond',
    snapshot_id: null, bytes_added: null, details, progress: null })

  it('lists the DR jobs with their action, switch time and steps', () => {
    const rows = historyRows([
      job(3, 'dr_switchover', { dr_action: { switch_seconds: 5.1, steps: [step('a', 'ok', 1)] } }),
      job(2, 'drill', null), job(1, 'backup', null)])
    expect(rows.map((r) => [r.id, r.action, r.switchSeconds, r.steps, r.error])).toEqual([
      [3, 'switchover', 5.1, 1, 'first line'], [2, 'drill', null, 0, 'first line']])
    expect(actionOfJob('dr_failback')).toBe('failback')
    expect(actionOfJob('restore')).toBeNull()
  })
})

describe('the drill schedule', () => {
  it('is read from each [dr.SYSTEM] table of the configuration', () => {
    const doc = '[plans.his]\ndrill = "nope"\n[dr.his]\ndrill = "0 3 1 * *"  # monthly\n'
      + '[dr.his.primary]\ndrill = "not this"\n[dr.lis]\nfeed = "stream"\n[dr."pacs"]\ndrill="30 2 * * 6"\n'
    expect(drillSchedules(doc)).toEqual({ his: '0 3 1 * *', pacs: '30 2 * * 6' })
  })
})
