// Where a plan's jobs are: the Jobs page filtered by the address (pages/jobs reads
// ?institution=&status=&plan=), so the dashboard and the systems page link a plan to
// its jobs. A plan's name is unique within its institution only, so the institution
// goes along when known.
import type { RouteLocationRaw } from 'vue-router'

export const JOBS_PATH = '/jobs'

/** The Jobs page showing `plan`'s jobs (of `institution`, when given). */
export function planJobs(plan: string, institution?: string | null): RouteLocationRaw {
  const query: Record<string, string> = {}
  if (institution) query.institution = institution
  query.plan = plan.trim()
  return { path: JOBS_PATH, query }
}
