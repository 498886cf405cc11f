import { describe, expect, it } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'
import { filtersOf, listPath } from '@/pages/jobs/jobsLive'
import { planJobs } from '@/util/jobLinks'

const router = createRouter({ history: createMemoryHistory(), routes: [
  { path: '/jobs', component: { render: () => null } },
  { path: '/:rest(.*)*', component: { render: () => null } },
] })

describe('a link to a plan\'s jobs', () => {
  it('names the plan and its institution in the Jobs page\'s address', () => {
    expect(router.resolve(planJobs('his', 'hosp-a')).fullPath).toBe('/jobs?institution=hosp-a&plan=his')
  })

  it('is what the Jobs page reads back as its filters, and asks the server for', () => {
    const resolved = router.resolve(planJobs('pacs nightly', 'hosp-b'))
    const filters = filtersOf(resolved.query)
    expect(filters).toEqual({ institution: 'hosp-b', plan: 'pacs nightly', status: '' })
    expect(listPath(filters)).toContain('plan=pacs')
    expect(new URLSearchParams(listPath(filters).split('?')[1]).get('plan')).toBe('pacs nightly')
  })

  it('leaves the institution out when unknown, and escapes what the name holds', () => {
    const href = router.resolve(planJobs('a&b=c#d')).fullPath
    expect(href).toMatch(/^\/jobs\?plan=a%26b=c%23d$/)
    expect(router.resolve(href).query).toEqual({ plan: 'a&b=c#d' })
    expect(filtersOf(router.resolve(planJobs(' x ', null)).query)).toEqual(
      { institution: '', plan: 'x', status: '' })
  })
})
